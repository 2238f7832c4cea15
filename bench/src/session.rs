//! Real WireGuard sessions made in memory: a client [`Device`] and the gateway's [`Device`]
//! complete the Noise IKpsk2 handshake (whitepaper §5.4) by passing their datagrams to each
//! other, and the keypairs they install are the ones the benchmarks seal and open with.
//!
//! Nothing here touches a socket or the system clock beyond one wall-clock reading for the
//! TAI64N timestamp of the initiation.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use rand_core::OsRng;
use wgproto::config::{InterfaceConfig, IpPrefix, PeerConfig};
use wgproto::device::{Device, KeySlot, Output};
use wgproto::keypair::Keypair;
use wgproto::keys::PrivateKey;
use wgproto::peer::PeerId;
use wgproto::time::Timestamp;

/// Both ends of one completed handshake.
pub struct Session {
    /// The client's keypair (initiator): seals what the client sends, opens what it receives.
    pub client: Arc<Keypair>,
    /// The gateway's keypair (responder) for this client.
    pub gateway: Arc<Keypair>,
    /// The client as the gateway's device knows it.
    pub peer: PeerId,
}

/// The wall clock as the handshake wants it (TAI64N in the initiation, §5.4.2).
pub fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// The gateway side of the in-memory handshakes: one device, any number of clients.
pub struct GatewayDevice {
    pub device: Device,
}

impl GatewayDevice {
    pub fn new(listen_port: u16) -> Self {
        let mut cfg = InterfaceConfig::new(PrivateKey::generate(&mut OsRng));
        cfg.listen_port = listen_port;
        GatewayDevice {
            device: Device::new(&cfg),
        }
    }

    /// Adds a client owning `allowed` (its tunnel address) reachable at `endpoint`, runs the
    /// handshake between a fresh client device and the gateway at `now`, and returns the
    /// keypairs both sides installed.
    pub fn handshake(
        &mut self,
        now: Timestamp,
        endpoint: SocketAddr,
        gateway_addr: SocketAddr,
        allowed: IpPrefix,
    ) -> Result<Session> {
        let client_key = PrivateKey::generate(&mut OsRng);
        let mut client = Device::new(&InterfaceConfig::new(client_key.clone()));
        let mut to_gw = PeerConfig::new(*self.device.public_key());
        to_gw.allowed_ips = vec!["0.0.0.0/0".parse().context("prefix")?];
        to_gw.endpoint = Some(gateway_addr);
        let gw_of_client = client
            .set_peer(now, to_gw)
            .map_err(|e| anyhow::anyhow!("client set_peer: {e:?}"))?;
        let mut to_client = PeerConfig::new(client_key.public_key());
        to_client.allowed_ips = vec![allowed];
        let peer = self
            .device
            .set_peer(now, to_client)
            .map_err(|e| anyhow::anyhow!("gateway set_peer: {e:?}"))?;

        client.request_handshake(now, wall_clock(), gw_of_client, &mut OsRng);
        let initiation = next_handshake(&mut client, now)?;
        self.device
            .handle_handshake(now, wall_clock(), endpoint, &initiation, false, &mut OsRng)
            .map_err(|e| anyhow::anyhow!("gateway refused the initiation: {e:?}"))?;
        let mut response = None;
        let mut gateway = None;
        while let Some(out) = self.device.poll(now, wall_clock(), &mut OsRng) {
            match out {
                Output::SendHandshake { bytes, .. } => response = Some(bytes),
                Output::KeypairInstalled {
                    keypair,
                    slot: KeySlot::Next,
                    ..
                } => gateway = Some(keypair),
                _ => {}
            }
        }
        let (Some(response), Some(gateway)) = (response, gateway) else {
            bail!("the gateway answered the initiation without a response and a keypair");
        };
        client
            .handle_handshake(
                now,
                wall_clock(),
                gateway_addr,
                &response,
                false,
                &mut OsRng,
            )
            .map_err(|e| anyhow::anyhow!("client refused the response: {e:?}"))?;
        let mut client_kp = None;
        while let Some(out) = client.poll(now, wall_clock(), &mut OsRng) {
            if let Output::KeypairInstalled {
                keypair,
                slot: KeySlot::Current,
                ..
            } = out
            {
                client_kp = Some(keypair);
            }
        }
        let client = client_kp.context("the client installed no keypair")?;
        Ok(Session {
            client,
            gateway,
            peer,
        })
    }
}

fn next_handshake(dev: &mut Device, now: Timestamp) -> Result<Vec<u8>> {
    while let Some(out) = dev.poll(now, wall_clock(), &mut OsRng) {
        if let Output::SendHandshake { bytes, .. } = out {
            return Ok(bytes);
        }
    }
    bail!("the device sent no handshake message")
}
