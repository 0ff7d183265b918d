//! `streamscore stream` as a process: killed at every named failpoint and at seeded points,
//! then resumed, it has written every event at least once, and duplicates carry the same
//! source position and content.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use ml_stream::datacollection::{MODEL_INPUTS, MODEL_OUTPUTS, read_lines};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_streamscore"))
}

fn ok(args: &[&str]) {
    let out = bin().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Generates `rows` training rows with `seed` into `dir` and trains a model on them there;
/// returns the model directory.
fn trained_model(dir: &Path, rows: &str, seed: &str) -> PathBuf {
    let train = dir.join("train.csv");
    let model = dir.join("model");
    ok(&["generate", "--rows", rows, "--seed", seed, "--out", p(&train)]);
    ok(&[
        "train",
        "--data",
        p(&train),
        "--target",
        "default",
        "--out",
        p(&model),
    ]);
    model
}

/// Byte offsets of the lines of a JSONL file (the file source's event offsets).
fn line_offsets(path: &Path) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap();
    let mut offsets = vec![0u64];
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' && i + 1 < bytes.len() {
            offsets.push(i as u64 + 1);
        }
    }
    offsets
}

fn stream_args<'a>(model: &'a str, events: &'a str, state: &'a str, out: &'a str) -> Vec<String> {
    vec![
        "stream".into(),
        "--model".into(),
        model.into(),
        "--source".into(),
        format!("file:{events}?state={state}"),
        "--sink".into(),
        format!("jsonl:{out}"),
        "--batch-size".into(),
        "256".into(),
        "--commit-every".into(),
        "1000".into(),
        "--quiet".into(),
    ]
}

/// Reads what a run wrote and checks completeness and duplicate consistency.
fn check_output(out: &Path, expected: &[u64]) -> (usize, usize) {
    let inputs = read_lines(&out.join("local/default").join(MODEL_INPUTS)).unwrap();
    let outputs = read_lines(&out.join("local/default").join(MODEL_OUTPUTS)).unwrap();
    let by_corr: BTreeMap<&str, _> = outputs.iter().map(|l| (l.correlationid.as_str(), l)).collect();
    let mut seen: BTreeMap<u64, (String, String)> = BTreeMap::new();
    let mut total = 0;
    for line in &inputs {
        let out_line = by_corr
            .get(line.correlationid.as_str())
            .expect("every inputs line has its outputs line");
        assert_eq!(line.positions.len(), line.data.len());
        for ((pos, row), out_row) in line.positions.iter().zip(&line.data).zip(&out_line.data) {
            total += 1;
            let content = (
                serde_json::to_string(row).unwrap(),
                serde_json::to_string(out_row).unwrap(),
            );
            if let Some(prev) = seen.get(&pos.offset) {
                // A duplicate: same position, same input, same prediction.
                assert_eq!(prev, &content, "duplicate of offset {} differs", pos.offset);
            }
            seen.insert(pos.offset, content);
        }
    }
    let got: BTreeSet<u64> = seen.keys().copied().collect();
    let want: BTreeSet<u64> = expected.iter().copied().collect();
    let missing: Vec<_> = want.difference(&got).take(5).collect();
    assert!(missing.is_empty(), "events never written (offsets): {missing:?}");
    assert_eq!(got, want);
    (total, total - seen.len())
}

/// The crash cases of the fault-injection tests: every named failpoint of the pipeline, then
/// `seeded` more at points drawn from `seed` (a failpoint and how many times it is passed
/// first). Hit counts stay small, so that every process still has input left when it reaches
/// its point: each case is a certain crash, never timing luck.
pub(crate) fn crash_cases(seed: u64, seeded: usize) -> Vec<(&'static str, u64)> {
    let names = [
        "stream.mid_batch",
        "stream.after_write_before_flush",
        "stream.after_flush_before_commit",
    ];
    let mut cases: Vec<(&'static str, u64)> = vec![(names[0], 3), (names[1], 2), (names[2], 1)];
    let mut rng = ml_core::rng::Rng::new(seed);
    for _ in 0..seeded {
        let name = names[rng.below(3) as usize];
        let hit = 1 + rng.below(if name.ends_with("commit") { 2 } else { 4 });
        cases.push((name, hit));
    }
    cases
}

/// `streamscore stream` on one file, killed (aborted) at every named failpoint and at ten
/// seeded points one after the other — each run resuming from the state the killed one
/// committed — and then run to the end: every event is in the output, a repeat carries the
/// same position, input and prediction, and the crashes between flush and commit did repeat
/// events.
#[test]
fn killed_at_every_failpoint_and_seeded_points_until_done_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let model = trained_model(tmp.path(), "2000", "11");
    let events = tmp.path().join("events.jsonl");
    ok(&["generate", "--rows", "20000", "--seed", "12", "--out", p(&events)]);
    let expected = line_offsets(&events);
    assert_eq!(expected.len(), 20000);
    let out = tmp.path().join("out");
    let state = tmp.path().join("state.json");
    let args = stream_args(p(&model), p(&events), p(&state), p(&out));
    let cases = crash_cases(2026, 10);
    assert_eq!(cases.len(), 13);
    for (name, hit) in &cases {
        let crashed = bin()
            .args(&args)
            .env("STREAMSCORE_FAILPOINT", format!("{name}:{hit}"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&crashed.stderr);
        assert!(
            !crashed.status.success(),
            "{name}:{hit} did not stop the process: {stderr}"
        );
        assert!(
            stderr.contains(&format!("failpoint `{name}` hit")),
            "{name}:{hit}: {stderr}"
        );
    }
    let resumed = bin().args(&args).output().unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let (total, duplicates) = check_output(&out, &expected);
    assert_eq!(total - duplicates, expected.len());
    // Flushed but not committed: the next run wrote those records again.
    assert!(
        duplicates > 0,
        "expected repeats after crashes between flush and commit"
    );
    eprintln!(
        "file source: {} crashes, {total} records for {} events ({duplicates} repeated)",
        cases.len(),
        expected.len()
    );
}

#[test]
fn config_file_and_flags_and_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let model = trained_model(tmp.path(), "1000", "1");
    let events = tmp.path().join("events.jsonl");
    ok(&["generate", "--rows", "500", "--seed", "2", "--out", p(&events)]);
    // Two poison lines.
    let mut text = std::fs::read_to_string(&events).unwrap();
    text.push_str("{\"LIMIT_BAL\": \"lots\"}\nnot json\n");
    std::fs::write(&events, text).unwrap();
    let config = tmp.path().join("streamscore.toml");
    std::fs::write(
        &config,
        format!(
            "[stream]\nmodel = \"{}\"\nsource = \"file:{}\"\nsinks = [\"jsonl:{}\"]\ndead_letter = \"jsonl:{}\"\nbatch_size = 100\n",
            p(&model),
            p(&events),
            p(&tmp.path().join("logs")),
            p(&tmp.path().join("dead"))
        ),
    )
    .unwrap();
    let out = bin()
        .args(["stream", "--config", p(&config), "--quiet"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("500 scored, 2 dead letters"), "{stderr}");
    let dead = read_dead(&tmp.path().join("dead"));
    assert_eq!(dead.len(), 2);
    assert!(
        dead[0]["reason"].as_str().unwrap().contains("field `SEX`"),
        "{dead:?}"
    );
    assert!(
        dead[1]["reason"].as_str().unwrap().contains("not valid JSON"),
        "{dead:?}"
    );

    for (args, expect) in [
        (
            vec![
                "stream",
                "--model",
                p(&model),
                "--source",
                "nats://x",
                "--sink",
                "stdout:",
            ],
            "unknown scheme `nats:`",
        ),
        (
            vec![
                "stream",
                "--model",
                p(&model),
                "--source",
                "file:nope.jsonl",
                "--sink",
                "stdout:",
            ],
            "nope.jsonl",
        ),
        (
            vec!["stream", "--model", p(&model), "--source", "stdin:"],
            "no sink",
        ),
        (
            vec![
                "stream",
                "--model",
                p(&model),
                "--source",
                "file:x?folow=1",
                "--sink",
                "stdout:",
            ],
            "unknown parameter `folow`",
        ),
        (
            vec![
                "stream",
                "--model",
                p(&model),
                "--source",
                "stdin:",
                "--sink",
                "blob://container/prefix",
            ],
            if cfg!(feature = "azure") {
                "set AZURE_STORAGE_CONNECTION_STRING"
            } else {
                "`azure` feature"
            },
        ),
    ] {
        let out = bin()
            .args(&args)
            .env_remove("AZURE_STORAGE_CONNECTION_STRING")
            .env_remove("AZURE_STORAGE_SAS_URL")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("error:") && l.contains(expect)),
            "{args:?}: {stderr}"
        );
    }
}

fn read_dead(dir: &Path) -> Vec<serde_json::Value> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "jsonl") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `--model NAME@ALIAS` streams with the registered version, named in every record.
#[test]
fn streams_with_a_registry_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train.csv");
    let events = tmp.path().join("events.jsonl");
    let registry = tmp.path().join("registry");
    let out = tmp.path().join("logs");
    let export = tmp.path().join("export");
    let model = tmp.path().join("model");
    ok(&["generate", "--rows", "800", "--seed", "1", "--out", p(&train)]);
    ok(&[
        "train",
        "--data",
        p(&train),
        "--target",
        "default",
        "--register",
        "credit",
        "--registry",
        p(&registry),
        "--out",
        p(&model),
    ]);
    ok(&["generate", "--rows", "300", "--seed", "2", "--out", p(&events)]);
    ok(&[
        "stream",
        "--model",
        "credit@latest",
        "--registry",
        p(&registry),
        "--source",
        &format!("file:{}", p(&events)),
        "--sink",
        &format!("jsonl:{}", p(&out)),
        "--sink",
        &format!("parquet:{}", p(&export)),
        "--quiet",
    ]);
    // Drift reads the Parquet export: 300 rows of every feature.
    let report = tmp.path().join("drift.json");
    ok(&[
        "drift",
        "--reference",
        p(&model),
        "--current",
        p(&export),
        "--json",
        p(&report),
    ]);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(report.to_string().contains("LIMIT_BAL"), "{report}");
    let outputs = read_lines(&out.join("local/default").join(MODEL_OUTPUTS)).unwrap();
    assert_eq!(outputs.iter().map(|l| l.data.len()).sum::<usize>(), 300);
    assert!(
        outputs.iter().all(|l| l.modelversion == "credit:1"),
        "{:?}",
        outputs[0].modelversion
    );
    // A reference to a version that does not exist is a one-line error.
    let failed = bin()
        .args(["stream", "--model", "credit:9", "--registry", p(&registry)])
        .args(["--source", &format!("file:{}", p(&events)), "--sink", "stdout:"])
        .output()
        .unwrap();
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("credit"));
}

/// A `streamscore serve` child process, killed when the test ends (also when it fails).
struct Server {
    child: std::process::Child,
    url: String,
}

impl Server {
    /// Starts `streamscore serve --port 0 ARGS` and waits for the address it prints first.
    fn start(args: &[&str]) -> Server {
        use std::io::BufRead;
        let mut child = bin()
            .args(["serve", "--port", "0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        std::io::BufReader::new(stdout).read_line(&mut line).unwrap();
        let url = line.trim().to_string();
        let server = Server { child, url };
        assert!(server.url.starts_with("http://"), "serve printed {line:?}");
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Outputs by source position, from the inference log under `out`.
fn outputs_by_position(out: &Path) -> BTreeMap<(u32, u64), serde_json::Map<String, serde_json::Value>> {
    let inputs = read_lines(&out.join("local/default").join(MODEL_INPUTS)).unwrap();
    let outputs = read_lines(&out.join("local/default").join(MODEL_OUTPUTS)).unwrap();
    let by_corr: BTreeMap<&str, _> = outputs.iter().map(|l| (l.correlationid.as_str(), l)).collect();
    let mut all = BTreeMap::new();
    for line in &inputs {
        let out_line = by_corr[line.correlationid.as_str()];
        for (pos, row) in line.positions.iter().zip(&out_line.data) {
            let previous = all.insert((pos.partition, pos.offset), row.clone());
            assert!(previous.is_none(), "scored twice: {pos:?}");
        }
    }
    all
}

/// `stream --remote` scores through a running `streamscore serve`, here reading a directory
/// of two files: every event is scored exactly once, with what local scoring gives.
#[test]
fn stream_remote_scores_through_a_running_server() {
    let tmp = tempfile::tempdir().unwrap();
    let model = trained_model(tmp.path(), "600", "3");
    let events = tmp.path().join("events");
    std::fs::create_dir(&events).unwrap();
    // Generated beside the directory (generate writes a schema file next to its output), then
    // moved in: the directory holds exactly two event files.
    for (name, rows, seed) in [("a.jsonl", "250", "4"), ("b.jsonl", "150", "5")] {
        let generated = tmp.path().join(name);
        ok(&["generate", "--rows", rows, "--seed", seed, "--out", p(&generated)]);
        std::fs::rename(&generated, events.join(name)).unwrap();
    }

    let server = Server::start(&["--model", p(&model)]);
    let (remote, local) = (tmp.path().join("remote"), tmp.path().join("local"));
    let source = format!("dir:{}", p(&events));
    ok(&[
        "stream",
        "--remote",
        &server.url,
        "--remote-batch-size",
        "64",
        "--source",
        &source,
        "--sink",
        &format!("jsonl:{}", p(&remote)),
        "--quiet",
    ]);
    ok(&[
        "stream",
        "--model",
        p(&model),
        "--source",
        &source,
        "--sink",
        &format!("jsonl:{}", p(&local)),
        "--quiet",
    ]);
    let (remote, local) = (outputs_by_position(&remote), outputs_by_position(&local));
    assert_eq!(local.len(), 400);
    let partitions: BTreeSet<u32> = local.keys().map(|(partition, _)| *partition).collect();
    assert_eq!(partitions, BTreeSet::from([0, 1]));
    assert_eq!(
        remote.keys().collect::<Vec<_>>(),
        local.keys().collect::<Vec<_>>()
    );
    for (position, want) in &local {
        let got = &remote[position];
        for (key, w) in want {
            let g = &got[key];
            match (w.as_f64(), g.as_f64()) {
                // The server sends the positive-class probability; the other is 1 - p.
                (Some(w), Some(g)) => assert!((w - g).abs() <= 1e-12, "{position:?} {key}: {g} vs {w}"),
                _ => assert_eq!(g, w, "{position:?} {key}"),
            }
        }
    }
}
