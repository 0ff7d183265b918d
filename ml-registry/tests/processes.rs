//! Several processes at once, and processes killed at named failpoints.
//!
//! The child processes are this test binary itself, re-run with `--exact child_process`: the
//! `child_process` test does its work only when `ML_REGISTRY_TEST_CHILD` is set.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use ml_core::failpoint;
use ml_registry::{LocalRegistry, ModelRegistry, Reference, RegisterOptions};

const CHILD: &str = "ML_REGISTRY_TEST_CHILD";

/// In a child: `register DIR NAME SEED` or `alias DIR NAME ALIAS VERSION`; with `wait` first,
/// it blocks until its standard input closes, so that a parent can release many at once.
#[test]
fn child_process() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let args: Vec<&str> = spec.split(' ').collect();
    let args = if args[0] == "wait" {
        let mut sink = Vec::new();
        std::io::stdin().read_to_end(&mut sink).unwrap();
        &args[1..]
    } else {
        &args[..]
    };
    let registry = LocalRegistry::open(args[1]).unwrap();
    futures::executor::block_on(async {
        match args[0] {
            "register" => {
                let seed: u64 = args[3].parse().unwrap();
                let v = registry
                    .register(args[2], &common::artifact(seed), &RegisterOptions::default())
                    .await
                    .unwrap();
                println!("\nREGISTERED {} {}", v.version, v.sha256);
            }
            "alias" => {
                registry
                    .set_alias(args[2], args[3], args[4].parse().unwrap())
                    .await
                    .unwrap();
                println!("ALIASED");
            }
            other => panic!("unknown child command {other}"),
        }
    });
}

fn child(spec: &str, failpoint_name: Option<&str>) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child_process", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, spec)
        .env_remove(failpoint::ENV_VAR)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(f) = failpoint_name {
        cmd.env(failpoint::ENV_VAR, f);
    }
    cmd
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn reported(out: &std::process::Output) -> Option<(u32, String)> {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().find_map(|l| {
        // libtest may print "test child_process ... " on the same line first.
        let at = l.find("REGISTERED ")?;
        let mut it = l[at + "REGISTERED ".len()..].split(' ');
        Some((it.next()?.parse().ok()?, it.next()?.to_string()))
    })
}

#[test]
fn eight_processes_register_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("registry");
    let mut children: Vec<Child> = (0..8)
        .map(|i| {
            child(&format!("wait register {} credit {}", p(&root), 10 + i), None)
                .stdin(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Release all eight together: each is blocked reading its standard input.
    for c in &mut children {
        c.stdin.take().unwrap().write_all(b"go").unwrap();
    }
    let mut got = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        got.push(reported(&out).expect("the child reports its version"));
    }
    let mut versions: Vec<u32> = got.iter().map(|(v, _)| *v).collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=8).collect::<Vec<_>>());
    let registry = LocalRegistry::open(&root).unwrap();
    futures::executor::block_on(async {
        for (version, sha) in &got {
            let loaded = registry
                .get(&Reference::version("credit", *version).unwrap())
                .await
                .unwrap();
            assert_eq!(
                &loaded.version.sha256, sha,
                "version {version} holds what its writer wrote"
            );
            loaded.artifact.load_model().unwrap();
        }
        let distinct: std::collections::BTreeSet<_> = got.iter().map(|(_, s)| s.clone()).collect();
        assert_eq!(distinct.len(), 8, "eight different artifacts");
    });
}

#[test]
fn killed_registrations_leave_no_partial_version() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("registry");
    let registry = LocalRegistry::open(&root).unwrap();
    let ok = |seed: u64| {
        let out = child(&format!("register {} credit {seed}", p(&root)), None)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        reported(&out).unwrap()
    };
    assert_eq!(ok(1).0, 1);

    // Killed after every file is written, before the version is published: nothing visible.
    let out = child(
        &format!("register {} credit 2", p(&root)),
        Some("registry.register.before_publish"),
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("failpoint `registry.register.before_publish` hit"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(reported(&out).is_none());
    futures::executor::block_on(async {
        let versions = registry.versions("credit").await.unwrap();
        assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), [1]);
        assert_eq!(
            registry
                .resolve(&"credit@latest".parse().unwrap())
                .await
                .unwrap()
                .version,
            1
        );
    });
    let leftovers = std::fs::read_dir(root.join("credit/versions"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".tmp-")
        })
        .count();
    assert_eq!(
        leftovers, 1,
        "the crashed writer's temporary directory is still there"
    );

    // The next registration succeeds, takes the next number and clears the leftover.
    assert_eq!(ok(3).0, 2);
    let names: Vec<String> = std::fs::read_dir(root.join("credit/versions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // Killed after publishing, before the counter is updated: the version is whole and the
    // next one does not reuse its number.
    let out = child(
        &format!("register {} credit 4", p(&root)),
        Some("registry.register.after_publish"),
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    futures::executor::block_on(async {
        let v3 = registry.get(&"credit:3".parse().unwrap()).await.unwrap();
        v3.artifact.load_model().unwrap();
    });
    assert_eq!(ok(5).0, 4);

    // Killed while an alias moves: the alias still points at its old version, intact.
    let out = child(&format!("alias {} credit prod 1", p(&root)), None)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = child(
        &format!("alias {} credit prod 4", p(&root)),
        Some("registry.alias.before_publish"),
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("registry.alias.before_publish"));
    futures::executor::block_on(async {
        let prod = registry.get(&"credit@prod".parse().unwrap()).await.unwrap();
        assert_eq!(prod.version.version, 1);
        // The next alias move and registration succeed.
        assert_eq!(registry.set_alias("credit", "prod", 4).await.unwrap(), Some(1));
        assert_eq!(
            registry
                .get(&"credit@prod".parse().unwrap())
                .await
                .unwrap()
                .version
                .version,
            4
        );
    });
    assert_eq!(ok(6).0, 5);
}
