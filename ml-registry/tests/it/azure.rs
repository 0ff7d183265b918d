//! The Azure Blob registry against Azurite: the generic suite, and promotion
//! dev (local) → staging (Azurite) → prod (local).
//!
//! Each test starts its own Azurite (test-support/azurite.rs) on a free port.

#![cfg(feature = "azure")]

#[path = "../../../test-support/entra.rs"]
mod entra;

use crate::common;

use common::azurite::Azurite;
use ml_registry::azure::BlobRegistry;
use ml_registry::{LocalRegistry, ModelRegistry, RegisterOptions, promote};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_suite_on_azurite() {
    let azurite = Azurite::start();
    let registry = azurite.registry("models", "suite").await;
    common::registry_suite(&registry).await;
}

#[test]
fn deleting_a_version_while_another_client_aliases_it_leaves_no_dangling_alias() {
    let azurite = Azurite::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(azurite.registry("race", "registry"));
    let connection = azurite.connection_string();
    let (moved, deleted) = common::delete_while_aliasing(
        &|| {
            Box::new(
                BlobRegistry::from_connection_string(&connection, "race", "registry", "blob://race/registry")
                    .unwrap(),
            ) as Box<dyn ModelRegistry>
        },
        6,
    );
    eprintln!("azure: the alias move won {moved} rounds, the deletion {deleted}");
    assert_eq!(moved + deleted, 6);
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

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn open_error(pairs: &[(&str, &str)]) -> String {
    BlobRegistry::from_location_with("blob://models/prod", &vars(pairs))
        .unwrap_err()
        .to_string()
}

/// What can be checked without Entra ID itself: which credential the environment selects and
/// what the errors say. (Azurite accepts only shared key and SAS over http, and Entra ID tokens
/// are only sent over https, so a token never reaches it.)
#[test]
fn without_a_connection_string_entra_id_is_used_and_errors_say_what_to_set() {
    let e = open_error(&[]);
    eprintln!("{e}");
    assert!(
        e.starts_with(
            "registry blob://models/prod: no Azure Storage credentials: set AZURE_STORAGE_CONNECTION_STRING"
        ),
        "{e}"
    );
    for needed in [
        "AZURE_STORAGE_SAS_URL",
        "AZURE_STORAGE_ACCOUNT_URL",
        "AZURE_CLIENT_SECRET",
        "AZURE_FEDERATED_TOKEN_FILE",
        "managed identity",
        "`az login`",
    ] {
        assert!(e.contains(needed), "{needed}: {e}");
    }
    let e = open_error(&[(
        "AZURE_STORAGE_ACCOUNT_URL",
        "http://127.0.0.1:10000/devstoreaccount1",
    )]);
    assert!(e.contains("Entra ID credentials are only sent over https"), "{e}");
    let e = open_error(&[("AZURE_STORAGE_ACCOUNT", "acct"), ("AZURE_CLIENT_SECRET", "s")]);
    assert!(
        e.contains("the environment credential needs AZURE_TENANT_ID, AZURE_CLIENT_ID (not set)"),
        "{e}"
    );
    let e = open_error(&[
        ("AZURE_STORAGE_ACCOUNT", "acct"),
        ("STREAMSCORE_AZURE_CREDENTIAL", "default"),
    ]);
    assert!(e.contains("unknown credential \"default\""), "{e}");

    // Complete configurations open (no request is made until the first operation).
    let sp = [
        ("AZURE_STORAGE_ACCOUNT", "acct"),
        ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
        ("AZURE_CLIENT_ID", "c"),
        ("AZURE_CLIENT_SECRET", "s"),
    ];
    let r = BlobRegistry::from_location_with("blob://models/prod", &vars(&sp)).unwrap();
    assert_eq!(r.location(), "blob://models/prod");
    assert!(!format!("{r:?}").contains("AZURE_CLIENT_SECRET") && !format!("{r:?}").contains("\"s\""));
    BlobRegistry::from_location_with(
        "blob://models",
        &vars(&[("AZURE_STORAGE_ACCOUNT_URL", "https://acct.blob.core.windows.net")]),
    )
    .unwrap();
    // The connection string wins over Entra ID variables.
    let azurite_style =
        "AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1";
    BlobRegistry::from_location_with(
        "blob://models",
        &vars(&[
            ("AZURE_STORAGE_CONNECTION_STRING", azurite_style),
            ("AZURE_STORAGE_ACCOUNT_URL", "http://ignored"),
        ]),
    )
    .unwrap();
}

/// The token credential is what the registry's requests use: when no credential of the chain
/// gives a token, the first operation fails with the chain's message, before any request is
/// sent (the account's port is closed).
#[tokio::test]
async fn a_failing_entra_id_chain_fails_the_first_operation_with_what_to_set() {
    use std::sync::Arc;

    use entra::SignedOut;
    use ml_registry::azure::credential::{ChainCredential, CredentialSource};

    let chain = ChainCredential::new(vec![(CredentialSource::AzureCli, Arc::new(SignedOut))]);
    let r = BlobRegistry::with_credential(
        "https://127.0.0.1:1",
        Some(Arc::new(chain)),
        "models",
        "",
        "blob://models",
    )
    .unwrap();
    let e = r.list(None).await.unwrap_err().to_string();
    eprintln!("{e}");
    assert!(e.starts_with("storage backend blob://models: "), "{e}");
    assert!(
        e.contains(
            "no Entra ID credential gave a token (azure_cli: Please run 'az login' to set up an account)"
        ),
        "{e}"
    );
}
