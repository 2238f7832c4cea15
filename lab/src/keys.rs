//! WireGuard keys for the lab, made by `wg genkey` / `wg pubkey` / `wg genpsk` (wireguard-tools),
//! so the lab's keys come from the same independent implementation as its peers.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::netns::run;

/// A Curve25519 key pair, both halves base64 as `wg` prints them.
#[derive(Clone, Debug)]
pub struct KeyPair {
    pub private: String,
    pub public: String,
}

/// The lab's keys: the client (the article's `peer1`), the gateway, and the preshared key the
/// article's container generates for the pair.
#[derive(Clone, Debug)]
pub struct LabKeys {
    pub client: KeyPair,
    pub gateway: KeyPair,
    pub preshared: Option<String>,
}

fn check_key(what: &str, key: &str) -> Result<String> {
    let key = key.trim();
    // 32 bytes in base64 with padding: 43 characters and one '='.
    if key.len() != 44 || !key.ends_with('=') {
        bail!("`wg {what}` printed {key:?}, not a base64 32-byte key");
    }
    Ok(key.to_owned())
}

fn public_of(private: &str) -> Result<String> {
    let mut child = Command::new("wg")
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run `wg pubkey` (install wireguard-tools)")?;
    child
        .stdin
        .take()
        .context("wg pubkey: no stdin")?
        .write_all(format!("{private}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "`wg pubkey` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    check_key("pubkey", &String::from_utf8_lossy(&out.stdout))
}

/// A fresh key pair from `wg genkey` and `wg pubkey`.
pub fn generate_pair() -> Result<KeyPair> {
    let private = check_key(
        "genkey",
        &run(Command::new("wg").arg("genkey")).context("wireguard-tools is needed for the lab")?,
    )?;
    let public = public_of(&private)?;
    Ok(KeyPair { private, public })
}

/// A fresh preshared key from `wg genpsk`.
pub fn generate_psk() -> Result<String> {
    check_key("genpsk", &run(Command::new("wg").arg("genpsk"))?)
}

impl LabKeys {
    pub fn generate(with_psk: bool) -> Result<Self> {
        Ok(LabKeys {
            client: generate_pair()?,
            gateway: generate_pair()?,
            preshared: if with_psk {
                Some(generate_psk()?)
            } else {
                None
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_key_output_is_rejected() {
        assert!(check_key("genkey", "abc").is_err());
        assert!(check_key("genkey", &"A".repeat(44)).is_err());
        let ok = format!("{}=\n", "A".repeat(43));
        assert_eq!(check_key("genkey", &ok).unwrap().len(), 44);
    }
}
