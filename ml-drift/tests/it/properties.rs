//! Property tests: profile merge equals the profile of the concatenation; statistics do not depend
//! on row order; no NaN or infinity in any report, whatever the input.

use ml_core::{DataType, Field, Frame, Schema, Value};
use ml_drift::profile::Distribution;
use ml_drift::{Correction, DriftOptions, ProfileOptions, ReferenceProfile, drift_from_profile};
use proptest::prelude::*;

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("x", DataType::Float).nullable(),
        Field::new("k", DataType::Int),
        Field::new("c", DataType::categorical(["a", "b", "c"]).expect("vocabulary")).nullable(),
        Field::new("flag", DataType::Bool),
    ])
    .expect("schema")
}

type Row = (Option<f64>, i64, Option<u8>, bool);

fn frame(rows: &[Row]) -> Frame {
    let rows: Vec<Vec<Value>> = rows
        .iter()
        .map(|(x, k, c, f)| {
            vec![
                x.map_or(Value::Null, Value::Float),
                Value::Int(*k),
                c.map_or(Value::Null, |c| {
                    Value::Str(["a", "b", "c"][c as usize % 3].into())
                }),
                Value::Bool(*f),
            ]
        })
        .collect();
    Frame::from_rows(schema(), &rows).expect("frame")
}

fn row() -> impl Strategy<Value = Row> {
    (
        prop_oneof![Just(None), (-1e6f64..1e6).prop_map(Some), Just(Some(3.0))],
        -5i64..5,
        prop_oneof![Just(None), (0u8..3).prop_map(Some)],
        any::<bool>(),
    )
}

fn small_options() -> ProfileOptions {
    // A small sample so that merging exercises the sample's bound.
    ProfileOptions {
        sample_size: 50,
        max_distinct: 8,
        ..ProfileOptions::default()
    }
}

fn assert_finite_report(r: &ml_drift::DriftReport) {
    assert!(r.dataset.share_drifted_features.is_finite());
    for f in r.features.iter().chain(&r.prediction) {
        assert!(
            f.drift_score.is_finite(),
            "{}: score {}",
            f.feature_name,
            f.drift_score
        );
        assert!(f.p_value.is_none_or(f64::is_finite));
        assert!(f.adjusted_p_value.is_none_or(f64::is_finite));
        assert!(
            f.histogram
                .reference
                .iter()
                .chain(&f.histogram.current)
                .all(|x| x.is_finite())
        );
    }
    let json = r.to_json().expect("json");
    assert!(!json.contains("NaN") && !json.contains("inf"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn merge_equals_profile_of_concatenation(rows in prop::collection::vec(row(), 1..300), cut in 0usize..300) {
        let cut = cut % rows.len();
        let o = small_options();
        let whole = ReferenceProfile::from_frame(&frame(&rows), None, &o).unwrap();
        let mut merged = ReferenceProfile::from_frame(&frame(&rows[..cut.max(1)]), None, &o).unwrap();
        if cut.max(1) < rows.len() {
            merged.merge(&ReferenceProfile::from_frame(&frame(&rows[cut.max(1)..]), None, &o).unwrap()).unwrap();
        }
        prop_assert_eq!(merged.n_rows, whole.n_rows);
        for (a, b) in merged.features.iter().zip(&whole.features) {
            prop_assert_eq!(a.count, b.count);
            prop_assert_eq!(a.missing, b.missing);
            match (&a.distribution, &b.distribution) {
                (Distribution::Numeric(x), Distribution::Numeric(y)) => {
                    // Exact parts exactly.
                    prop_assert_eq!(x.min, y.min);
                    prop_assert_eq!(x.max, y.max);
                    prop_assert_eq!(&x.distinct, &y.distinct);
                    prop_assert_eq!(&x.sketch, &y.sketch);
                    prop_assert_eq!(&x.sample, &y.sample);
                    prop_assert_eq!(&x.bin_edges, &y.bin_edges);
                    prop_assert_eq!(&x.bin_counts, &y.bin_counts);
                    // Moments up to rounding.
                    let scale = 1.0 + y.mean.abs();
                    prop_assert!((x.mean - y.mean).abs() <= 1e-9 * scale);
                    prop_assert!((x.m2 - y.m2).abs() <= 1e-7 * (1.0 + y.m2.abs()));
                }
                (Distribution::Categorical(x), Distribution::Categorical(y)) => prop_assert_eq!(x, y),
                _ => prop_assert!(false, "kinds differ"),
            }
        }
    }

    #[test]
    fn statistics_do_not_depend_on_row_order(
        reference in prop::collection::vec(row(), 1..200),
        current in prop::collection::vec(row(), 1..200),
        seed in any::<u64>(),
    ) {
        let o = DriftOptions::default();
        let profile = ReferenceProfile::from_frame(&frame(&reference), None, &ProfileOptions::default()).unwrap();
        let mut shuffled_ref = reference.clone();
        let mut shuffled_cur = current.clone();
        let mut rng = ml_core::rng::Rng::new(seed);
        for v in [&mut shuffled_ref, &mut shuffled_cur] {
            for i in (1..v.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                v.swap(i, j);
            }
        }
        let profile2 = ReferenceProfile::from_frame(&frame(&shuffled_ref), None, &ProfileOptions::default()).unwrap();
        prop_assert_eq!(profile.to_json().unwrap(), profile2.to_json().unwrap().replace("\r", ""));
        let a = drift_from_profile(&profile, &frame(&current), None, &o).unwrap();
        let b = drift_from_profile(&profile2, &frame(&shuffled_cur), None, &o).unwrap();
        for (x, y) in a.features.iter().zip(&b.features) {
            prop_assert_eq!(&x.stattest_name, &y.stattest_name);
            prop_assert!((x.drift_score - y.drift_score).abs() <= 1e-12 * (1.0 + y.drift_score.abs()),
                "{}: {} vs {}", x.feature_name, x.drift_score, y.drift_score);
        }
    }

    #[test]
    fn reports_are_finite_for_any_input(
        reference in prop::collection::vec(row(), 1..100),
        current in prop::collection::vec(row(), 1..100),
        correction in prop_oneof![Just(Correction::None), Just(Correction::Bonferroni), Just(Correction::BenjaminiHochberg)],
        test in prop_oneof![Just(None), Just(Some("psi")), Just(Some("hellinger")), Just(Some("jensenshannon")), Just(Some("chisquare")), Just(Some("z"))],
    ) {
        let profile = ReferenceProfile::from_frame(&frame(&reference), None, &ProfileOptions::default()).unwrap();
        let mut o = DriftOptions { correction, ..DriftOptions::default() };
        if let Some(t) = test {
            for f in ["x", "k", "c", "flag"] {
                o.tests.insert(f.into(), t.into());
            }
        }
        let r = drift_from_profile(&profile, &frame(&current), None, &o).unwrap();
        assert_finite_report(&r);
        let html = r.to_html();
        prop_assert!(!html.contains("NaN"));
    }
}

#[test]
fn edge_cases_give_finite_reports() {
    // Constant column, all-missing column, a single row, unseen categories (the current data
    // has a category the reference never saw).
    let constant: Vec<Row> = (0..50).map(|_| (Some(1.0), 2, Some(0), true)).collect();
    let all_missing: Vec<Row> = (0..50).map(|_| (None, 0, None, false)).collect();
    let single: Vec<Row> = vec![(Some(5.0), 1, Some(1), false)];
    let unseen: Vec<Row> = (0..50)
        .map(|i| (Some(i as f64), i % 3, Some(2), i % 2 == 0))
        .collect();
    for reference in [&constant, &all_missing, &single] {
        let profile =
            ReferenceProfile::from_frame(&frame(reference), None, &ProfileOptions::default()).unwrap();
        for current in [&constant, &all_missing, &single, &unseen] {
            for test in [
                None,
                Some("ks"),
                Some("wasserstein"),
                Some("psi"),
                Some("chisquare"),
            ] {
                let mut o = DriftOptions::default();
                if let Some(t) = test {
                    o.tests.insert("x".into(), t.into());
                }
                let r = drift_from_profile(&profile, &frame(current), None, &o).unwrap();
                assert_finite_report(&r);
            }
        }
    }
}
