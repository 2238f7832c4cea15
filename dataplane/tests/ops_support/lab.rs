//! The real gateway for the ops tests: the one-armed lab with this build's `dataplane`, a
//! control socket of the test's own (so that concurrent tests never share one), extra TOML,
//! and the gateway's log printed when the test fails. Everything is removed on drop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lab::{DataplaneGateway, GatewayKind, GwTomlOptions, Lab, Topology};

pub const BIN: &str = env!("CARGO_BIN_EXE_dataplane");

/// A directory of the test's own files, removed even on failure.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The lab with the gateway running; prints the gateway's log when the test panics.
pub struct OpsLab {
    pub lab: Lab,
    /// The gateway's `[control] socket`.
    pub control: PathBuf,
    // Dropped after the lab: the control socket lives in it.
    pub tmp: TempDir,
}

impl OpsLab {
    /// Builds the one-armed lab, starts the gateway with `[control] socket` in a directory of
    /// its own plus `extra_toml`, and waits for the client's handshake.
    pub fn start(tag: &str, extra_toml: &str) -> OpsLab {
        let tmp = TempDir::new(tag);
        let control = tmp.path().join("control.sock");
        let mut dp = DataplaneGateway::new(BIN);
        dp.toml = GwTomlOptions {
            mode: None,
            extra_toml: format!(
                "{extra_toml}\n[control]\nsocket = \"{}\"\n",
                control.display()
            ),
            ..Default::default()
        };
        dp.ready_timeout = Duration::from_secs(5);
        let mut lab = Lab::builder(Topology::OneArmed)
            .gateway(GatewayKind::Dataplane(dp))
            .build()
            .expect("the lab with the dataplane gateway");
        if let Err(e) = lab.wait_for_handshake(Duration::from_secs(10)) {
            panic!(
                "no handshake with the gateway: {e:#}\n==== gateway log ====\n{}",
                lab.gateway_log()
            );
        }
        OpsLab { lab, control, tmp }
    }
}

impl Drop for OpsLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "==== gateway log ====\n{}\n==== end ====",
                self.lab.gateway_log()
            );
        }
    }
}

impl std::ops::Deref for OpsLab {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.lab
    }
}

impl std::ops::DerefMut for OpsLab {
    fn deref_mut(&mut self) -> &mut Lab {
        &mut self.lab
    }
}
