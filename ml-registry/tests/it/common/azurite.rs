//! Azurite for the Azure Blob tests: the workspace's shared guard (test-support/azurite.rs),
//! plus a registry on it.

#[path = "../../../../test-support/azurite.rs"]
mod support;

pub use support::Azurite;

use ml_registry::azure::BlobRegistry;

impl Azurite {
    /// A Blob registry in `container` under `prefix`, the container created.
    pub async fn registry(&self, container: &str, prefix: &str) -> BlobRegistry {
        let location = format!("blob://{container}/{prefix}");
        let r = BlobRegistry::from_connection_string(&self.connection_string(), container, prefix, &location)
            .unwrap();
        r.create_container_if_missing().await.unwrap();
        r
    }
}
