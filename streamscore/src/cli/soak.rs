//! `streamscore soak` (hidden; `scripts/soak.sh` runs it): the soak tests of `serve` and
//! `stream`, run at the same time.
//!
//! - **serve**: a `streamscore serve` process with a model trained here; the built-in load
//!   generator (reqwest on Tokio, `--connections` keep-alive connections, one-row `POST /score`
//!   bodies) first measures the most requests per second it gets through in `--probe-s`
//!   seconds, then holds `--load` (50 %) of that rate, at fixed request times, for
//!   `--duration-s` seconds, counting errors and latencies.
//! - **stream**: a `streamscore stream` process following a file that a steady producer
//!   appends `--stream-rate` events per second to, writing to its standard output, which is
//!   counted; at the end every appended event must have come out.
//!
//! Both processes' RSS and open file descriptors (`/proc/PID/status`, `/proc/PID/fd`) are
//! sampled every `--interval-s` seconds. Checks: no error; RSS growth after the warm-up (the
//! first `--warmup` share of the run) below 5 %; open descriptors flat after the warm-up
//! (spread of at most 2); the serve rate held (at least 90 % of the target); no stream event
//! lost. The report goes to `OUT/soak.json` and `OUT/soak.md` (printed too); a failed check
//! exits with status 1.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

/// Soak settings.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds of steady load (after the serve probe).
    #[arg(long, default_value_t = 600)]
    duration_s: u64,
    /// Seconds between samples of RSS and open file descriptors.
    #[arg(long, default_value_t = 10.0)]
    interval_s: f64,
    /// Seconds of the serve maximum-throughput probe.
    #[arg(long, default_value_t = 10)]
    probe_s: u64,
    /// Share of the measured maximum held during the serve soak.
    #[arg(long, default_value_t = 0.5)]
    load: f64,
    /// Connections (and concurrent requests) of the load generator.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Events per second appended for the stream soak.
    #[arg(long, default_value_t = 1000)]
    stream_rate: u64,
    /// Share of the run that is warm-up: RSS growth and descriptors are judged after it.
    #[arg(long, default_value_t = 0.2)]
    warmup: f64,
    /// Which soaks to run.
    #[arg(long, default_value = "both", value_parser = ["both", "serve", "stream"])]
    only: String,
    /// Directory for the report (soak.json, soak.md) and the work files.
    #[arg(long)]
    out: PathBuf,
}

/// RSS and open descriptors of a process at one time.
#[derive(Debug, Clone, Serialize)]
struct Sample {
    /// Seconds since the steady phase started.
    t_s: f64,
    rss_kb: u64,
    fds: u64,
    /// Requests answered (serve) or records out (stream) so far.
    done: u64,
}

/// What one soak measured, and its verdicts.
#[derive(Debug, Default, Serialize)]
struct SoakReport {
    name: String,
    duration_s: f64,
    /// serve: the probe's rate; stream: none.
    max_per_s: Option<f64>,
    target_per_s: f64,
    achieved_per_s: f64,
    done: u64,
    errors: u64,
    error_examples: Vec<String>,
    lost: i64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    rss_start_kb: u64,
    rss_warm_kb: u64,
    rss_end_kb: u64,
    rss_growth_pct: f64,
    fds_start: u64,
    fds_end: u64,
    fds_spread_after_warmup: u64,
    samples: Vec<Sample>,
    checks: Vec<(String, bool)>,
    pass: bool,
}

impl SoakReport {
    /// Fills the RSS and descriptor figures from the samples and judges everything.
    fn judge(&mut self, warmup_s: f64, held_share: Option<f64>) {
        let after: Vec<&Sample> = self.samples.iter().filter(|s| s.t_s >= warmup_s).collect();
        if let (Some(first), Some(last)) = (self.samples.first(), self.samples.last()) {
            self.rss_start_kb = first.rss_kb;
            self.fds_start = first.fds;
            self.rss_end_kb = last.rss_kb;
            self.fds_end = last.fds;
        }
        let mut checks = vec![("no errors".to_string(), self.errors == 0)];
        if let (Some(warm), Some(last)) = (after.first(), after.last()) {
            self.rss_warm_kb = warm.rss_kb;
            self.rss_growth_pct =
                (last.rss_kb as f64 - warm.rss_kb as f64) / warm.rss_kb.max(1) as f64 * 100.0;
            let (lo, hi) = after
                .iter()
                .fold((u64::MAX, 0), |(lo, hi), s| (lo.min(s.fds), hi.max(s.fds)));
            self.fds_spread_after_warmup = hi - lo;
            checks.push(("RSS growth after warm-up < 5 %".into(), self.rss_growth_pct < 5.0));
            checks.push((
                "open descriptors flat after warm-up (spread <= 2)".into(),
                self.fds_spread_after_warmup <= 2,
            ));
        } else {
            checks.push(("samples after warm-up".into(), false));
        }
        if let Some(share) = held_share {
            checks.push((
                format!("rate held (>= {:.0} % of target)", share * 100.0),
                self.achieved_per_s >= share * self.target_per_s,
            ));
        }
        if self.name == "stream" {
            checks.push(("no event lost".into(), self.lost <= 0));
        }
        self.pass = checks.iter().all(|(_, ok)| *ok);
        self.checks = checks;
    }
}

/// Runs the soaks and writes the report.
pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.duration_s >= 1, "--duration-s must be at least 1");
    anyhow::ensure!(
        args.interval_s > 0.0 && args.interval_s <= args.duration_s as f64,
        "--interval-s must be above 0 and at most --duration-s"
    );
    anyhow::ensure!(args.load > 0.0 && args.load <= 1.0, "--load must be in (0, 1]");
    anyhow::ensure!(args.connections >= 1, "--connections must be at least 1");
    anyhow::ensure!(args.stream_rate >= 1, "--stream-rate must be at least 1");
    let work = args.out.join("work");
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    let exe = std::env::current_exe().context("the streamscore executable")?;
    eprintln!("soak: training a model for the soak ...");
    let model = work.join("model");
    let train = work.join("train.csv");
    let events = work.join("events.jsonl");
    quiet(
        &exe,
        &["generate", "--rows", "3000", "--seed", "1", "--out", s(&train)?],
    )?;
    quiet(
        &exe,
        &[
            "train",
            "--data",
            s(&train)?,
            "--target",
            "default",
            "--out",
            s(&model)?,
        ],
    )?;
    quiet(
        &exe,
        &["generate", "--rows", "2000", "--seed", "2", "--out", s(&events)?],
    )?;
    let lines: Vec<String> = std::fs::read_to_string(&events)?
        .lines()
        .map(str::to_string)
        .collect();
    anyhow::ensure!(!lines.is_empty(), "no events generated");

    let (serve, stream) = std::thread::scope(|scope| {
        let serve = (args.only != "stream").then(|| scope.spawn(|| serve_soak(&args, &exe, &model, &lines)));
        let stream = (args.only != "serve").then(|| scope.spawn(|| stream_soak(&args, &exe, &model, &lines)));
        (serve.map(joined), stream.map(joined))
    });
    let reports: Vec<SoakReport> = [serve, stream]
        .into_iter()
        .flatten()
        .collect::<anyhow::Result<_>>()?;
    let json = serde_json::json!({
        "duration_s": args.duration_s,
        "interval_s": args.interval_s,
        "warmup_share": args.warmup,
        "load_share": args.load,
        "connections": args.connections,
        "soaks": reports,
        "pass": reports.iter().all(|r| r.pass),
    });
    std::fs::write(args.out.join("soak.json"), serde_json::to_vec_pretty(&json)?)?;
    let md = markdown(&args, &reports);
    std::fs::write(args.out.join("soak.md"), &md)?;
    print!("{md}");
    let failed: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.checks
                .iter()
                .filter(|(_, ok)| !ok)
                .map(move |(c, _)| format!("{}: {c}", r.name))
        })
        .collect();
    if !failed.is_empty() {
        bail!("soak failed: {}", failed.join("; "));
    }
    Ok(())
}

fn joined(
    handle: std::thread::ScopedJoinHandle<'_, anyhow::Result<SoakReport>>,
) -> anyhow::Result<SoakReport> {
    handle
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the soak thread panicked")))
}

fn s(p: &Path) -> anyhow::Result<&str> {
    p.to_str().context("a work path is not UTF-8")
}

/// Runs `exe ARGS` to completion, failing with its standard error.
fn quiet(exe: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(exe).args(args).output()?;
    if !out.status.success() {
        bail!(
            "streamscore {} failed: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A child process stopped (SIGTERM, then SIGKILL) on every exit path.
struct Guard(Child);

impl Guard {
    /// Asks the process to stop (SIGTERM) and waits up to `within`; true when it exited
    /// successfully.
    fn terminate(&mut self, within: Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        loop {
            match self.0.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => return false,
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// RSS (kB) and open descriptors of `pid`.
fn probe(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is gone"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
    Ok((rss, fds))
}

/// Samples `pid` every `interval` until `stop`, and once more when stopped, with `done()` beside
/// each sample.
fn sampler(
    pid: u32,
    interval: Duration,
    start: Instant,
    stop: &AtomicBool,
    done: &dyn Fn() -> u64,
) -> anyhow::Result<Vec<Sample>> {
    let mut samples = Vec::new();
    let mut next = start;
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
            continue;
        }
        let (rss_kb, fds) = probe(pid)?;
        samples.push(Sample {
            t_s: start.elapsed().as_secs_f64(),
            rss_kb,
            fds,
            done: done(),
        });
        next += interval;
    }
    // One last sample at the end of the load.
    let (rss_kb, fds) = probe(pid)?;
    samples.push(Sample {
        t_s: start.elapsed().as_secs_f64(),
        rss_kb,
        fds,
        done: done(),
    });
    Ok(samples)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// The load generator's tally.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    errors: AtomicU64,
    examples: Mutex<Vec<String>>,
    latencies_us: Mutex<Vec<u32>>,
}

impl Tally {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut examples = self.examples.lock().unwrap_or_else(|p| p.into_inner());
        if examples.len() < 5 {
            examples.push(what);
        }
    }
}

/// One request; counted in `tally`.
async fn request(client: &reqwest::Client, url: &str, body: &str, tally: &Tally, keep_latency: bool) {
    let started = Instant::now();
    let result = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await;
    match result {
        Ok(response) => {
            let status = response.status();
            let text = response.bytes().await;
            match text {
                Ok(_) if status.is_success() => {
                    tally.ok.fetch_add(1, Ordering::Relaxed);
                    if keep_latency {
                        let us = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
                        tally
                            .latencies_us
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(us);
                    }
                }
                Ok(b) => tally.error(format!(
                    "{status}: {}",
                    String::from_utf8_lossy(&b[..b.len().min(200)])
                )),
                Err(e) => tally.error(format!("reading the answer: {e}")),
            }
        }
        Err(e) => tally.error(format!("request: {e}")),
    }
}

fn serve_soak(args: &Args, exe: &Path, model: &Path, lines: &[String]) -> anyhow::Result<SoakReport> {
    let err_log = std::fs::File::create(args.out.join("work/serve.stderr"))?;
    let mut server = Guard(
        Command::new(exe)
            .args(["serve", "--port", "0", "--model", s(model)?])
            .stdout(Stdio::piped())
            .stderr(err_log)
            .spawn()?,
    );
    let mut first = String::new();
    BufReader::new(server.0.stdout.take().context("serve's stdout")?).read_line(&mut first)?;
    let base = first.trim().to_string();
    anyhow::ensure!(base.starts_with("http://"), "serve printed {first:?}");
    let pid = server.0.id();
    // One-row bodies as a client sends them: the event's features without the label.
    let bodies: Vec<String> = lines
        .iter()
        .take(100)
        .map(|l| -> anyhow::Result<String> {
            let mut row: serde_json::Map<String, serde_json::Value> = serde_json::from_str(l)?;
            row.remove("default");
            Ok(serde_json::json!({ "data": [row] }).to_string())
        })
        .collect::<anyhow::Result<_>>()?;
    let bodies = Arc::new(bodies);
    let url = Arc::new(format!("{base}/score"));
    let rt = runtime()?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()?;
    // Ready?
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = client.get(format!("{base}/v2/health/ready")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("serve did not become ready");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })?;

    // The probe: every connection sends its next request as soon as the last is answered.
    eprintln!("soak: serve: measuring the maximum for {} s ...", args.probe_s);
    let probe_tally = Arc::new(Tally::default());
    let probe_for = Duration::from_secs(args.probe_s.max(1));
    rt.block_on(async {
        let end = Instant::now() + probe_for;
        let mut tasks = Vec::new();
        for c in 0..args.connections {
            let (client, url, bodies, tally) =
                (client.clone(), url.clone(), bodies.clone(), probe_tally.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = c;
                while Instant::now() < end {
                    request(&client, &url, &bodies[i % bodies.len()], &tally, false).await;
                    i += 1;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    let max = probe_tally.ok.load(Ordering::SeqCst) as f64 / probe_for.as_secs_f64();
    let target = (max * args.load).max(1.0);
    eprintln!(
        "soak: serve: maximum {max:.0} req/s; holding {target:.0} req/s for {} s",
        args.duration_s
    );

    // The soak: request k is due at start + k / target, spread over the connections.
    let tally = Arc::new(Tally::default());
    let duration = Duration::from_secs(args.duration_s);
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let samples = std::thread::scope(|scope| {
        let sampled = scope.spawn(|| {
            sampler(
                pid,
                Duration::from_secs_f64(args.interval_s),
                start,
                &stop,
                &|| tally.ok.load(Ordering::Relaxed),
            )
        });
        rt.block_on(async {
            let next = Arc::new(AtomicU64::new(0));
            let mut tasks = Vec::new();
            for _ in 0..args.connections {
                let (client, url, bodies, tally, next) = (
                    client.clone(),
                    url.clone(),
                    bodies.clone(),
                    tally.clone(),
                    next.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    loop {
                        let k = next.fetch_add(1, Ordering::SeqCst);
                        let due = Duration::from_secs_f64(k as f64 / target);
                        if due >= duration {
                            break;
                        }
                        tokio::time::sleep_until((start + due).into()).await;
                        request(&client, &url, &bodies[k as usize % bodies.len()], &tally, true).await;
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        });
        stop.store(true, Ordering::SeqCst);
        sampled
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("sampler panicked")))
    })?;
    let elapsed = start.elapsed().as_secs_f64();
    let stopped_cleanly = server.terminate(Duration::from_secs(30));
    let mut latencies = std::mem::take(&mut *tally.latencies_us.lock().unwrap_or_else(|p| p.into_inner()));
    latencies.sort_unstable();
    let pct = |q: f64| -> Option<f64> {
        (!latencies.is_empty())
            .then(|| latencies[((latencies.len() - 1) as f64 * q).round() as usize] as f64 / 1e3)
    };
    let done = tally.ok.load(Ordering::SeqCst);
    let mut errors = tally.errors.load(Ordering::SeqCst);
    let mut error_examples = tally.examples.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if !stopped_cleanly {
        errors += 1;
        error_examples.push("serve did not stop cleanly on SIGTERM".into());
    }
    let mut report = SoakReport {
        name: "serve".into(),
        duration_s: elapsed,
        max_per_s: Some(max),
        target_per_s: target,
        // Requests due in the run, answered, over the run's length.
        achieved_per_s: done as f64 / duration.as_secs_f64(),
        done,
        errors,
        error_examples,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        samples,
        ..SoakReport::default()
    };
    report.judge(args.warmup * args.duration_s as f64, Some(0.9));
    Ok(report)
}

fn stream_soak(args: &Args, exe: &Path, model: &Path, lines: &[String]) -> anyhow::Result<SoakReport> {
    let events = args.out.join("work/stream-events.jsonl");
    let mut file = std::fs::File::create(&events)?;
    let source = format!("file:{}?follow=true", s(&events)?);
    let mut child = Guard(
        Command::new(exe)
            .args([
                "stream",
                "--model",
                s(model)?,
                "--source",
                source.as_str(),
                "--sink",
                "stdout:",
                "--quiet",
            ])
            .args(["--commit-interval-ms", "1000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?,
    );
    let pid = child.0.id();
    let records = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(Mutex::new(Vec::<String>::new()));
    let out = child.0.stdout.take().context("stream's stdout")?;
    let counter = std::thread::spawn({
        let (records, bad) = (records.clone(), bad.clone());
        move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let ok = serde_json::from_str::<serde_json::Value>(&line)
                    .is_ok_and(|v| v.get("outputs").is_some_and(|o| o.is_object()));
                if ok {
                    records.fetch_add(1, Ordering::Relaxed);
                } else {
                    bad.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(line.chars().take(200).collect());
                }
            }
        }
    });
    let err = child.0.stderr.take().context("stream's stderr")?;
    let complaints = std::thread::spawn({
        let bad = bad.clone();
        move || {
            // With --quiet, standard error has the start, shutdown and summary lines; dead
            // letters, warnings (sink retries), errors and panics are problems.
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let bad_line = ["dead letter", "warning", "error"]
                    .iter()
                    .any(|p| line.starts_with(p))
                    || line.contains("panicked");
                if bad_line {
                    bad.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(line.chars().take(200).collect());
                }
            }
        }
    });
    eprintln!(
        "soak: stream: {} events/s for {} s ...",
        args.stream_rate, args.duration_s
    );
    let duration = Duration::from_secs(args.duration_s);
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let (samples, produced) = std::thread::scope(|scope| {
        let sampled = scope.spawn(|| {
            sampler(
                pid,
                Duration::from_secs_f64(args.interval_s),
                start,
                &stop,
                &|| records.load(Ordering::Relaxed),
            )
        });
        // The producer: every 10 ms, the events due by then, appended and flushed.
        let mut produced = 0u64;
        let mut chunk = String::new();
        loop {
            let now = start.elapsed();
            let due = ((now.min(duration)).as_secs_f64() * args.stream_rate as f64) as u64;
            chunk.clear();
            while produced < due {
                chunk.push_str(&lines[produced as usize % lines.len()]);
                chunk.push('\n');
                produced += 1;
            }
            if !chunk.is_empty() {
                file.write_all(chunk.as_bytes())?;
                file.flush()?;
            }
            if now >= duration {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::SeqCst);
        let samples = sampled
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("sampler panicked")))?;
        anyhow::Ok((samples, produced))
    })?;
    let elapsed = start.elapsed().as_secs_f64();
    // Every event appended comes out; then the process stops cleanly.
    let deadline = Instant::now() + Duration::from_secs(60);
    while records.load(Ordering::SeqCst) < produced && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopped_cleanly = child.terminate(Duration::from_secs(30));
    drop(child);
    let _ = counter.join();
    let _ = complaints.join();
    let out = records.load(Ordering::SeqCst);
    let mut error_examples = bad.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut errors = error_examples.len() as u64;
    if !stopped_cleanly {
        errors += 1;
        error_examples.push("stream did not stop cleanly on SIGTERM".into());
    }
    error_examples.truncate(5);
    let mut report = SoakReport {
        name: "stream".into(),
        duration_s: elapsed,
        target_per_s: args.stream_rate as f64,
        achieved_per_s: produced as f64 / duration.as_secs_f64(),
        done: out,
        errors,
        error_examples,
        lost: produced as i64 - out as i64,
        samples,
        ..SoakReport::default()
    };
    report.judge(args.warmup * args.duration_s as f64, None);
    Ok(report)
}

fn markdown(args: &Args, reports: &[SoakReport]) -> String {
    let mut md = format!(
        "# Soak report\n\n{} s of steady load (warm-up: first {:.0} %), sampled every {} s; serve at {:.0} % of its measured maximum over {} connections.\n\n",
        args.duration_s,
        args.warmup * 100.0,
        args.interval_s,
        args.load * 100.0,
        args.connections
    );
    md.push_str("| soak | max/s | target/s | held/s | done | errors | p50 ms | p99 ms | RSS start kB | RSS warm kB | RSS end kB | RSS growth | fds start | fds end | fd spread | pass |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let opt = |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
    for r in reports {
        md.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {:+.2} % | {} | {} | {} | {} |\n",
            r.name,
            opt(r.max_per_s, 0),
            r.target_per_s,
            r.achieved_per_s,
            r.done,
            r.errors,
            opt(r.p50_ms, 3),
            opt(r.p99_ms, 3),
            r.rss_start_kb,
            r.rss_warm_kb,
            r.rss_end_kb,
            r.rss_growth_pct,
            r.fds_start,
            r.fds_end,
            r.fds_spread_after_warmup,
            if r.pass { "yes" } else { "NO" }
        ));
    }
    for r in reports {
        md.push_str(&format!("\n## {}\n\n", r.name));
        for (check, ok) in &r.checks {
            md.push_str(&format!("- [{}] {check}\n", if *ok { "x" } else { " " }));
        }
        for e in &r.error_examples {
            md.push_str(&format!("- error: `{e}`\n"));
        }
    }
    md
}
