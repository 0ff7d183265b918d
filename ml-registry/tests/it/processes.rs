//! Several processes at once, and processes killed at named failpoints.
//!
//! The child processes are this test binary itself, re-run with `--exact processes::child_process`: the
//! `child_process` test does its work only when `ML_REGISTRY_TEST_CHILD` is set. With the
//! `azure` feature the same crash scenarios run against Azurite.

use crate::common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use ml_core::failpoint;
use ml_registry::{LocalRegistry, ModelRegistry, Reference, RegisterOptions};

const CHILD: &str = "ML_REGISTRY_TEST_CHILD";

/// In a child: `register LOCATION NAME SEED`, `alias LOCATION NAME ALIAS VERSION` or
/// `delete LOCATION NAME VERSION`, where LOCATION is a directory or `blob://..` (credentials
/// from the environment); with `wait` first, it blocks until its standard input closes, so that
/// a parent can release many at once.
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
    let registry = open(args[1]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
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
            "delete" => {
                registry
                    .delete_version(args[2], args[3].parse().unwrap())
                    .await
                    .unwrap();
                println!("DELETED");
            }
            other => panic!("unknown child command {other}"),
        }
    });
}

fn open(location: &str) -> Box<dyn ModelRegistry> {
    #[cfg(feature = "azure")]
    if location.starts_with("blob://") {
        return Box::new(ml_registry::azure::BlobRegistry::from_location(location).unwrap());
    }
    Box::new(LocalRegistry::open(location).unwrap())
}

fn child(spec: &str, failpoint_name: Option<&str>) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "processes::child_process",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
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

    // Killed half way through a deletion: the version is gone for readers, its renamed
    // directory is a leftover that `collect_garbage` finds and removes.
    let out = child(
        &format!("delete {} credit 2", p(&root)),
        Some("registry.delete.after_unpublish"),
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    futures::executor::block_on(async {
        let versions = registry.versions("credit").await.unwrap();
        assert_eq!(
            versions.iter().map(|v| v.version).collect::<Vec<_>>(),
            [1, 3, 4, 5]
        );
        let found = registry
            .collect_garbage(std::time::Duration::ZERO, true)
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].path.contains(".deleted-2-"), "{found:?}");
        let removed = registry
            .collect_garbage(std::time::Duration::ZERO, false)
            .await
            .unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].path, found[0].path);
        assert!(
            registry
                .collect_garbage(std::time::Duration::ZERO, true)
                .await
                .unwrap()
                .is_empty()
        );
    });
    assert_eq!(ok(7).0, 6);
}

/// The crash scenarios on the Azure registry: real processes killed at the failpoints while
/// talking to Azurite. What they leave must be invisible, found by `leftovers` and removed by
/// `collect_garbage`; the next registration and alias move must succeed.
#[cfg(feature = "azure")]
#[test]
fn killed_registrations_on_azurite_leave_no_partial_version() {
    use std::time::Duration;

    let azurite = common::azurite::Azurite::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let registry = runtime.block_on(azurite.registry("crash", "registry"));
    let location = "blob://crash/registry";
    let connection = azurite.connection_string();
    let run = |spec: String, failpoint_name: Option<&str>| {
        let out = child(&spec, failpoint_name)
            .env("AZURE_STORAGE_CONNECTION_STRING", &connection)
            .output()
            .unwrap();
        if let Some(f) = failpoint_name {
            assert!(!out.status.success(), "{spec} survived failpoint {f}");
            assert!(
                String::from_utf8_lossy(&out.stderr).contains(&format!("failpoint `{f}` hit")),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        out
    };
    let register =
        |seed: u64, f: Option<&str>| reported(&run(format!("register {location} credit {seed}"), f));
    let visible = || {
        runtime.block_on(async {
            let versions = registry.versions("credit").await.unwrap();
            for v in &versions {
                let loaded = registry.get(&v.reference()).await.unwrap();
                loaded.artifact.load_model().unwrap();
            }
            versions.iter().map(|v| v.version).collect::<Vec<_>>()
        })
    };
    let leftovers = || runtime.block_on(registry.leftovers(Some("credit"))).unwrap();

    assert_eq!(register(1, None).unwrap().0, 1);

    // Killed after every artifact blob is uploaded, before version.json: nothing visible, the
    // blobs are found as a leftover of version 2, which a young-age garbage collection keeps.
    assert!(register(2, Some("registry.register.before_publish")).is_none());
    assert_eq!(visible(), [1]);
    let found = leftovers();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].path, "registry/credit/versions/2/");
    assert!(
        found[0].what.ends_with("of version 2 without version.json"),
        "{found:?}"
    );
    let kept = runtime
        .block_on(registry.collect_garbage(Duration::from_secs(3600), false))
        .unwrap();
    assert!(
        kept.is_empty(),
        "a leftover younger than the grace period is kept: {kept:?}"
    );
    assert_eq!(leftovers().len(), 1);

    // The next registration succeeds; number 2 stays skipped.
    assert_eq!(register(3, None).unwrap().0, 3);
    assert_eq!(visible(), [1, 3]);

    // Killed right after publishing: the version is whole.
    assert!(register(4, Some("registry.register.after_publish")).is_none());
    assert_eq!(visible(), [1, 3, 4]);
    assert_eq!(register(5, None).unwrap().0, 5);

    // Killed while an alias moves: the old table is intact, the next move succeeds.
    run(format!("alias {location} credit prod 1"), None);
    run(
        format!("alias {location} credit prod 4"),
        Some("registry.alias.before_publish"),
    );
    runtime.block_on(async {
        let prod = registry.get(&"credit@prod".parse().unwrap()).await.unwrap();
        assert_eq!(prod.version.version, 1);
        assert_eq!(registry.set_alias("credit", "prod", 4).await.unwrap(), Some(1));
    });
    run(format!("alias {location} credit staging 5"), None);

    // Killed half way through a deletion (unpublished, files not yet removed): version 3 is
    // gone for readers, its files are a leftover, the aliases are intact.
    run(
        format!("delete {location} credit 3"),
        Some("registry.delete.after_unpublish"),
    );
    assert_eq!(visible(), [1, 4, 5]);
    let found = leftovers();
    assert_eq!(
        found.iter().map(|l| l.path.as_str()).collect::<Vec<_>>(),
        ["registry/credit/versions/2/", "registry/credit/versions/3/"]
    );
    runtime.block_on(async {
        let list = registry.list(Some("credit")).await.unwrap();
        assert_eq!(list[0].aliases.get("prod"), Some(&4));
        assert_eq!(list[0].aliases.get("staging"), Some(&5));
    });

    // The documented clean-up: a dry run lists, a real run deletes, versions are untouched.
    let listed = runtime
        .block_on(registry.collect_garbage(Duration::ZERO, true))
        .unwrap();
    let paths = |l: &[ml_registry::Leftover]| l.iter().map(|l| l.path.clone()).collect::<Vec<_>>();
    assert_eq!(paths(&listed), paths(&found));
    assert_eq!(leftovers().len(), 2, "a dry run deletes nothing");
    let removed = runtime
        .block_on(registry.collect_garbage(Duration::ZERO, false))
        .unwrap();
    assert_eq!(removed.len(), 2);
    assert!(leftovers().is_empty());
    assert_eq!(visible(), [1, 4, 5]);
    assert_eq!(register(6, None).unwrap().0, 6);
}
