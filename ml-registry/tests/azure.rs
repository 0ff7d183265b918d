//! The Azure Blob registry against Azurite: the generic suite, and promotion
//! dev (local) → staging (Azurite) → prod (local).
//!
//! Each test starts its own Azurite (test-support/azurite.rs) on a free port.

#![cfg(feature = "azure")]

mod common;

use ml_registry::azure::BlobRegistry;
use ml_registry::{LocalRegistry, ModelRegistry, RegisterOptions, promote};

#[path = "../../test-support/azurite.rs"]
mod azurite;
use azurite::Azurite;

async fn registry(azurite: &Azurite, container: &str, prefix: &str) -> BlobRegistry {
    let location = format!("blob://{container}/{prefix}");
    let r = BlobRegistry::from_connection_string(&azurite.connection_string(), container, prefix, &location)
        .unwrap();
    r.create_container_if_missing().await.unwrap();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_suite_on_azurite() {
    let azurite = Azurite::start();
    let registry = registry(&azurite, "models", "suite").await;
    common::registry_suite(&registry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_local_to_azurite_to_local() {
    let azurite = Azurite::start();
    let dir = tempfile::tempdir().unwrap();
    let dev = LocalRegistry::open(dir.path().join("dev")).unwrap();
    let staging = registry(&azurite, "staging", "registry").await;
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
