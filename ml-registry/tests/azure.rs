//! The Azure Blob registry against Azurite: the generic suite, and promotion
//! dev (local) → staging (Azurite) → prod (local).
//!
//! Azurite comes from the project-local `node_modules` (installed by scripts/test.sh with
//! `npm install azurite`); each test starts its own on a free port and stops it on drop.

#![cfg(feature = "azure")]

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ml_registry::azure::BlobRegistry;
use ml_registry::{LocalRegistry, ModelRegistry, RegisterOptions, promote};

/// Azurite's documented development account key (public, the same in every installation).
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

struct Azurite {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Azurite {
    fn start() -> Azurite {
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

    fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_KEY};BlobEndpoint=http://127.0.0.1:{}/devstoreaccount1;",
            self.port
        )
    }

    async fn registry(&self, container: &str, prefix: &str) -> BlobRegistry {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_suite_on_azurite() {
    let azurite = Azurite::start();
    let registry = azurite.registry("models", "suite").await;
    common::registry_suite(&registry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_local_to_azurite_to_local() {
    let azurite = Azurite::start();
    let dir = tempfile::tempdir().unwrap();
    let dev = LocalRegistry::open(dir.path().join("dev")).unwrap();
    let staging = azurite.registry("staging", "registry").await;
    let prod = LocalRegistry::open(dir.path().join("prod")).unwrap();
    let options = RegisterOptions {
        parent_version: None,
        training_data: Some("credit.csv".into()),
        ..RegisterOptions::default()
    };
    let v1 = dev
        .register("credit", &common::artifact(7), &options)
        .await
        .unwrap();
    let s = promote(&dev, &"credit:1".parse().unwrap(), &staging, Some("staging"))
        .await
        .unwrap();
    assert_eq!(s.target.sha256, v1.sha256);
    let p = promote(&staging, &"credit@staging".parse().unwrap(), &prod, Some("prod"))
        .await
        .unwrap();
    let loaded = prod.get(&"credit@prod".parse().unwrap()).await.unwrap();
    assert_eq!(loaded.version.sha256, v1.sha256);
    assert_eq!(p.target.version, 1);
    let sums = |root: &std::path::Path| {
        std::fs::read_to_string(root.join("credit/versions/1/artifact/checksums")).unwrap()
    };
    assert_eq!(
        sums(prod.root()),
        sums(dev.root()),
        "every file's checksum is kept"
    );
    assert_eq!(loaded.version.training_data.as_deref(), Some("credit.csv"));
    assert_eq!(loaded.version.copied_from[0].registry, "blob://staging/registry");
    assert_eq!(loaded.version.copied_from[1].registry, dev.location());
    // The staging copy itself is verified when read back from Blob Storage.
    let from_blob = staging.get(&"credit@staging".parse().unwrap()).await.unwrap();
    assert_eq!(from_blob.artifact.model_bytes(), loaded.artifact.model_bytes());
}
