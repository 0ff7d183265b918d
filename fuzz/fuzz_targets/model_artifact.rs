//! The artifact loader (`ModelArtifact::load`: the `checksums` file, path checks, `MLmodel`
//! YAML, the `streamscore` flavor, `metrics.json`, attachments; then `load_model`) on an
//! artifact directory written from the input, then scoring rows drawn from the input.
//!
//! Input: parts separated by the line `%%`: `MLmodel`, the model file (`model.json` or the
//! name the flavor gives), `metrics.json`, then optional extra `checksums` lines; the last
//! part's tail holds the rows (`... ++ rows ++ [len]`). The checksums of the written files are
//! computed here, so the fuzzer gets past verification to the parsers behind it; the extra
//! lines exercise the checksum file's own parser (unsafe paths, malformed hashes).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ml_core::ModelArtifact;
use ml_core::artifact::sha256_hex;
use streamscore_fuzz::{Bytes, predict_and_check, rows, split_tail};

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        base.join(format!("streamscore-fuzz-artifact-{}", std::process::id()))
    })
}

/// A name the target may create in its scratch directory.
fn plain_name(n: &str) -> bool {
    !n.is_empty()
        && !n.starts_with('.')
        && n != "checksums"
        && n != "MLmodel"
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
}

fn parts(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(4).position(|w| w == b"\n%%\n") {
        out.push(&rest[..i]);
        rest = &rest[i + 4..];
    }
    out.push(rest);
    out
}

fuzz_target!(|data: &[u8]| {
    let (data, tail) = split_tail(data);
    let parts = parts(data);
    let dir = dir();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("a scratch directory");
    let mlmodel = parts[0];
    // The model file's name as the flavor gives it, when it is a plain name.
    let model_file = std::str::from_utf8(mlmodel)
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.trim().strip_prefix("model_file:")))
        .map(|n| n.trim().trim_matches(['"', '\'']).to_string())
        .filter(|n| plain_name(n))
        .unwrap_or_else(|| "model.json".to_string());
    let mut files: Vec<(String, &[u8])> = vec![("MLmodel".to_string(), mlmodel)];
    if let Some(&model) = parts.get(1) {
        files.push((model_file, model));
    }
    if let Some(&metrics) = parts.get(2) {
        files.push(("metrics.json".to_string(), metrics));
    }
    let mut sums = String::new();
    for (name, bytes) in &files {
        if std::fs::write(dir.join(name), bytes).is_err() {
            return;
        }
        sums.push_str(&format!("{}  {name}\n", sha256_hex(bytes)));
    }
    if let Some(extra) = parts.get(3) {
        sums.push_str(&String::from_utf8_lossy(extra));
    }
    std::fs::write(dir.join("checksums"), sums).expect("writable scratch directory");
    let Ok(artifact) = ModelArtifact::load(dir) else {
        return;
    };
    let Ok(model) = artifact.load_model() else {
        return;
    };
    if let Some(frame) = rows(model.schema(), &mut Bytes(tail)) {
        predict_and_check(model.as_ref(), &frame);
    }
});
