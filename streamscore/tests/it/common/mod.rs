//! Running the `streamscore` binary as a user does, shared by the CLI test files.
// Each test file uses the helpers it needs.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs `streamscore ARGS` with extra environment variables.
pub fn streamscore_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_streamscore"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the streamscore binary runs")
}

/// Runs `streamscore ARGS`.
pub fn streamscore(args: &[&str]) -> Output {
    streamscore_env(args, &[])
}

/// Runs a command that must succeed; returns its stdout and stderr.
pub fn ok(args: &[&str]) -> (String, String) {
    let out = streamscore(args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "streamscore {args:?} failed:\n{stderr}");
    (stdout, stderr)
}

/// Runs a command that must fail with exit status 1 and one `error:` line, without a panic;
/// returns that line.
pub fn fails_env(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = streamscore_env(args, env);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "streamscore {args:?} should fail with 1:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line expected:\n{stderr}");
    lines[0].to_string()
}

/// [`fails_env`] without extra environment.
pub fn fails(args: &[&str]) -> String {
    fails_env(args, &[])
}

/// A path as a command-line argument.
pub fn p(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}
