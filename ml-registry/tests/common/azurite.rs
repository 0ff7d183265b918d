//! Azurite for the Azure Blob tests: started on a free port, in memory, stopped on drop.
//!
//! Azurite comes from the project-local `node_modules` (installed by scripts/test.sh with
//! `npm install azurite`).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ml_registry::azure::BlobRegistry;

/// Azurite's documented development account key (public, the same in every installation).
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub struct Azurite {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Azurite {
    pub fn start() -> Azurite {
        let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../node_modules/.bin/azurite-blob");
        assert!(
            bin.is_file(),
            "{} not found: install Azurite with `npm install azurite` in the workspace root (scripts/test.sh does)",
            bin.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(bin)
            .args(["--inMemoryPersistence", "--blobHost", "127.0.0.1", "--blobPort"])
            .arg(port.to_string())
            .args(["--disableTelemetry", "--skipApiVersionCheck", "--silent"])
            .args(
                std::env::var("AZURITE_DEBUG_LOG")
                    .map(|l| vec!["--debug".to_string(), l])
                    .unwrap_or_default(),
            )
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let azurite = Azurite {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "Azurite did not start on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        azurite
    }

    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_KEY};BlobEndpoint=http://127.0.0.1:{}/devstoreaccount1;",
            self.port
        )
    }

    pub async fn registry(&self, container: &str, prefix: &str) -> BlobRegistry {
        let location = format!("blob://{container}/{prefix}");
        let r = BlobRegistry::from_connection_string(&self.connection_string(), container, prefix, &location)
            .unwrap();
        r.create_container_if_missing().await.unwrap();
        r
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
