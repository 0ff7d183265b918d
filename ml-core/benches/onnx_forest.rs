//! Scoring the fixture forest (scikit-learn `RandomForestClassifier`, 100 trees of depth 8 on
//! 20 features, exported with skl2onnx without ZipMap) through `OnnxModel` on one thread, at
//! batch sizes 1, 64 and 4096, with both engines in the same run: `runtime` (ONNX Runtime, one
//! intra-op and one inter-op thread) and `native` (the graph compiled into the flat forest
//! layout). The time includes building the input from the frame and reading the probabilities
//! back, as a scorer pays it. The same for the logistic regression fixture (scikit-learn
//! `LogisticRegression` on 20 features, skl2onnx `LinearClassifier` without ZipMap):
//! `onnx_lr_f20_1thread/{runtime,native}`.
//!
//! Run with `cargo bench -p ml-core --features onnx --bench onnx_forest` after
//! `./scripts/python-env.sh` (or with STREAMSCORE_ORT_LIB / ORT_DYLIB_PATH set);
//! `BENCH_CLOCK=thread-cpu` times the thread's on-CPU time, as in the `inference` benchmark.
//!
//! Measured on the 2-core development machine (shared, so noisy), onnxruntime 1.31.1: batch 1
//! 14.4 µs (69k rows/s), batch 64 429 µs (149k rows/s), batch 4096 33.6 ms (122k rows/s). Python
//! onnxruntime on the same file and settings, same minute: 36 µs, 639 µs, 31.5 ms.

//!
//! Forest (`onnx_rf100_d8_f20_1thread`) before and after the fused tree pass (the classifier
//! graph compiled into one pass from the frame's columns through the flat forest, with the
//! third forest-kernel revision of the `inference` benchmark), same machine at load 13 to 16,
//! fastest of criterion's 100 samples, per row at batch 1 and rows per second otherwise. Before
//! (wall clock, since the benchmark then had no `BENCH_CLOCK`): ONNX Runtime 7.48 µs, 309k,
//! 181k; native 4.31 µs, 932k, 465k. After (`BENCH_CLOCK=thread-cpu`): ONNX Runtime 7.86 µs,
//! 278k, 382k; native 2.13 µs, 1.46M, 1.32M (3.5× ONNX Runtime's on-CPU rate at 4096, 5.3× at
//! 64, 3.7× per row at batch 1; medians 2.28 µs, 1.11M, 1.22M). ONNX Runtime with one intra-op
//! thread runs on the calling thread, so its on-CPU time is all of its work.
//!
//! Logistic regression (`onnx_lr_f20_1thread`), same machine, `BENCH_CLOCK=thread-cpu`, one run
//! each, load 6 to 8. Before the fused linear pass: ONNX Runtime 17.7 µs, 2.76M rows/s, 6.30M
//! rows/s at batches 1, 64, 4096; native 2.15 µs, 2.50M, 4.61M (0.73× ONNX Runtime at 4096).
//! After: ONNX Runtime 14.3 µs, 2.90M, 6.92M; native 2.05 µs, 18.4M, 31.1M (6.4× and 4.5× ONNX
//! Runtime at 64 and 4096, 7× faster per row at batch 1).
//!
//! Forest after cutting the per-call overhead (the frame built with the model's schema passes
//! the schema check by a pointer comparison and without allocating; single-row columns read
//! without a copy's set-up; the classifier's per-call scratch held inline): instructions per
//! one-row call (callgrind, `Model::predict` inclusive) 12.5k → 10.0k; native batch 1 1.81 µs
//! (`BENCH_CLOCK=thread-cpu`, load 5).
//!
//! Until then the batches cycled the fixture's 40 rows, so ONNX Runtime's branching tree walk
//! learned their paths (branch predictor, caches) and ran at 383–394k rows/s at 4096; batches
//! now hold distinct rows (each feature drawn from a fixture row by a hash, [`distinct_rows`]),
//! as real traffic and `bench/compare` (random rows) do, and ONNX Runtime runs at 185–194k.
//! The native walk is branch-free and does not care. Three runs pinned to one core, wall clock,
//! load 1, medians: ONNX Runtime 8.5–11.7 µs at batch 1 and 185–194k rows/s at 4096; native
//! 1.77–2.09 µs and 1.45–1.75M rows/s (7.8–9.0× ONNX Runtime at 4096, in each run's own
//! pairing; this shared machine's speed moved by about 20% between the runs).
//!
//! Forest after the `f32` walk (the float input tensor's values walked as `f32` against `f32`
//! thresholds, the same bits): instructions per native call at 4096 rows 18.2M → 15.1M
//! (callgrind). Old and new benchmark binaries alternated, pinned to one core,
//! `BENCH_CLOCK=thread-cpu`, load 6 to 7 (the other core busy compiling), criterion's middle
//! estimates: native at 4096 rows 2.69, 3.02, 3.05, 2.93 ms before and 2.71, 2.85, 2.64, 2.77 ms
//! after (about 6% faster on average; the two new runs that also timed ONNX Runtime, 22.5 and
//! 23.8 ms, put native at 8.3× and 8.4× it, against 8.4× and 7.5× in the two old ones); at 64 rows 49.5 and 44.8 µs before, 36.1 and 39.4 µs after; at one row 2.13 and
//! 1.94 µs before, 1.84 and 1.84 µs after.
//!
//! Tried after the `f32` walk and not kept (same method, load 7 to 9): walking several
//! 128-row `f32` blocks through each tree before the next, so that a tree's nodes and leaf
//! values come from the outer caches once per pass rather than once per block. Native at 4096
//! rows, four alternated rounds: 2.71, 2.69, 2.47, 2.74 ms for the current binary; 2.72,
//! 2.62, 2.56, 2.74 ms with 2 blocks per pass; 2.63, 2.83, 2.57, 2.55 ms with 4 (within the
//! noise); 8 blocks per pass mixed, all 32 at once about 15% slower in two rounds (the
//! blocks' values, 10 KiB each, then no longer fit the inner caches). Computing the next 16
//! rows' vector levels between the current rows' deeper levels (software pipelining) was
//! 5–25% slower in three rounds. All four deeper levels in one written-out step per eight rows
//! (instead of two steps of two) made no difference: 2.59, 2.60, 2.73 ms against 2.73, 2.42,
//! 2.71 ms alternated.

use std::path::Path;

use criterion::measurement::Measurement;
use criterion::{BenchmarkId, Criterion, Throughput};
use ml_core::onnx::{Engine, OnnxModel, OnnxOptions};
use ml_core::rng::splitmix64;
use ml_core::{Frame, Model, Value};

fn fixture_rows(dir: &Path, name: &str) -> Vec<Vec<Value>> {
    let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).expect("fixture JSON");
    let json: serde_json::Value = serde_json::from_str(&text).expect("fixture JSON parses");
    serde_json::from_value(json["rows"].clone()).expect("fixture rows")
}

/// `n` rows whose feature `j` is feature `j` of a fixture row drawn by a stateless hash, so that
/// the rows are (almost surely) distinct, with the fixture's value distribution per feature.
/// Cycling the fixture's 40 rows instead would let a branching tree walk (ONNX Runtime's)
/// learn their 40 paths in the branch predictor and the caches, which no real batch allows.
fn distinct_rows(rows: &[Vec<Value>], n: usize) -> Vec<Vec<Value>> {
    (0..n)
        .map(|i| {
            (0..rows[0].len())
                .map(|j| {
                    let h = splitmix64(((i as u64) << 16) ^ j as u64);
                    rows[(h % rows.len() as u64) as usize][j].clone()
                })
                .collect()
        })
        .collect()
}

fn bench<M: Measurement>(c: &mut Criterion<M>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx");
    for (fixture, group_name) in [
        ("bench_rf100_d8_f20", "onnx_rf100_d8_f20_1thread"),
        ("bench_lr_f20", "onnx_lr_f20_1thread"),
    ] {
        let rows = fixture_rows(&dir, fixture);
        for engine in [Engine::Runtime, Engine::Native] {
            let options = OnnxOptions {
                engine,
                ..OnnxOptions::default()
            };
            let model = match OnnxModel::load(dir.join(format!("{fixture}.onnx")), None, &options) {
                Ok(m) => m,
                Err(e) => panic!("cannot load {fixture} with the {engine} engine: {e}"),
            };
            let mut group = c.benchmark_group(format!("{group_name}/{engine}"));
            for batch in [1usize, 64, 4096] {
                let batch_rows = distinct_rows(&rows, batch);
                let frame = Frame::from_rows(model.schema().clone(), &batch_rows).expect("frame");
                group.throughput(Throughput::Elements(batch as u64));
                group.bench_with_input(BenchmarkId::from_parameter(batch), &frame, |b, frame| {
                    b.iter(|| model.predict(frame).expect("predict"))
                });
            }
            group.finish();
        }
    }
}

fn main() {
    #[cfg(unix)]
    if thread_cpu::wanted() {
        let mut c = Criterion::default()
            .with_measurement(thread_cpu::ThreadCpu)
            .configure_from_args();
        bench(&mut c);
        c.final_summary();
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}

#[cfg(unix)]
#[path = "../../test-support/thread_cpu.rs"]
mod thread_cpu;
