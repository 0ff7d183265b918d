//! Streaming detectors against river: the change points recorded by
//! `scripts/reference/river_detectors.py` (river 0.26.1) on streams regenerated here bit for bit
//! from their seeds (counter-based SplitMix64 and exact arithmetic, as in the script).

use ml_core::rng::splitmix64;
use ml_drift::ChangeDetector;
use ml_drift::stream::{Adwin, Ddm, Eddm, Kswin, PageHinkley};
use serde_json::Value;

fn uniform(seed: u64, j: u64) -> f64 {
    // splitmix64(s) mixes s + golden ratio: the script's `uniform`.
    (splitmix64((seed << 32).wrapping_add(j)) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

fn base(seed: u64, i: u64) -> f64 {
    uniform(seed, 4 * i) + uniform(seed, 4 * i + 1) + uniform(seed, 4 * i + 2) + uniform(seed, 4 * i + 3)
        - 2.0
}

fn stream(kind: &str, seed: u64, n: u64) -> Vec<f64> {
    let half = n / 2;
    (0..n)
        .map(|i| {
            let x = base(seed, i);
            match kind {
                "mean_shift" => x + if i >= half { 0.5 } else { 0.0 },
                "variance_shift" => x * if i >= half { 3.0 } else { 1.0 },
                "gradual" => {
                    let (start, width) = ((2 * n) / 5, n / 5);
                    let w = ((i as f64 - start as f64) / width as f64).clamp(0.0, 1.0);
                    x + if uniform(seed + 1, i) < w { 0.5 } else { 0.0 }
                }
                "errors" => {
                    if uniform(seed + 2, i) < if i < half { 0.1 } else { 0.3 } {
                        1.0
                    } else {
                        0.0
                    }
                }
                _ => x,
            }
        })
        .collect()
}

#[test]
fn change_points_equal_rivers() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/river_detectors.json"
    ))
    .expect("reference file");
    let r: Value = serde_json::from_str(&text).expect("JSON");
    let cases = r["cases"].as_array().expect("cases");
    assert!(cases.len() >= 22);
    assert!(cases.iter().filter(|c| c["detector"] == "kswin").count() >= 8);
    let mut cache: std::collections::HashMap<(String, u64, u64), Vec<f64>> = Default::default();
    for c in cases {
        let (kind, seed, n) = (
            c["stream"].as_str().unwrap().to_string(),
            c["seed"].as_u64().unwrap(),
            c["n"].as_u64().unwrap(),
        );
        let xs = cache
            .entry((kind.clone(), seed, n))
            .or_insert_with(|| stream(&kind, seed, n));
        let params = &c["params"];
        let mut det: Box<dyn ChangeDetector> = match c["detector"].as_str().unwrap() {
            "adwin" => Box::new(Adwin::new(
                params["delta"].as_f64().unwrap_or(0.002),
                params["clock"].as_u64().unwrap_or(32),
                5,
                5,
                10,
            )),
            "page_hinkley" => Box::new(PageHinkley::default()),
            "kswin" => Box::new(Kswin::new(
                params["alpha"].as_f64().unwrap_or(0.005),
                params["window_size"].as_u64().unwrap_or(100) as usize,
                params["stat_size"].as_u64().unwrap_or(30) as usize,
                params["seed"].as_u64().expect("KSWIN cases are seeded"),
            )),
            "ddm" => Box::new(Ddm::default()),
            "eddm" => Box::new(Eddm::default()),
            other => panic!("unknown detector {other}"),
        };
        let got: Vec<u64> = det.update_many(xs).iter().map(|ch| ch.index).collect();
        let want: Vec<u64> = c["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(got, want, "{} {params} on {kind}", c["detector"]);
    }
}
