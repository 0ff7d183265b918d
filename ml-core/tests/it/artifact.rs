//! Model artifacts: round trip, attachments, and every way a damaged artifact is refused.

use std::fs;
use std::path::Path;

use ml_core::artifact::{CHECKSUMS_FILE, MLMODEL_FILE, sha256_hex};
use ml_core::{CsvTable, Error, Estimator, Frame, InferOptions, Model, ModelArtifact, ReadOptions};

const DATA: &str = "x,g,y\n1,a,0\n2,b,0\n3,a,1\n4,b,1\n5,a,1\n0.5,b,0\n2.5,a,0\n3.5,b,1\n";

fn trained() -> ml_core::NativeModel {
    let table = CsvTable::read(DATA.as_bytes(), "t.csv").unwrap();
    let schema = table.infer_schema(&InferOptions::default()).unwrap();
    let frame = table.to_frame(schema, &ReadOptions::default()).unwrap();
    Estimator::from_name("logistic_regression", &[])
        .unwrap()
        .fit(&frame, "y")
        .unwrap()
}

fn saved(dir: &Path) -> ml_core::NativeModel {
    let model = trained();
    let mut art = ModelArtifact::from_native(&model)
        .unwrap()
        .with_metrics(&serde_json::json!({"roc_auc": 0.75}))
        .unwrap()
        .with_attachment("profile.json", b"{\"p\": 1}".to_vec())
        .unwrap()
        .with_tag("team", "risk");
    art.save(dir).unwrap();
    model
}

/// Rewrites `checksums` to match the files as they are now (what a careful forger would do).
fn reseal(dir: &Path) {
    let mut lines = Vec::new();
    for rel in [
        "MLmodel",
        "attachments/profile.json",
        "metrics.json",
        "model.json",
    ] {
        lines.push(format!(
            "{}  {rel}\n",
            sha256_hex(&fs::read(dir.join(rel)).unwrap())
        ));
    }
    fs::write(dir.join(CHECKSUMS_FILE), lines.concat()).unwrap();
}

fn artifact_error(dir: &Path) -> String {
    match ModelArtifact::load(dir) {
        Ok(_) => panic!("damaged artifact at {} was accepted", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn round_trip_keeps_model_metadata_metrics_and_attachments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    let model = saved(&dir);
    let art = ModelArtifact::load(&dir).unwrap();
    assert_eq!(art.metrics()["roc_auc"], 0.75);
    assert_eq!(art.attachment("profile.json"), Some(&b"{\"p\": 1}"[..]));
    assert_eq!(art.mlmodel().metadata["team"], "risk");
    assert_eq!(art.mlmodel().model_uuid.len(), 32);
    let flavor = art.mlmodel().streamscore_flavor().unwrap();
    assert_eq!(
        (flavor.model_kind.as_str(), flavor.format_version),
        ("logistic_regression", 1)
    );
    let loaded = art.load_model().unwrap();
    let frame = Frame::from_csv(DATA.as_bytes(), model.schema().clone(), &ReadOptions::default()).unwrap();
    // Bit-identical predictions after the round trip (float_roundtrip serialization).
    assert_eq!(loaded.predict(&frame).unwrap(), model.predict(&frame).unwrap());

    // The MLmodel file is MLflow-shaped YAML.
    let yaml = fs::read_to_string(dir.join(MLMODEL_FILE)).unwrap();
    for key in [
        "artifact_path: model",
        "flavors:",
        "streamscore:",
        "model_uuid:",
        "run_id:",
        "utc_time_created:",
        "signature:",
        "inputs:",
        "outputs:",
    ] {
        assert!(yaml.contains(key), "MLmodel lacks {key}:\n{yaml}");
    }
    assert!(
        yaml.contains(r#"{\"type\":\"double\",\"name\":\"x\",\"required\":true}"#)
            || yaml.contains(r#"{"type":"double","name":"x","required":true}"#),
        "{yaml}"
    );
    // checksums is in sha256sum format.
    let sums = fs::read_to_string(dir.join(CHECKSUMS_FILE)).unwrap();
    assert_eq!(sums.lines().count(), 4);
    assert!(sums.lines().all(|l| l.len() > 66 && &l[64..66] == "  "));
    // No temporary directory is left behind.
    let names: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["m"]);
}

#[test]
fn tampered_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    saved(&dir);
    let path = dir.join("model.json");
    let text = fs::read_to_string(&path)
        .unwrap()
        .replacen("\"intercept\"", "\"intercept\" ", 1);
    fs::write(&path, text).unwrap();
    let err = artifact_error(&dir);
    assert!(err.contains("checksum mismatch for `model.json`"), "{err}");
}

#[test]
fn truncated_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    saved(&dir);
    let path = dir.join("model.json");
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = artifact_error(&dir);
    assert!(err.contains("changed or truncated"), "{err}");
    // Truncated and re-sealed: the checksum passes, the model file itself is refused.
    reseal(&dir);
    let err = ModelArtifact::load(&dir)
        .unwrap()
        .native_model()
        .unwrap_err()
        .to_string();
    assert!(err.contains("not valid JSON"), "{err}");
}

#[test]
fn missing_unlisted_and_unsealed_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    saved(&dir);
    fs::write(dir.join("extra.bin"), b"x").unwrap();
    assert!(artifact_error(&dir).contains("`extra.bin` is not listed"));
    fs::remove_file(dir.join("extra.bin")).unwrap();
    fs::remove_file(dir.join("metrics.json")).unwrap();
    assert!(artifact_error(&dir).contains("`metrics.json` listed in `checksums` is missing"));
    fs::remove_file(dir.join(CHECKSUMS_FILE)).unwrap();
    assert!(artifact_error(&dir).contains("no `checksums` file"));
    assert!(artifact_error(&tmp.path().join("nope")).contains("no such directory"));
}

#[test]
fn newer_format_versions_are_refused_with_upgrade_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    saved(&dir);
    let path = dir.join(MLMODEL_FILE);
    let yaml = fs::read_to_string(&path)
        .unwrap()
        .replace("format_version: 1", "format_version: 7");
    fs::write(&path, yaml).unwrap();
    reseal(&dir);
    match ModelArtifact::load(&dir) {
        Err(Error::UnsupportedFormatVersion {
            found: 7,
            supported: 1,
            ..
        }) => {}
        other => panic!("expected a format version error, got {other:?}"),
    }
    assert!(artifact_error(&dir).contains("upgrade streamscore"));

    // The same for the model file's own version.
    fs::write(
        &path,
        fs::read_to_string(&path)
            .unwrap()
            .replace("format_version: 7", "format_version: 1"),
    )
    .unwrap();
    let model_path = dir.join("model.json");
    let text = fs::read_to_string(&model_path)
        .unwrap()
        .replace("\"format_version\":1", "\"format_version\":3");
    fs::write(&model_path, text).unwrap();
    reseal(&dir);
    let err = ModelArtifact::load(&dir).unwrap().native_model().unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedFormatVersion { found: 3, .. }),
        "{err:?}"
    );
}

#[test]
fn save_refuses_a_non_empty_directory_and_bad_attachment_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    saved(&dir);
    let mut again = ModelArtifact::from_native(&trained()).unwrap();
    let err = again.save(&dir).unwrap_err().to_string();
    assert!(err.contains("already exists and is not empty"), "{err}");
    // An existing empty directory is fine.
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    again.save(&empty).unwrap();
    assert!(ModelArtifact::load(&empty).is_ok());
    for bad in ["../x", "a/b", ".hidden", ""] {
        assert!(
            ModelArtifact::from_native(&trained())
                .unwrap()
                .with_attachment(bad, vec![])
                .is_err(),
            "{bad}"
        );
    }
}
