//! Shared test support: small artifacts and the generic registry suite.

#![allow(dead_code)]

#[cfg(feature = "azure")]
pub mod azurite;

use std::collections::BTreeMap;

use ml_core::{CsvTable, Estimator, InferOptions, ModelArtifact, ReadOptions};
use ml_registry::{Error, ModelRegistry, Reference, RegisterOptions};

/// A small fitted model as an artifact; `seed` changes the data, so different seeds give
/// different content (and different digests).
pub fn artifact(seed: u64) -> ModelArtifact {
    let mut csv = String::from("income,plan,churn\n");
    for i in 0..40u64 {
        let x = (i * 7 + seed * 13) % 100;
        let plan = if i % 3 == 0 { "pro" } else { "basic" };
        csv.push_str(&format!("{x},{plan},{}\n", u8::from(x < 50)));
    }
    let table = CsvTable::read(csv.as_bytes(), "train.csv").unwrap();
    let schema = table.infer_schema(&InferOptions::default()).unwrap();
    let data = table.to_frame(schema, &ReadOptions::default()).unwrap();
    let model = Estimator::from_name("logistic_regression", &[])
        .unwrap()
        .fit(&data, "churn")
        .unwrap();
    ModelArtifact::from_native(&model)
        .unwrap()
        .with_metrics(&serde_json::json!({"roc_auc": 0.5 + seed as f64 / 100.0}))
        .unwrap()
        .with_tag("seed", seed.to_string())
        .with_attachment("profile.json", format!("{{\"seed\": {seed}}}").into_bytes())
        .unwrap()
}

fn r(s: &str) -> Reference {
    s.parse().unwrap()
}

/// The behaviour every registry must have. `registry` must be empty.
pub async fn registry_suite(registry: &dyn ModelRegistry) {
    // Empty registry: clear errors.
    assert!(registry.list(None).await.unwrap().is_empty());
    let e = registry.get(&r("credit@latest")).await.unwrap_err();
    assert!(matches!(e, Error::ModelNotFound { .. }), "{e}");
    assert!(e.to_string().contains("no model named `credit`"), "{e}");

    // Versions are 1, 2, 3 and carry what was given.
    let a1 = artifact(1);
    let mut options = RegisterOptions::default();
    options.tags.insert("team".into(), "risk".into());
    options.description = Some("first".into());
    options.training_data = Some("credit.csv".into());
    let v1 = registry.register("credit", &a1, &options).await.unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(v1.name, "credit");
    assert_eq!(v1.tags.get("team").map(String::as_str), Some("risk"));
    assert_eq!(
        v1.tags.get("seed").map(String::as_str),
        Some("1"),
        "artifact tags are kept"
    );
    assert_eq!(v1.description.as_deref(), Some("first"));
    assert_eq!(v1.run_id, a1.mlmodel().run_id);
    assert_eq!(v1.metrics.get("roc_auc"), Some(&serde_json::json!(0.51)));
    assert_eq!(v1.sha256.len(), 64);
    assert!(
        v1.created.ends_with('Z') && v1.created.contains('T'),
        "{}",
        v1.created
    );

    let lineage = RegisterOptions {
        parent_version: Some(1),
        training_data: Some("fresh-2026-01.csv".into()),
        ..RegisterOptions::default()
    };
    let v2 = registry.register("credit", &artifact(2), &lineage).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.parent_version, Some(1));
    assert_eq!(v2.training_data.as_deref(), Some("fresh-2026-01.csv"));
    assert_ne!(v1.sha256, v2.sha256);
    let v3 = registry
        .register("credit", &artifact(3), &RegisterOptions::default())
        .await
        .unwrap();
    assert_eq!(v3.version, 3);
    let other = registry
        .register("churn.v2", &artifact(4), &RegisterOptions::default())
        .await
        .unwrap();
    assert_eq!(other.version, 1, "versions count per model");

    // Get by version and latest; the artifact round-trips.
    let got = registry.get(&r("credit:1")).await.unwrap();
    assert_eq!(got.version, v1);
    assert_eq!(got.artifact.model_bytes(), a1.model_bytes());
    assert_eq!(
        got.artifact.attachment("profile.json"),
        Some(&b"{\"seed\": 1}"[..])
    );
    assert_eq!(got.artifact.mlmodel().model_uuid, a1.mlmodel().model_uuid);
    got.artifact.load_model().unwrap();
    assert_eq!(registry.resolve(&r("credit@latest")).await.unwrap().version, 3);
    let e = registry.get(&r("credit:9")).await.unwrap_err();
    assert!(
        e.to_string().contains("no version 9") && e.to_string().contains("1, 2, 3"),
        "{e}"
    );

    // Aliases.
    let e = registry.get(&r("credit@prod")).await.unwrap_err();
    assert!(e.to_string().contains("has no alias `prod`"), "{e}");
    assert_eq!(registry.set_alias("credit", "prod", 2).await.unwrap(), None);
    assert_eq!(registry.set_alias("credit", "staging", 3).await.unwrap(), None);
    assert_eq!(registry.get(&r("credit@prod")).await.unwrap().version.version, 2);
    let e = registry.get(&r("credit@nope")).await.unwrap_err();
    assert!(matches!(e, Error::AliasNotFound { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("no alias `nope`") && msg.contains("existing aliases: prod, staging"),
        "{msg}"
    );
    assert_eq!(registry.set_alias("credit", "prod", 3).await.unwrap(), Some(2));
    assert_eq!(registry.resolve(&r("credit@prod")).await.unwrap().version, 3);
    let e = registry.set_alias("credit", "prod", 7).await.unwrap_err();
    assert!(matches!(e, Error::VersionNotFound { version: 7, .. }), "{e}");
    assert!(matches!(
        registry.set_alias("credit", "latest", 1).await.unwrap_err(),
        Error::InvalidName { .. }
    ));
    assert!(matches!(
        registry.set_alias("credit", "../p", 1).await.unwrap_err(),
        Error::InvalidName { .. }
    ));
    assert!(matches!(
        registry.set_alias("nosuch", "prod", 1).await.unwrap_err(),
        Error::ModelNotFound { .. }
    ));

    // Listing.
    let all = registry.list(None).await.unwrap();
    let names: Vec<&str> = all.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["churn.v2", "credit"]);
    let credit = &all[1];
    assert_eq!(
        credit.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        credit.aliases,
        BTreeMap::from([("prod".to_string(), 3), ("staging".to_string(), 3)])
    );
    assert_eq!(credit.aliases_of(3), ["prod", "staging"]);
    assert_eq!(registry.versions("credit").await.unwrap()[1], v2);
    assert!(matches!(
        registry.list(Some("nosuch")).await.unwrap_err(),
        Error::ModelNotFound { .. }
    ));

    // Delete: refused while aliased; numbers never reused.
    let e = registry.delete_version("credit", 3).await.unwrap_err();
    assert!(matches!(e, Error::VersionAliased { .. }), "{e}");
    assert!(e.to_string().contains("prod, staging"), "{e}");
    assert_eq!(registry.remove_alias("credit", "staging").await.unwrap(), 3);
    assert!(matches!(
        registry.remove_alias("credit", "staging").await.unwrap_err(),
        Error::AliasNotFound { .. }
    ));
    registry.set_alias("credit", "prod", 2).await.unwrap();
    registry.delete_version("credit", 3).await.unwrap();
    assert!(matches!(
        registry.get(&r("credit:3")).await.unwrap_err(),
        Error::VersionNotFound { .. }
    ));
    assert_eq!(registry.resolve(&r("credit@latest")).await.unwrap().version, 2);
    let v4 = registry
        .register("credit", &artifact(5), &RegisterOptions::default())
        .await
        .unwrap();
    assert_eq!(v4.version, 4, "a deleted version's number is not reused");

    // Bad names are refused before anything is written.
    for bad in ["../x", "/abs", "", "a/b", ".hidden", "x y"] {
        let e = registry
            .register(bad, &a1, &RegisterOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidName { .. }), "{bad:?}: {e}");
    }
    assert_eq!(registry.list(None).await.unwrap().len(), 2);
    // Names and aliases that would leave the registry root (or name a hidden, odd or overlong
    // path component) are refused by every operation with a typed error, before any I/O.
    let long = "m".repeat(65);
    let very_long = "m".repeat(10_000);
    let escapes = [
        "..",
        ".",
        "../../etc",
        "a/../../b",
        "/etc/passwd",
        "a\\b",
        "..\\x",
        "C:\\x",
        "nul\0byte",
        "\0",
        "%2e%2e",
        "a\nb",
        long.as_str(),
        very_long.as_str(),
    ];
    for bad in escapes {
        let invalid = |e: Error| {
            assert!(matches!(e, Error::InvalidName { .. }), "{bad:?}: {e}");
            let msg = e.to_string();
            assert!(msg.len() < 12_000 && msg.contains("name"), "{bad:?}: {msg}");
        };
        invalid(
            registry
                .register(bad, &a1, &RegisterOptions::default())
                .await
                .unwrap_err(),
        );
        invalid(registry.set_alias(bad, "prod", 1).await.unwrap_err());
        invalid(registry.set_alias("credit", bad, 1).await.unwrap_err());
        invalid(registry.remove_alias(bad, "prod").await.unwrap_err());
        invalid(registry.remove_alias("credit", bad).await.unwrap_err());
        invalid(registry.delete_version(bad, 1).await.unwrap_err());
        invalid(registry.list(Some(bad)).await.unwrap_err());
        invalid(Reference::version(bad, 1).unwrap_err());
        invalid(Reference::alias("credit", bad).unwrap_err());
        assert!(format!("{bad}:1").parse::<Reference>().is_err(), "{bad:?}");
    }
    assert_eq!(registry.list(None).await.unwrap().len(), 2, "nothing was written");

    // Watch: the current version at once, then each move.
    {
        use futures::StreamExt;
        let mut watch = registry.watch(&r("credit@prod"), std::time::Duration::from_millis(20));
        assert_eq!(watch.next().await.unwrap().unwrap().version, 2);
        registry.set_alias("credit", "prod", 4).await.unwrap();
        assert_eq!(watch.next().await.unwrap().unwrap().version, 4);
        registry.set_alias("credit", "prod", 1).await.unwrap();
        assert_eq!(watch.next().await.unwrap().unwrap().version, 1);
    }
}

/// Deletes a version while another handle moves an alias onto it, `rounds` times, each pair
/// released together from two threads (each with its own runtime and its own registry handle
/// from `open`). Whatever the interleaving, exactly one of the two must succeed — the move
/// (then the deletion is refused: the version is aliased) or the deletion (then the move is
/// refused: no such version) — and no alias may point at a missing version. Returns how many
/// rounds each side won.
pub fn delete_while_aliasing(open: &(dyn Fn() -> Box<dyn ModelRegistry> + Sync), rounds: u32) -> (u32, u32) {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let main = open();
    let rt = runtime();
    let first = rt
        .block_on(main.register("race", &artifact(100), &RegisterOptions::default()))
        .unwrap();
    rt.block_on(main.set_alias("race", "prod", first.version))
        .unwrap();
    let (mut moved, mut deleted) = (0, 0);
    for round in 0..rounds {
        let v = rt
            .block_on(main.register(
                "race",
                &artifact(101 + u64::from(round)),
                &RegisterOptions::default(),
            ))
            .unwrap()
            .version;
        let barrier = std::sync::Barrier::new(2);
        let (alias, delete) = std::thread::scope(|s| {
            let alias = s.spawn(|| {
                let r = open();
                let rt = runtime();
                barrier.wait();
                rt.block_on(r.set_alias("race", "prod", v))
            });
            let delete = s.spawn(|| {
                let r = open();
                let rt = runtime();
                barrier.wait();
                rt.block_on(r.delete_version("race", v))
            });
            (alias.join().unwrap(), delete.join().unwrap())
        });
        match (&alias, &delete) {
            (Ok(_), Err(Error::VersionAliased { version, .. })) if *version == v => moved += 1,
            (Err(Error::VersionNotFound { version, .. }), Ok(())) if *version == v => deleted += 1,
            other => panic!("round {round}, version {v}: {other:?}"),
        }
        let summary = rt.block_on(main.list(Some("race"))).unwrap().remove(0);
        let existing: Vec<u32> = summary.versions.iter().map(|x| x.version).collect();
        for (alias, target) in &summary.aliases {
            assert!(
                existing.contains(target),
                "round {round}: alias {alias} points at deleted version {target}"
            );
        }
        let prod = rt.block_on(main.get(&r("race@prod"))).unwrap();
        assert_eq!(
            prod.version.version,
            if alias.is_ok() { v } else { summary.aliases["prod"] }
        );
    }
    (moved, deleted)
}
