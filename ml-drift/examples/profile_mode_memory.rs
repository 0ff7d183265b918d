//! The memory a profile-mode comparison needs, as a scoring process sees it: run the second step
//! under `/usr/bin/time -v` and read "Maximum resident set size".
//!
//! ```text
//! cargo run --release -p ml-drift --example profile_mode_memory -- write profile.json
//! /usr/bin/time -v target/release/examples/profile_mode_memory compare profile.json [ROUNDS]
//! ```
//!
//! `write` profiles a reference of 1,000,000 × 20 numeric values (the benchmark's) and writes the
//! profile; `compare` loads it, prepares it, draws current data of 100,000 × 20 and computes KS
//! (statistic and p-value), normed Wasserstein and PSI for every feature, as the benchmark's
//! `profile` mode does.

use ml_core::rng::Rng;
use ml_core::{Column, DataType, Field, Frame, Schema};
use std::time::Instant;

use ml_drift::detect::{PreparedReference, ReferenceFeature};
use ml_drift::stats::{KsMethod, ks_pvalue, psi};
use ml_drift::{ProfileOptions, ReferenceProfile};

const FEATURES: usize = 20;

fn frame(n: usize, shift: f64, seed: u64) -> Frame {
    let mut rng = Rng::new(seed);
    let schema = Schema::new(
        (0..FEATURES)
            .map(|f| Field::new(format!("f{f}"), DataType::Float))
            .collect(),
    )
    .expect("schema");
    let columns = (0..FEATURES)
        .map(|f| {
            let v: Vec<f64> = (0..n)
                .map(|_| rng.normal() * (1.0 + f as f64) + shift + f as f64)
                .collect();
            Column::Float(v.into())
        })
        .collect();
    Frame::from_columns(schema, columns, None).expect("frame")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(step), Some(path)) = (args.get(1), args.get(2)) else {
        return Err("usage: profile_mode_memory write|compare PROFILE_JSON".into());
    };
    // An optional third argument: rounds of timing after the comparison.
    let rounds: usize = args.get(3).map_or(Ok(0), |r| r.parse())?;
    match step.as_str() {
        "write" => {
            let profile =
                ReferenceProfile::from_frame(&frame(1_000_000, 0.0, 1), None, &ProfileOptions::default())?;
            std::fs::write(path, profile.to_json()?)?;
        }
        "compare" => {
            let profile = ReferenceProfile::from_json(&std::fs::read_to_string(path)?)?;
            let prepared = PreparedReference::from_profile(&profile);
            drop(profile);
            let current = frame(100_000, 0.05, 2);
            let columns: Vec<&[f64]> = current
                .columns()
                .iter()
                .map(|c| match c {
                    Column::Float(v) => v.as_slice().ok_or("contiguous float columns expected"),
                    _ => Err("float columns expected"),
                })
                .collect::<Result<_, _>>()?;
            let run = |features: &[ReferenceFeature]| -> usize {
                let mut drifted = 0;
                for (reference, values) in features.iter().zip(&columns) {
                    let cmp = reference.compare_numeric(values);
                    let p = ks_pvalue(
                        cmp.ks_statistic,
                        reference.sorted.len(),
                        values.len(),
                        KsMethod::Auto,
                    );
                    let w = cmp.wasserstein / reference.std;
                    let psi = psi(&reference.bin_counts, &cmp.bin_counts);
                    drifted += usize::from(p < 0.05 || w >= 0.1 || psi >= 0.1);
                }
                drifted
            };
            // The fastest of several rounds: on a shared machine the others include waits.
            let fastest = |features: &[ReferenceFeature]| -> f64 {
                (0..rounds)
                    .map(|_| {
                        let t = Instant::now();
                        std::hint::black_box(run(features));
                        t.elapsed().as_secs_f64() * 1e3
                    })
                    .fold(f64::INFINITY, f64::min)
            };
            let drifted = run(&prepared.features);
            println!("{drifted} of {FEATURES} features drifted");
            if rounds > 0 {
                let indexed = fastest(&prepared.features);
                // The same comparisons with the current values sorted (no index).
                let unindexed: Vec<ReferenceFeature> = prepared
                    .features
                    .iter()
                    .map(|f| ReferenceFeature {
                        index: None,
                        ..f.clone()
                    })
                    .collect();
                let sorted = fastest(&unindexed);
                println!(
                    "fastest of {rounds}: {indexed:.2} ms indexed, {sorted:.2} ms sorting the current values"
                );
            }
        }
        other => return Err(format!("unknown step `{other}`: use write or compare").into()),
    }
    Ok(())
}
