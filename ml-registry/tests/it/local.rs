//! LocalRegistry: the generic suite, tampering, and the on-disk layout.

use crate::common;

use std::fs;

use ml_registry::{Error, LocalRegistry, ModelRegistry, RegisterOptions};

#[test]
fn generic_suite_on_local_registry() {
    let dir = tempfile::tempdir().unwrap();
    let registry = LocalRegistry::open(dir.path().join("registry")).unwrap();
    futures::executor::block_on(common::registry_suite(&registry));
}

#[test]
fn deleting_a_version_while_another_process_aliases_it_leaves_no_dangling_alias() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("registry");
    let (moved, deleted) = common::delete_while_aliasing(
        &|| Box::new(LocalRegistry::open(&root).unwrap()) as Box<dyn ModelRegistry>,
        12,
    );
    eprintln!("local: the alias move won {moved} rounds, the deletion {deleted}");
    assert_eq!(moved + deleted, 12);
}

#[test]
fn tampered_artifact_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let registry = LocalRegistry::open(dir.path()).unwrap();
    futures::executor::block_on(async {
        registry
            .register("credit", &common::artifact(1), &RegisterOptions::default())
            .await
            .unwrap();
        let model_file = dir.path().join("credit/versions/1/artifact/model.json");
        let mut bytes = fs::read(&model_file).unwrap();
        bytes[10] ^= 1;
        fs::write(&model_file, bytes).unwrap();
        let e = registry.get(&"credit:1".parse().unwrap()).await.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Core(_)), "{msg}");
        assert!(msg.contains("checksum mismatch for `model.json`"), "{msg}");

        // Replacing the whole artifact consistently (new checksums) is caught by version.json.
        registry
            .register("credit", &common::artifact(2), &RegisterOptions::default())
            .await
            .unwrap();
        let a = dir.path().join("credit/versions/1/artifact");
        fs::remove_dir_all(&a).unwrap();
        let mut other = common::artifact(3);
        other.save(&a).unwrap();
        let e = registry.get(&"credit:1".parse().unwrap()).await.unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("checksums"), "{e}");
        // The intact version still loads.
        registry.get(&"credit:2".parse().unwrap()).await.unwrap();
    });
}

#[test]
fn layout_is_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let registry = LocalRegistry::open(dir.path()).unwrap();
    futures::executor::block_on(async {
        let v = registry
            .register("credit", &common::artifact(1), &RegisterOptions::default())
            .await
            .unwrap();
        registry.set_alias("credit", "prod", 1).await.unwrap();
        let root = dir.path().join("credit");
        assert_eq!(fs::read_to_string(root.join("counter")).unwrap(), "1");
        let aliases: serde_json::Value =
            serde_json::from_slice(&fs::read(root.join("aliases.json")).unwrap()).unwrap();
        assert_eq!(aliases, serde_json::json!({"prod": 1}));
        let meta: serde_json::Value =
            serde_json::from_slice(&fs::read(root.join("versions/1/version.json")).unwrap()).unwrap();
        assert_eq!(meta["version"], 1);
        // The recorded digest is the sha256 of the artifact's checksums file (computed here
        // independently of the registry code).
        let sums = fs::read(root.join("versions/1/artifact/checksums")).unwrap();
        use sha2::Digest;
        assert_eq!(meta["sha256"], hex::encode(sha2::Sha256::digest(&sums)));
        assert_eq!(v.sha256, meta["sha256"]);
        ml_core::ModelArtifact::load(root.join("versions/1/artifact")).unwrap();
        let leftovers: Vec<_> = fs::read_dir(root.join("versions"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(leftovers, ["1"]);
    });
}
