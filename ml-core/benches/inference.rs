//! Prediction throughput on one thread: a random forest of 100 trees of depth 8 on 20 numeric
//! features, and a logistic regression on the same features, at batches of 1, 64 and 4096
//! rows.
//!
//! Run with `cargo bench -p ml-core --bench inference` (add `-- --warm-up-time 1
//! --measurement-time 3` for a quicker pass). Criterion reports rows per second
//! (`elem/s`). Each model is measured four ways:
//! - `frame`: `Model::predict` on a `Frame`, what scorers call (preprocessing, the compiled
//!   kernel, and the `Predictions` arrays);
//! - `unoptimized`: the path models took before kernels (a design matrix for the whole batch,
//!   then the fitted parameters' own `predict`), for comparison;
//! - `features`: `NativeModel::predict_features` on a ready design matrix (the lean path);
//! - `kernel`: the kernel alone into a preallocated output (no allocation at all); for the
//!   forest also with every tree in the linked layout (`kernel_linked`), to compare layouts.
//!
//! With `BENCH_CLOCK=thread-cpu` (Unix) the benchmarks time the thread's on-CPU time instead of
//! wall-clock time: on a machine shared with other work, wall-clock time counts the time the
//! thread waited for a core; on-CPU time is what an idle machine would show.
//!
//! Measured on the shared 2-vCPU AMD EPYC development machine (load average about 11, so
//! with `BENCH_CLOCK=thread-cpu`), rows per second or time per batch:
//!
//! | model, batch       | `frame`     | `unoptimized` | `features`  | `kernel`    | `kernel_linked` |
//! |--------------------|-------------|---------------|-------------|-------------|-----------------|
//! | forest, 1          | 3.9 µs      | 4.6 µs        | 2.3 µs      | 2.4–2.7 µs  | 3.2 µs          |
//! | forest, 64         | 411k        | 38.7k         | 414k        | 401k        | 208k            |
//! | forest, 4096       | 414k        | 42.6k         | 429k        | 430k        | 192k            |
//! | logistic, 1        | 0.99 µs     | 1.99 µs       | 0.31 µs     | 0.19 µs     |                 |
//! | logistic, 64       | 32.3M       | 6.8M          | 26.1M       | 24.2M       |                 |
//! | logistic, 4096     | 34.7M       | 9.0M          | 22.2M       | 35.1M       |                 |
//!
//! What was tried, on the same machine and clock (forest and logistic regression at 4096):
//! - forest, linked nodes (explicit children, self-looping leaves) walked 8 rows at a time:
//!   192k rows/s; perfect heap-ordered trees (no child loads): 2.2× that;
//! - logistic regression on a preprocessed block (standard scaling divides every value):
//!   19.8M rows/s; scaling folded into the weights and read straight from the frame's
//!   columns: 25.3M; with a branch-free sigmoid and an exp the compiler vectorizes: 34.7M.
//!
//! Forest, before and after the second kernel revision (16 rows in flight per tree instead of
//! 8; threshold and feature of a split side by side in one 16-byte record; one bounds check
//! per call instead of one per visit; consecutive trees grouped by 8 and padded to the
//! group's depth for the single-row walk). One run each, same machine, same clock
//! (`BENCH_CLOCK=thread-cpu`, `-- forest --warm-up-time 1 --measurement-time 3`), load average
//! 8 to 10 on 2 vCPUs, so differences under about 20% are noise (`unoptimized`, unchanged
//! code, read 64.7k before and 46.3k after at 4096); medians, rows per second or time per
//! batch:
//!
//! | forest, batch | `frame`         | `features`      | `kernel`        | `kernel_linked` |
//! |---------------|-----------------|-----------------|-----------------|-----------------|
//! | 1             | 4.21 → 3.70 µs  | 3.13 → 2.80 µs  | 2.19 → 1.99 µs  | 3.16 → 3.71 µs  |
//! | 64            | 474k → 422k     | 449k → 478k     | 522k → 607k     | 223k → 240k     |
//! | 4096          | 469k → 464k     | 521k → 540k     | 419k → 606k     | 227k → 287k     |
//!
//! On a quiet 16-core Intel Xeon (wall clock, before this revision): `frame` 3.84 µs at 1,
//! 710k rows/s at 64, 670k at 4096; `kernel` 1.69 µs, 657k, 623k; ONNX Runtime 1 thread 10.5
//! µs and 290k. The targets (1.5M rows/s at 4096, 2 µs at batch 1 for `frame`) are not met
//! on either machine. A profile of `frame` at 4096 after this revision (perf, same machine):
//! 64% of the time in the forest kernel, 1.5% in preprocessing; the most expensive single
//! spot (17% of all samples) is adding the leaf values after a 16-row walk, that is waiting
//! for the walk's last level, since one walk (16 rows × 8 levels, about 1000 instructions)
//! is too long for the out-of-order window to overlap with the next; the 16 positions and
//! row offsets also spill to the stack. Next to try: two trees' walks interleaved per block
//! of rows, or the leaf values added one tree later (software pipelining), and `u16`/`u32`
//! positions so that the lanes fit in registers.
//!
//! Forest, before and after the third kernel revision: nodes as two parallel arrays
//! (thresholds, and each feature's offset in a feature-major block, so a node's fields are
//! found by scaling its index and a lane's value is the node's offset plus the lane), heap
//! order from 1 (a step is `i = 2i + went_right`), every input walked as a feature-major block
//! (the design matrix of `kernel` and `features` is transposed block by block), and the schema
//! check comparing fields only (a derived comparison also compared the name index, hashing
//! every name again: most of `frame`'s extra cost at batch 1). Same machine, `BENCH_CLOCK=
//! thread-cpu`, `-- 'random_forest_100x8/(frame|features|kernel)/' --warm-up-time 1
//! --measurement-time 2`, the two builds run alternately twice, load 13 to 16 on 2 vCPUs.
//! Since the load varies from sample to sample, the figures are the fastest of criterion's 100
//! samples (the median is 5–30% slower); per row at batch 1, rows per second otherwise:
//!
//! | forest, batch | `frame`                 | `features`              | `kernel`                |
//! |---------------|-------------------------|-------------------------|-------------------------|
//! | 1             | 2.52 → 1.64–1.73 µs     | 1.70–1.74 → 1.49–1.52 µs| 1.57–1.61 → 1.31–1.42 µs|
//! | 64            | 0.88–0.90M → 1.50–1.51M | 0.96–1.00M → 1.37–1.53M | 0.98–1.00M → 1.57–1.61M |
//! | 4096          | 0.90–0.92M → 1.49–1.52M | 0.94–0.98M → 1.48–1.49M | 0.94–0.95M → 1.56–1.58M |
//!
//! Medians of the same runs after the revision: `frame` 1.74–1.85 µs at batch 1, 1.27–1.33M
//! at 64, 1.22–1.37M at 4096. What else was tried in this revision (`kernel` at 4096, fastest
//! sample, one build with the variants chosen at run time, so the same code otherwise): 16
//! rows per tree 1.44M rows/s; 8 rows 1.10M; 12 rows 1.22M; 32 rows 0.97M (positions and row
//! offsets spill to the stack); two trees interleaved over 8 rows 1.14M (1.36M at batch 64),
//! over 6 rows 1.11M. The compiled walk is 6 instructions per step (threshold, offset, compare
//! with the value in memory, `setb`, `lea`); at 16 rows some positions live on the stack, and
//! the level loop is not unrolled.
//!
//! Logistic regression, before and after the SIMD linear kernels (rows 8 at a time in
//! structure-of-arrays form, AVX2 chosen at run time, row-major input transposed 4 × 4 in
//! registers, Estrin exp). Same machine, `BENCH_CLOCK=thread-cpu`, `-- logistic_regression
//! --warm-up-time 1 --measurement-time 3`, the two builds run one after the other, load 6 to 8;
//! medians, rows per second or time per batch:
//!
//! | logistic, batch | `frame`          | `features`       | `kernel`         |
//! |-----------------|------------------|------------------|------------------|
//! | 1               | 1.00 → 1.39 µs   | 297 → 235 ns     | 185 → 118 ns     |
//! | 64              | 25.1M → 32.9M    | 31.2M → 51.4M    | 23.3M → 94.8M    |
//! | 4096            | 43.3M → 52.6M    | 21.4M → 62.9M    | 26.2M → 88.7M    |
//!
//! Profile of `kernel` at 4096 before the in-register transpose: copying the row-major block
//! into columns took half of the time, the link a quarter (Horner's 13 dependent steps per
//! group; Estrin's scheme cut it by about half), the scores the rest. `frame` at batch 1 is
//! dominated by the schema check and the `Predictions` arrays (the difference is within this
//! machine's noise).
//!
//! Forest, fourth kernel revision: the first three levels of a perfect tree are decided four rows
//! at a time in AVX2 registers (each of their 7 nodes compared for four adjacent rows with one
//! load and one compare, each row's path picked with blends), and only the deeper levels are
//! walked row by row; a forest's last, shorter group of trees walks in lockstep too, and a single
//! row's sums stay in registers. The old and new builds run alternately, `BENCH_CLOCK=thread-cpu`,
//! `-- 'random_forest_100x8/(frame|kernel)/' --warm-up-time 1 --measurement-time 2`, load 2.7
//! (batches 64 and 4096) and 7 (batch 1); medians, rows per second or time per batch:
//!
//! | forest, batch | `frame`                   | `kernel`                  |
//! |---------------|---------------------------|---------------------------|
//! | 1             | 2.25–2.41 → 2.00–2.30 µs  | 1.79–1.80 → 1.58–1.67 µs  |
//! | 64            | 0.92–1.13M → 1.37–1.47M   | 0.96–1.06M → 1.42M        |
//! | 4096          | 0.88–0.89M → 1.39–1.66M   | 0.92–0.97M → 1.45–1.69M   |
//!
//! What was tried for it, in a stand-alone model of the kernel (100 perfect depth-8 trees, 20
//! features, thread CPU time): AVX2 gathers for the whole walk (8 rows per register, integer
//! keys) ran at 0.6× the scalar walk (gathers are slow on this CPU); the first four levels in
//! registers instead of three ran at 0.7× the three-level version (15 nodes' masks do not fit
//! the 16 registers); groups of 8, 24 or 32 rows instead of 16 were slower.
//!
//! Logistic regression on numeric float columns, fused pass: all the columns' terms added in one
//! pass over the rows with 32 rows' scores in registers (the same additions in the same order per
//! row as one pass per column). Same method, load 6 to 9: `frame` at batch 1 1.03 → 0.57–0.70
//! µs, at 64 46–55M → 54–65M, at 4096 69–82M → 75–87M rows/s. Prefetching the columns' next lines
//! by hand did not help.
//!
//! Per-call overhead of `frame` (fifth revision): a schema is shared by its clones (a frame
//! built with the model's schema passes the check with one pointer comparison, and cloning a
//! schema no longer copies its names and index), the check returns the identity column map
//! without allocating, and a single row's numeric features are read without a loop's set-up
//! per feature. Instructions per one-row forest call (callgrind, `Model::predict` inclusive,
//! frame built from its own schema as here): 12.1k → 11.3k (the kernel is 7.7k of them). The old
//! and new builds alternated, `BENCH_CLOCK=thread-cpu`, load 5 to 6, medians: forest `frame` at
//! batch 1 1.75–1.90 → 1.68–1.71 µs; logistic regression `frame` at 4096 102–103M → 102–106M
//! rows/s. The same build at the same load: forest `frame` 1.64M rows/s at 64 and 1.75–1.77M at
//! 4096 (`kernel` 1.65–1.67M and 1.69–1.76M), logistic regression `frame` 435–442 ns at batch 1
//! and 83–86M rows/s at 64.
//!
//! Peers measured on the 2-vCPU development machine (ONNX Runtime 1 thread, same forest shape, from the shared
//! recipes): 158k rows/s at batch 4096, ~15 µs per row at batch 1; logistic regression 86M
//! rows/s at batch 4096.

use std::hint::black_box;

use criterion::measurement::Measurement;
use criterion::{BenchmarkId, Criterion, Throughput};
use ml_core::kernel::{FlatForest, Kernel};
use ml_core::native::Fitted;
use ml_core::rng::splitmix64;
use ml_core::{Column, DataType, Estimator, Field, Frame, Model, NativeModel, PredictOptions, Schema};

const FEATURES: usize = 20;
const TRAIN_ROWS: usize = 20_000;
const BATCHES: [usize; 3] = [1, 64, 4096];
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// `n` rows of 20 uniform features from a stateless hash (the `forest_train` benchmark's
/// generator) starting at row `first`, with the same noisy linear-plus-interaction label.
fn frame(first: usize, n: usize) -> Frame {
    let width = FEATURES + 1;
    let u = |i: usize| ((splitmix64((i as u64).wrapping_mul(GOLDEN_GAMMA)) >> 11) as f64) * 2f64.powi(-53);
    let mut cols: Vec<Vec<f64>> = (0..FEATURES).map(|_| Vec::with_capacity(n)).collect();
    let mut y = Vec::with_capacity(n);
    for r in first..first + n {
        let mut score = 0.0;
        for (c, col) in cols.iter_mut().enumerate() {
            let v = u(r * width + c);
            col.push(v);
            let sign = if c % 2 == 0 { 1.0 } else { -1.0 };
            score += (sign * (1 + c % 5) as f64 / 5.0) * (v - 0.5);
        }
        score += 3.0 * (cols[0][r - first] - 0.5) * (cols[1][r - first] - 0.5);
        score += u(r * width + FEATURES) - 0.5;
        y.push(u32::from(score > 0.0));
    }
    let mut fields: Vec<Field> = (0..FEATURES)
        .map(|c| Field::new(format!("x{c}"), DataType::Float))
        .collect();
    fields.push(Field::new(
        "y",
        DataType::categorical(["0", "1"]).expect("labels"),
    ));
    let mut columns: Vec<Column> = cols.into_iter().map(|c| Column::Float(c.into())).collect();
    columns.push(Column::Categorical(y.into()));
    Frame::from_columns(Schema::new(fields).expect("schema"), columns, None).expect("frame")
}

fn fit(estimator: &str, params: &[(&str, &str)]) -> NativeModel {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Estimator::from_name(estimator, &params)
        .expect("estimator")
        .fit(&frame(0, TRAIN_ROWS), "y")
        .expect("fit")
}

fn bench_model<M: Measurement>(c: &mut Criterion<M>, name: &str, model: &NativeModel) {
    let one = PredictOptions::default();
    let kernel = model.kernel().expect("a compiled kernel");
    let linked = match model.fitted() {
        Fitted::TreeEnsemble(t) => Some(Kernel::Forest(FlatForest::with_max_perfect_depth(t, 0))),
        _ => None,
    };
    let mut group = c.benchmark_group(name);
    for batch in BATCHES {
        let rows = frame(TRAIN_ROWS, batch).split_off("y").expect("features").0;
        let x = model
            .preprocessor()
            .transform(model.schema(), &rows)
            .expect("design matrix");
        let mut out = vec![0.0; batch * kernel.n_outputs()];
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("frame", batch), &rows, |b, rows| {
            b.iter(|| black_box(model.predict(black_box(rows)).expect("predict")))
        });
        group.bench_with_input(BenchmarkId::new("unoptimized", batch), &rows, |b, rows| {
            b.iter(|| black_box(model.predict_unoptimized(black_box(rows)).expect("predict")))
        });
        group.bench_with_input(BenchmarkId::new("features", batch), &x, |b, x| {
            b.iter(|| {
                black_box(
                    model
                        .predict_features(black_box(x.view()), &one)
                        .expect("predict"),
                )
            })
        });
        group.bench_with_input(BenchmarkId::new("kernel", batch), &x, |b, x| {
            b.iter(|| {
                kernel
                    .predict_matrix_into(black_box(x.view()), &mut out, 1)
                    .expect("predict");
                black_box(&out);
            })
        });
        if let Some(linked) = &linked {
            group.bench_with_input(BenchmarkId::new("kernel_linked", batch), &x, |b, x| {
                b.iter(|| {
                    linked
                        .predict_matrix_into(black_box(x.view()), &mut out, 1)
                        .expect("predict");
                    black_box(&out);
                })
            });
        }
    }
    group.finish();
}

fn forest<M: Measurement>(c: &mut Criterion<M>) {
    let model = fit(
        "random_forest_classifier",
        &[("n_estimators", "100"), ("max_depth", "8")],
    );
    bench_model(c, "random_forest_100x8", &model);
}

fn logistic<M: Measurement>(c: &mut Criterion<M>) {
    let model = fit("logistic_regression", &[]);
    bench_model(c, "logistic_regression", &model);
}

fn run<M: Measurement>(mut c: Criterion<M>) {
    forest(&mut c);
    logistic(&mut c);
    c.final_summary();
}

fn main() {
    #[cfg(unix)]
    if thread_cpu::wanted() {
        return run(Criterion::default()
            .with_measurement(thread_cpu::ThreadCpu)
            .configure_from_args());
    }
    run(Criterion::default().configure_from_args());
}

#[cfg(unix)]
#[path = "../../test-support/thread_cpu.rs"]
mod thread_cpu;
