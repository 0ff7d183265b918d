//! The registry commands as a user runs them: register, models, promote, show, predict from a
//! registry reference, train --register, export/import, and the --registry options.

use std::path::Path;
use std::process::{Command, Output};

fn streamscore(args: &[&str], registry_env: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_streamscore"));
    cmd.args(args)
        .env_remove("STREAMSCORE_REGISTRY")
        .env_remove("AZURE_STORAGE_CONNECTION_STRING")
        .env_remove("AZURE_STORAGE_SAS_URL")
        .env_remove("AZURE_STORAGE_ACCOUNT_URL")
        .env_remove("AZURE_STORAGE_ACCOUNT");
    if let Some(r) = registry_env {
        cmd.env("STREAMSCORE_REGISTRY", r);
    }
    cmd.output().expect("the streamscore binary runs")
}

fn ok(args: &[&str], registry_env: Option<&Path>) -> String {
    let out = streamscore(args, registry_env);
    assert!(
        out.status.success(),
        "streamscore {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(args: &[&str], registry_env: Option<&Path>) -> String {
    let out = streamscore(args, registry_env);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    lines[0].to_string()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn register_promote_show_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = t.join("credit.csv");
    let reg = t.join("reg");
    ok(
        &["generate", "--rows", "2000", "--seed", "3", "--out", p(&data)],
        None,
    );
    ok(
        &[
            "train",
            "--data",
            p(&data),
            "--target",
            "default",
            "--out",
            p(&t.join("m1")),
        ],
        None,
    );
    // Registered from a directory, with tags; the registry comes from the environment.
    let out = ok(
        &[
            "register",
            "--name",
            "credit",
            p(&t.join("m1")),
            "--tag",
            "team=risk",
            "--description",
            "baseline",
        ],
        Some(&reg),
    );
    assert_eq!(out.trim(), "credit:1");
    // train --register with an explicit --registry, no --out.
    let out = ok(
        &[
            "train",
            "--data",
            p(&data),
            "--target",
            "default",
            "--param",
            "c=0.1",
            "--register",
            "credit",
            "--registry",
            p(&reg),
        ],
        None,
    );
    assert!(out.contains("roc_auc"), "{out}");
    let out = ok(
        &["promote", "credit:1", "--alias", "prod", "--registry", p(&reg)],
        None,
    );
    assert_eq!(out.trim(), "credit:1");

    let table = ok(&["models", "credit"], Some(&reg));
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("version") && lines[0].contains("key metric"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("1 ") && lines[1].contains("prod") && lines[1].contains("roc_auc 0."),
        "{table}"
    );
    assert!(lines[1].contains("baseline"), "{table}");
    assert!(lines[2].starts_with("2 "), "{table}");
    let all = ok(&["models"], Some(&reg));
    assert!(all.lines().nth(1).unwrap().starts_with("credit "), "{all}");

    let shown: serde_json::Value = serde_json::from_str(&ok(&["show", "credit@prod"], Some(&reg))).unwrap();
    assert_eq!(shown["version"], 1);
    assert_eq!(shown["tags"]["team"], "risk");
    assert_eq!(
        shown["tags"]["target"], "default",
        "the artifact's own tags are kept"
    );
    assert_eq!(shown["model_kind"], "logistic_regression");
    let v2: serde_json::Value = serde_json::from_str(&ok(&["show", "credit:2"], Some(&reg))).unwrap();
    assert_eq!(v2["training_data"], p(&data));

    // predict --model credit@prod gives exactly what the directory gives.
    let from_dir = ok(
        &["predict", "--model", p(&t.join("m1")), "--data", p(&data)],
        None,
    );
    let from_registry = ok(
        &["predict", "--model", "credit@prod", "--data", p(&data)],
        Some(&reg),
    );
    assert_eq!(from_dir, from_registry);

    // Clear errors.
    let e = fails(&["show", "credit@nope"], Some(&reg));
    assert!(
        e.contains("no alias `nope`") && e.contains("existing aliases: prod"),
        "{e}"
    );
    let e = fails(
        &["predict", "--model", "credit@staging", "--data", p(&data)],
        Some(&reg),
    );
    assert!(e.contains("no alias `staging`"), "{e}");
    let e = fails(&["register", "--name", "../x", p(&t.join("m1"))], Some(&reg));
    assert!(e.contains("invalid model name \"../x\""), "{e}");
    // A malformed reference is a usage mistake (status 2), explained.
    let out = streamscore(&["show", "credit"], Some(&reg));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("write `credit:1`"));
    // An interrupted registration leaves a hidden directory; `models --gc` finds and removes it.
    let leftover = reg.join("credit/versions/.tmp-0123");
    std::fs::create_dir_all(leftover.join("artifact")).unwrap();
    let out = ok(&["models", "--gc", "--dry-run"], Some(&reg));
    assert!(
        out.contains("would remove ")
            && out.contains(".tmp-0123 (credit: version directory of an interrupted"),
        "{out}"
    );
    assert!(out.contains("1 leftover(s) found"), "{out}");
    assert!(leftover.is_dir());
    let out = ok(&["models", "--gc", "--older-than", "0s"], Some(&reg));
    assert!(out.contains("1 leftover(s) removed"), "{out}");
    assert!(!leftover.exists());
    assert!(ok(&["models", "--gc"], Some(&reg)).contains("0 leftover(s) removed"));
    let e = fails(&["models", "--registry", "blob://models/credit"], None);
    if cfg!(feature = "azure") {
        assert!(e.contains("set AZURE_STORAGE_CONNECTION_STRING"), "{e}");
    } else {
        assert!(e.contains("--features azure"), "{e}");
    }

    // Promotion to another registry keeps the digest and records the source.
    let prod = t.join("prod");
    let out = ok(
        &[
            "promote",
            "credit@prod",
            "--from",
            p(&reg),
            "--to",
            p(&prod),
            "--alias",
            "prod",
        ],
        None,
    );
    assert_eq!(out.trim(), "credit:1");
    let copied: serde_json::Value =
        serde_json::from_str(&ok(&["show", "credit@prod", "--registry", p(&prod)], None)).unwrap();
    assert_eq!(copied["sha256"], shown["sha256"]);
    assert_eq!(copied["copied_from"][0]["version"], 1);
    assert_eq!(
        copied["copied_from"][0]["registry"],
        std::fs::canonicalize(&reg).unwrap().display().to_string()
    );

    // Export as MLflow and import back: same content.
    let exported = t.join("exported");
    ok(&["export", "credit:2", "--out", p(&exported)], Some(&reg));
    assert!(exported.join("MLmodel").is_file());
    let out = ok(&["import", p(&exported), "--name", "credit-imported"], Some(&reg));
    assert_eq!(out.trim(), "credit-imported:1");
    let imported: serde_json::Value =
        serde_json::from_str(&ok(&["show", "credit-imported@latest"], Some(&reg))).unwrap();
    assert_eq!(imported["sha256"], v2["sha256"]);
}
