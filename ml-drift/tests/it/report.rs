//! Drift reports end to end: selection, detection, JSON fields and the self-contained HTML.

use ml_core::{DataType, Field, Frame, Schema, Value};
use ml_drift::detect::PreparedReference;
use ml_drift::{DriftOptions, ProfileOptions, ReferenceProfile, compare, drift_from_profile};

fn data(n: usize, shift: f64, seed: u64) -> Frame {
    let schema = Schema::new(vec![
        Field::new("income", DataType::Float),
        Field::new("age", DataType::Int),
        Field::new("plan", DataType::categorical(["basic", "pro", "max"]).unwrap()),
        Field::new("active", DataType::Bool),
    ])
    .unwrap();
    let mut rng = ml_core::rng::Rng::new(seed);
    let rows: Vec<Vec<Value>> = (0..n)
        .map(|_| {
            let plan = if rng.uniform() < 0.5 + shift * 0.3 {
                "basic"
            } else if rng.uniform() < 0.5 {
                "pro"
            } else {
                "max"
            };
            vec![
                Value::Float(50.0 + 10.0 * rng.normal() + 10.0 * shift),
                Value::Int((40.0 + 8.0 * rng.normal()) as i64),
                Value::Str(plan.into()),
                Value::Bool(rng.uniform() < 0.3 + 0.3 * shift),
            ]
        })
        .collect();
    Frame::from_rows(schema, &rows).unwrap()
}

#[test]
fn small_reference_uses_p_value_tests_and_detects_shift() {
    let reference = data(800, 0.0, 1);
    let profile = ReferenceProfile::from_frame(&reference, None, &ProfileOptions::default()).unwrap();
    let same = drift_from_profile(&profile, &data(800, 0.0, 2), None, &DriftOptions::default()).unwrap();
    let tests: Vec<&str> = same.features.iter().map(|f| f.stattest_name.as_str()).collect();
    assert_eq!(tests, ["ks", "ks", "chisquare", "z"]);
    assert!(!same.dataset.dataset_drift, "{:?}", same.features);
    let shifted = drift_from_profile(&profile, &data(800, 1.0, 3), None, &DriftOptions::default()).unwrap();
    let drifted: Vec<&str> = shifted
        .features
        .iter()
        .filter(|f| f.drift_detected)
        .map(|f| f.feature_name.as_str())
        .collect();
    assert_eq!(drifted, ["income", "plan", "active"]);
    assert_eq!(shifted.dataset.n_drifted_features, 3);
    assert!(shifted.dataset.dataset_drift);
    assert_eq!(shifted.dataset.share_drifted_features, 0.75);
}

#[test]
fn large_reference_uses_distances_and_exact_mode_agrees() {
    let reference = data(5000, 0.0, 1);
    let current = data(2000, 1.0, 2);
    let profile = ReferenceProfile::from_frame(&reference, None, &ProfileOptions::default()).unwrap();
    let from_profile = drift_from_profile(&profile, &current, None, &DriftOptions::default()).unwrap();
    let exact = compare(
        &PreparedReference::exact(&reference, None, 10).unwrap(),
        &current,
        None,
        &DriftOptions::default(),
    )
    .unwrap();
    let tests: Vec<&str> = exact.features.iter().map(|f| f.stattest_name.as_str()).collect();
    assert_eq!(
        tests,
        ["wasserstein", "wasserstein", "jensenshannon", "jensenshannon"]
    );
    // The profile's sample holds every row here (5000 < 10,000): both modes agree exactly.
    for (a, b) in from_profile.features.iter().zip(&exact.features) {
        assert!(
            (a.drift_score - b.drift_score).abs() < 1e-12,
            "{}: {} vs {}",
            a.feature_name,
            a.drift_score,
            b.drift_score
        );
    }
    assert_eq!(exact.reference_mode, "exact");
    // income moved by one standard deviation: normed Wasserstein ≈ 1.
    assert!(
        (exact.features[0].drift_score - 1.0).abs() < 0.1,
        "{}",
        exact.features[0].drift_score
    );
}

#[test]
fn corrections_and_overrides() {
    let reference = data(500, 0.0, 1);
    let profile = ReferenceProfile::from_frame(&reference, None, &ProfileOptions::default()).unwrap();
    let current = data(500, 0.15, 5);
    let mut o = DriftOptions {
        correction: ml_drift::Correction::Bonferroni,
        ..DriftOptions::default()
    };
    o.tests.insert("income".into(), "psi".into());
    o.thresholds.insert("income".into(), 0.2);
    let r = drift_from_profile(&profile, &current, None, &o).unwrap();
    assert_eq!(r.features[0].stattest_name, "psi");
    assert_eq!(r.features[0].threshold, 0.2);
    for f in r.features.iter().filter(|f| f.p_value.is_some()) {
        let p = f.p_value.unwrap();
        assert_eq!(f.adjusted_p_value, Some((p * 3.0).min(1.0)));
        assert_eq!(f.drift_detected, (p * 3.0).min(1.0) < 0.05);
    }
    o.tests.insert("plan".into(), "ks".into());
    let err = drift_from_profile(&profile, &current, None, &o)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not apply") && err.contains("chisquare"),
        "{err}"
    );
}

#[test]
fn json_has_the_reference_pipeline_fields() {
    let reference = data(300, 0.0, 1);
    let profile = ReferenceProfile::from_frame(&reference, None, &ProfileOptions::default()).unwrap();
    let r = drift_from_profile(&profile, &data(300, 1.0, 2), None, &DriftOptions::default()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
    for k in [
        "n_features",
        "n_drifted_features",
        "share_drifted_features",
        "dataset_drift",
    ] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    for k in [
        "feature_name",
        "feature_type",
        "stattest_name",
        "drift_score",
        "p_value",
        "threshold",
        "drift_detected",
    ] {
        assert!(v["features"][0].get(k).is_some(), "missing {k}");
    }
    // A profile survives JSON exactly and is deterministic.
    let json = profile.to_json().unwrap();
    assert_eq!(ReferenceProfile::from_json(&json).unwrap(), profile);
    assert_eq!(
        ReferenceProfile::from_frame(&reference, None, &ProfileOptions::default())
            .unwrap()
            .to_json()
            .unwrap(),
        json
    );
    let newer = json.replacen("\"format_version\": 1", "\"format_version\": 99", 1);
    assert!(
        ReferenceProfile::from_json(&newer)
            .unwrap_err()
            .to_string()
            .contains("upgrade")
    );
}

#[test]
fn html_is_self_contained_with_one_chart_per_feature_sorted_by_drift() {
    let reference = data(600, 0.0, 1);
    let profile = ReferenceProfile::from_frame(&reference, None, &ProfileOptions::default()).unwrap();
    let r = drift_from_profile(&profile, &data(600, 1.0, 2), None, &DriftOptions::default()).unwrap();
    let html = r.to_html();
    // No external URL or asset anywhere: the only "http" is the SVG namespace identifier.
    let without_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(
        !without_ns.contains("http:") && !without_ns.contains("https:") && !without_ns.contains("//"),
        "external reference"
    );
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("src="));
    // One histogram per feature, plus the legend.
    let charts = html
        .matches("aria-label=\"reference vs current histogram\"")
        .count();
    assert_eq!(charts, r.features.len());
    // Summary rows in order of severity (most drifted first).
    let order: Vec<&str> = r
        .sorted_by_severity()
        .iter()
        .map(|f| f.feature_name.as_str())
        .collect();
    let mut pos = order
        .iter()
        .map(|n| html.find(&format!("<a href=\"#f-{n}\">")).unwrap())
        .collect::<Vec<_>>();
    let sorted = {
        let mut p = pos.clone();
        p.sort();
        p
    };
    assert_eq!(pos, sorted);
    pos.dedup();
    assert_eq!(pos.len(), order.len());
    let sev: Vec<f64> = r.sorted_by_severity().iter().map(|f| f.severity()).collect();
    assert!(sev.windows(2).all(|w| w[0] >= w[1]));
}

/// Profile mode compares through the sample's index without sorting the current values; the
/// same report must come out when the current values are sorted and walked instead.
#[test]
fn the_profile_index_gives_the_same_scores_as_sorting() {
    let options = ProfileOptions {
        sample_size: 700,
        ..ProfileOptions::default()
    };
    let profile = ReferenceProfile::from_frame(&data(3000, 0.0, 1), None, &options).unwrap();
    let indexed = PreparedReference::from_profile(&profile);
    assert!(indexed.features[0].index.is_some());
    let mut sorting = indexed.clone();
    for f in &mut sorting.features {
        f.index = None;
    }
    for shift in [0.0, 0.2, 3.0] {
        let current = data(1500, shift, 7);
        for test in ["ks", "wasserstein", "psi"] {
            let mut o = DriftOptions::default();
            o.tests.insert("income".into(), test.into());
            o.tests.insert("age".into(), test.into());
            let a = compare(&indexed, &current, None, &o).unwrap();
            let b = compare(&sorting, &current, None, &o).unwrap();
            for (x, y) in a.features.iter().zip(&b.features) {
                assert_eq!(x.stattest_name, y.stattest_name);
                let tolerance = if test == "wasserstein" {
                    1e-12 * y.drift_score
                } else {
                    0.0
                };
                assert!(
                    (x.drift_score - y.drift_score).abs() <= tolerance,
                    "{test} on {} at shift {shift}: {} vs {}",
                    x.feature_name,
                    x.drift_score,
                    y.drift_score
                );
                assert_eq!(x.histogram, y.histogram);
            }
        }
    }
}
