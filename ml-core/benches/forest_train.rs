//! Random-forest training time: 100 trees of depth 8 on 100 000 × 20 numeric rows, with one
//! thread, two threads and every core, against scikit-learn's `RandomForestClassifier` on the
//! same data as recorded by `scripts/reference/sklearn_rf_train_time.py`.
//!
//! Run with `cargo bench -p ml-core --bench forest_train` (optionally `-- --repeats N`). The
//! data is built from a stateless hash that the Python script reproduces; both sides check the
//! same SHA-256 of the bytes.

use std::time::Instant;

use ml_core::estimator::tree::{
    Criterion, EnsembleParams, GrowthParams, MaxFeatures, MaxFeaturesRule, TreeEnsemble, TreeTarget,
};
use ml_core::rng::splitmix64;
use ndarray::Array2;
use sha2::{Digest, Sha256};

const ROWS: usize = 100_000;
const FEATURES: usize = 20;
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
const RECORDED: &str = include_str!("reference/sklearn_rf_train_time.json");

/// The benchmark data: see `bench_data` in the Python script for the definition.
fn data() -> (Array2<f64>, Vec<usize>) {
    let width = FEATURES + 1;
    let u = |i: usize| ((splitmix64((i as u64).wrapping_mul(GOLDEN_GAMMA)) >> 11) as f64) * 2f64.powi(-53);
    let mut x = Array2::<f64>::zeros((ROWS, FEATURES));
    let mut y = Vec::with_capacity(ROWS);
    for r in 0..ROWS {
        for c in 0..FEATURES {
            x[[r, c]] = u(r * width + c);
        }
        let mut score = 0.0;
        for c in 0..FEATURES {
            let sign = if c % 2 == 0 { 1.0 } else { -1.0 };
            score += (sign * (1 + c % 5) as f64 / 5.0) * (x[[r, c]] - 0.5);
        }
        score += 3.0 * (x[[r, 0]] - 0.5) * (x[[r, 1]] - 0.5);
        score += u(r * width + FEATURES) - 0.5;
        y.push(usize::from(score > 0.0));
    }
    (x, y)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let repeats = args
        .iter()
        .position(|a| a == "--repeats")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(3usize);
    let recorded: serde_json::Value = serde_json::from_str(RECORDED).expect("reference JSON");
    let (x, y) = data();
    let mut hasher = Sha256::new();
    for v in x.iter() {
        hasher.update(v.to_le_bytes());
    }
    for &v in &y {
        hasher.update([v as u8]);
    }
    let digest = hex::encode(hasher.finalize());
    assert_eq!(
        digest,
        recorded["data_sha256"].as_str().unwrap_or_default(),
        "benchmark data differs from the data scikit-learn was timed on"
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("random forest, 100 trees, max_depth 8, {ROWS} × {FEATURES}, {cores} cores, best of {repeats}");
    for (label, n_jobs) in [("1 thread", Some(1)), ("2 threads", Some(2)), ("all cores", None)] {
        let params = EnsembleParams {
            growth: GrowthParams {
                criterion: Criterion::Gini,
                max_depth: Some(8),
                min_samples_split: 2,
                min_samples_leaf: 1,
                max_features: MaxFeatures::Rule(MaxFeaturesRule::Sqrt),
                max_bins: 255,
            },
            n_trees: 100,
            bootstrap: true,
            seed: 0,
            n_jobs,
        };
        let mut best = f64::INFINITY;
        for _ in 0..repeats {
            let start = Instant::now();
            let forest = TreeEnsemble::fit(
                x.view(),
                TreeTarget::Classes {
                    codes: &y,
                    n_classes: 2,
                },
                &params,
                &|| {},
            )
            .expect("fit");
            best = best.min(start.elapsed().as_secs_f64());
            std::hint::black_box(forest);
        }
        println!("  streamscore {label:<10} {best:8.2} s");
    }
    for j in [1, 2] {
        if let Some(s) = recorded[format!("fit_seconds_n_jobs_{j}")].as_f64() {
            println!(
                "  scikit-learn n_jobs={j}   {s:8.2} s (recorded, {})",
                recorded["sklearn_version"]
            );
        }
    }
}
