//! Azurite (the Azure Storage emulator) for tests, shared by every crate whose tests talk to
//! Blob Storage: include it with `#[path = "../../test-support/azurite.rs"] mod azurite;`.
//!
//! Azurite comes from the project-local `node_modules` (installed by scripts/test.sh with
//! `npm install azurite`). Each guard runs its own Azurite on a free 127.0.0.1 port, waits
//! until it accepts connections, and stops it on drop.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Azurite's documented development account key (public, the same in every installation).
pub const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running Azurite blob service; stopped when dropped.
pub struct Azurite {
    child: Option<Child>,
    port: u16,
    /// Keeps data on disk here (restartable) instead of in memory.
    persistent: bool,
    dir: tempfile::TempDir,
}

impl Azurite {
    /// Azurite with in-memory storage.
    pub fn start() -> Azurite {
        Azurite::launch(false)
    }

    /// Azurite with its storage in a temporary directory, so that [`Azurite::stop`] and
    /// [`Azurite::restart`] keep the data (an outage, not a wipe).
    pub fn start_persistent() -> Azurite {
        Azurite::launch(true)
    }

    fn launch(persistent: bool) -> Azurite {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut azurite = Azurite {
            child: None,
            port,
            persistent,
            dir: tempfile::tempdir().unwrap(),
        };
        azurite.restart();
        azurite
    }

    fn bin() -> PathBuf {
        let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../node_modules/.bin/azurite-blob");
        assert!(
            bin.is_file(),
            "{} not found: install Azurite with `npm install azurite` in the workspace root (scripts/test.sh does)",
            bin.display()
        );
        bin
    }

    /// Starts Azurite (again) on the same port and storage, and waits until it accepts
    /// connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "Azurite is already running");
        let mut command = Command::new(Azurite::bin());
        if self.persistent {
            command.arg("--location").arg(self.dir.path().join("data"));
        } else {
            command.arg("--inMemoryPersistence");
        }
        let child = command
            .args(["--blobHost", "127.0.0.1", "--blobPort"])
            .arg(self.port.to_string())
            .args(["--disableTelemetry", "--skipApiVersionCheck", "--silent"])
            .args(
                std::env::var("AZURITE_DEBUG_LOG")
                    .map(|l| vec!["--debug".to_string(), l])
                    .unwrap_or_default(),
            )
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Azurite did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops Azurite (SIGTERM, so a persistent one saves its metadata) and waits for the
    /// process to end; connections are refused until [`Azurite::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connection string of the development account.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_KEY};BlobEndpoint=http://127.0.0.1:{}/devstoreaccount1;",
            self.port
        )
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
