//! Promotion between registries, and MLflow export/import.

use crate::common;

use std::fs;

use ml_registry::{Error, LocalRegistry, ModelRegistry, RegisterOptions, SourceVersion, mlflow, promote};

#[test]
fn promotion_dev_to_prod_keeps_checksums_and_records_lineage() {
    let dir = tempfile::tempdir().unwrap();
    let dev = LocalRegistry::open(dir.path().join("dev")).unwrap();
    let staging = LocalRegistry::open(dir.path().join("staging")).unwrap();
    let prod = LocalRegistry::open(dir.path().join("prod")).unwrap();
    futures::executor::block_on(async {
        dev.register("credit", &common::artifact(1), &RegisterOptions::default())
            .await
            .unwrap();
        let options = RegisterOptions {
            parent_version: Some(1),
            training_data: Some("fresh.csv".into()),
            description: Some("retrained".into()),
            ..RegisterOptions::default()
        };
        let v2 = dev
            .register("credit", &common::artifact(2), &options)
            .await
            .unwrap();
        // prod already has an unrelated version 1, so the copy gets another number there.
        prod.register("credit", &common::artifact(9), &RegisterOptions::default())
            .await
            .unwrap();

        let s = promote(&dev, &"credit:2".parse().unwrap(), &staging, Some("staging"))
            .await
            .unwrap();
        assert!(!s.already_present);
        assert_eq!(s.target.version, 1);
        assert_eq!(s.alias, Some(("staging".to_string(), None)));
        let p = promote(&staging, &"credit@staging".parse().unwrap(), &prod, Some("prod"))
            .await
            .unwrap();
        assert_eq!(p.target.version, 2);
        let loaded = prod.get(&"credit@prod".parse().unwrap()).await.unwrap();
        // Same content: the digest and every file's checksum.
        assert_eq!(loaded.version.sha256, v2.sha256);
        let sums = |root: &std::path::Path, v: u32| {
            fs::read_to_string(root.join(format!("credit/versions/{v}/artifact/checksums"))).unwrap()
        };
        assert_eq!(
            sums(&dir.path().join("prod"), 2),
            sums(&dir.path().join("dev"), 2)
        );
        // Metrics and lineage travel; the copy chain names staging then dev.
        assert_eq!(loaded.version.metrics, v2.metrics);
        assert_eq!(loaded.version.parent_version, Some(1));
        assert_eq!(loaded.version.training_data.as_deref(), Some("fresh.csv"));
        assert_eq!(loaded.version.description.as_deref(), Some("retrained"));
        assert_eq!(
            loaded.version.copied_from,
            [
                SourceVersion {
                    registry: staging.location(),
                    name: "credit".into(),
                    version: 1
                },
                SourceVersion {
                    registry: dev.location(),
                    name: "credit".into(),
                    version: 2
                },
            ]
        );

        // Promoting again reuses the copy.
        let again = promote(&staging, &"credit:1".parse().unwrap(), &prod, None)
            .await
            .unwrap();
        assert!(again.already_present);
        assert_eq!(again.target.version, 2);
        assert_eq!(prod.versions("credit").await.unwrap().len(), 2);

        // A copy of the same source with other content is refused.
        let copy = prod.root().join("credit/versions/2/version.json");
        let mut meta: serde_json::Value = serde_json::from_slice(&fs::read(&copy).unwrap()).unwrap();
        meta["sha256"] = serde_json::json!("0".repeat(64));
        fs::write(&copy, serde_json::to_vec(&meta).unwrap()).unwrap();
        let e = promote(&staging, &"credit:1".parse().unwrap(), &prod, None)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::LineageConflict(_)), "{e}");
        assert!(e.to_string().contains("lineage conflict"), "{e}");

        // Within one registry, promotion only moves the alias.
        let same = promote(&dev, &"credit:1".parse().unwrap(), &dev, Some("prod"))
            .await
            .unwrap();
        assert_eq!(same.target.version, 1);
        assert_eq!(dev.versions("credit").await.unwrap().len(), 2);
        assert_eq!(
            dev.resolve(&"credit@prod".parse().unwrap())
                .await
                .unwrap()
                .version,
            1
        );
    });
}

#[test]
fn mlflow_export_then_import_keeps_the_digest() {
    let dir = tempfile::tempdir().unwrap();
    let registry = LocalRegistry::open(dir.path().join("reg")).unwrap();
    futures::executor::block_on(async {
        let v = registry
            .register("credit", &common::artifact(1), &RegisterOptions::default())
            .await
            .unwrap();
        let out = dir.path().join("exported");
        mlflow::export(&registry, &"credit:1".parse().unwrap(), &out)
            .await
            .unwrap();
        let mlmodel: serde_yaml::Value =
            serde_yaml::from_str(&fs::read_to_string(out.join("MLmodel")).unwrap()).unwrap();
        assert!(
            mlmodel["signature"]["inputs"]
                .as_str()
                .unwrap()
                .contains("\"income\"")
        );
        assert!(out.join("model.json").is_file());
        let artifact = mlflow::import(&out).unwrap();
        let again = registry
            .register("credit", &artifact, &RegisterOptions::default())
            .await
            .unwrap();
        assert_eq!(again.sha256, v.sha256);
    });
}

#[test]
fn mlflow_onnx_flavor_is_imported() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("onnx-model");
    fs::create_dir(&src).unwrap();
    // What mlflow.onnx.save_model writes (trimmed): an onnx flavor naming model.onnx.
    fs::write(
        src.join("MLmodel"),
        r#"flavors:
  onnx:
    code: null
    data: model.onnx
    onnx_version: 1.17.0
    providers: [CPUExecutionProvider]
  python_function:
    data: model.onnx
    env: {conda: conda.yaml, virtualenv: python_env.yaml}
    loader_module: mlflow.onnx
    python_version: 3.11.2
mlflow_version: 2.19.0
model_size_bytes: 8
model_uuid: 6b1c5c1e3a1b4c0f9d7e2a3b4c5d6e7f
run_id: 0a1b2c3d4e5f60718293a4b5c6d7e8f9
signature:
  inputs: '[{"type": "double", "name": "income", "required": true}]'
  outputs: '[{"type": "long", "required": true}]'
  params: null
utc_time_created: '2026-01-02 03:04:05.000006'
"#,
    )
    .unwrap();
    fs::write(src.join("model.onnx"), b"\x08\x07fakeonnx").unwrap();
    fs::write(src.join("requirements.txt"), "onnx==1.17.0\n").unwrap();
    let artifact = mlflow::import(&src).unwrap();
    assert_eq!(artifact.model_bytes(), b"\x08\x07fakeonnx");
    assert_eq!(artifact.mlmodel().run_id, "0a1b2c3d4e5f60718293a4b5c6d7e8f9");
    assert!(artifact.mlmodel().flavors.contains_key("onnx"));
    let flavor = artifact.mlmodel().streamscore_flavor().unwrap();
    assert_eq!(
        (flavor.model_file.as_str(), flavor.model_kind.as_str()),
        ("model.onnx", "onnx")
    );
    assert_eq!(
        artifact.attachment("requirements.txt"),
        Some(&b"onnx==1.17.0\n"[..])
    );

    let registry = LocalRegistry::open(dir.path().join("reg")).unwrap();
    futures::executor::block_on(async {
        registry
            .register("onnx-model", &artifact, &RegisterOptions::default())
            .await
            .unwrap();
        let out = dir.path().join("exported");
        mlflow::export(&registry, &"onnx-model@latest".parse().unwrap(), &out)
            .await
            .unwrap();
        assert_eq!(fs::read(out.join("model.onnx")).unwrap(), b"\x08\x07fakeonnx");
    });

    // A directory without a usable flavor is refused with the flavors it has.
    fs::write(
        src.join("MLmodel"),
        "flavors:\n  sklearn: {}\nsignature: {inputs: '[]'}\n",
    )
    .unwrap();
    let e = mlflow::import(&src).unwrap_err().to_string();
    assert!(e.contains("flavors [sklearn]") && e.contains("onnx"), "{e}");
}
