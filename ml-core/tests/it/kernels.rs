//! Batch prediction kernels against the fitted models they are compiled from: trees exactly,
//! linear models within 1e-12, and bit-identical results for any batch split or thread count.

use std::sync::OnceLock;

use ml_core::estimator::tree::TreeEnsemble;
use ml_core::kernel::{FlatForest, Kernel, Simd};
use ml_core::native::Fitted;
use ml_core::rng::Rng;
use ml_core::{
    Column, DataType, Estimator, Field, Frame, Model, NativeModel, PredictOptions, Predictions, Schema,
};
use ndarray::Array2;
use proptest::prelude::*;

/// A frame of every feature kind the preprocessor handles: floats (one with missing values),
/// an int, a bool and a nullable categorical; `y` is a noisy function of them with `classes`
/// classes (0 for a real-valued target).
fn mixed_frame(n: usize, seed: u64, classes: usize) -> Frame {
    let mut rng = Rng::new(seed);
    let (mut x0, mut x1, mut x2, mut i0, mut b0, mut c0, mut y) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut x1_null, mut c0_null) = (vec![], vec![]);
    for _ in 0..n {
        let (a, b, c) = (
            rng.normal(),
            rng.uniform_range(-3.0, 3.0),
            rng.lognormal(0.0, 1.0),
        );
        let i = rng.below(20) as i64 - 10;
        let flag = rng.bernoulli(0.4);
        let cat = rng.below(3) as u32;
        let b_missing = rng.bernoulli(0.1);
        let c_missing = rng.bernoulli(0.05);
        let score = a - 0.7 * b
            + 0.3 * c.ln()
            + 0.1 * i as f64
            + if flag { 0.8 } else { -0.2 }
            + f64::from(cat) * 0.5
            - 0.5
            + 0.8 * rng.normal();
        x0.push(a);
        x1.push(if b_missing { f64::NAN } else { b });
        x1_null.push(b_missing);
        x2.push(c);
        i0.push(i);
        b0.push(flag);
        c0.push(if c_missing { u32::MAX } else { cat });
        c0_null.push(c_missing);
        y.push(match classes {
            0 => score,
            2 => f64::from(u8::from(score > 0.0)),
            k => ((score + 3.0) / 6.0 * k as f64)
                .floor()
                .clamp(0.0, k as f64 - 1.0),
        });
    }
    let schema = Schema::new(vec![
        Field::new("x0", DataType::Float),
        Field::new("x1", DataType::Float).nullable(),
        Field::new("x2", DataType::Float),
        Field::new("i0", DataType::Int),
        Field::new("b0", DataType::Bool),
        Field::new("c0", DataType::categorical(["a", "b", "c"]).unwrap()).nullable(),
        Field::new("y", DataType::Float),
    ])
    .unwrap();
    Frame::from_columns(
        schema,
        vec![
            Column::Float(x0.into()),
            Column::Float(x1.into()),
            Column::Float(x2.into()),
            Column::Int(i0.into()),
            Column::Bool(b0.into()),
            Column::Categorical(c0.into()),
            Column::Float(y.into()),
        ],
        Some(vec![None, Some(x1_null), None, None, None, Some(c0_null), None]),
    )
    .unwrap()
}

fn fit(estimator: &str, params: &[(&str, &str)], classes: usize) -> NativeModel {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let train = mixed_frame(3000, 7, classes);
    Estimator::from_name(estimator, &params)
        .unwrap()
        .fit(&train, "y")
        .unwrap()
}

/// 100 000 rows to predict, without the target.
fn test_rows(classes: usize) -> &'static Frame {
    static FRAMES: OnceLock<Vec<Frame>> = OnceLock::new();
    let frames = FRAMES.get_or_init(|| {
        [0, 2, 3]
            .iter()
            .map(|&k| mixed_frame(100_000, 99, k).split_off("y").unwrap().0)
            .collect()
    });
    &frames[match classes {
        0 => 0,
        2 => 1,
        _ => 2,
    }]
}

fn output_bits(p: &Predictions) -> Vec<u64> {
    match p {
        Predictions::Classification { probabilities, .. } => {
            probabilities.iter().map(|v| v.to_bits()).collect()
        }
        Predictions::Regression { values } => values.iter().map(|v| v.to_bits()).collect(),
    }
}

fn outputs(p: &Predictions) -> Vec<f64> {
    match p {
        Predictions::Classification { probabilities, .. } => probabilities.iter().copied().collect(),
        Predictions::Regression { values } => values.to_vec(),
    }
}

fn ensemble(model: &NativeModel) -> &TreeEnsemble {
    match model.fitted() {
        Fitted::TreeEnsemble(t) => t,
        other => panic!("not trees: {other:?}"),
    }
}

fn assert_same_bits(a: &Predictions, b: &Predictions, what: &str) {
    let (x, y) = (output_bits(a), output_bits(b));
    assert_eq!(x.len(), y.len(), "{what}: lengths");
    if let Some(i) = x.iter().zip(&y).position(|(p, q)| p != q) {
        panic!(
            "{what}: value {i} differs: {} vs {}",
            f64::from_bits(x[i]),
            f64::from_bits(y[i])
        );
    }
}

#[test]
fn forests_predict_exactly_what_the_fitted_ensembles_predict_on_100k_rows() {
    for (name, params, classes) in [
        // Depth 8: every tree padded to a perfect tree.
        (
            "random_forest_classifier",
            &[("n_estimators", "20"), ("max_depth", "8")][..],
            2,
        ),
        // Unlimited depth: deep trees stay linked, shallow ones are perfect, mixed in groups.
        ("random_forest_classifier", &[("n_estimators", "10")][..], 3),
        (
            "random_forest_regressor",
            &[("n_estimators", "10"), ("max_depth", "14")][..],
            0,
        ),
        ("decision_tree_classifier", &[("max_depth", "5")][..], 2),
    ] {
        let model = fit(name, params, classes);
        let rows = test_rows(classes);
        let fast = model.predict(rows).unwrap();
        let reference = model.predict_unoptimized(rows).unwrap();
        assert_eq!(fast.len(), 100_000);
        assert_same_bits(&fast, &reference, &format!("{name} {params:?}"));
        assert_eq!(fast, reference);
    }
}

#[test]
fn both_tree_layouts_match_the_ensemble_on_raw_matrices_with_nan() {
    let model = fit("random_forest_classifier", &[("n_estimators", "12")], 3);
    let trees = ensemble(&model);
    assert!(
        trees.max_depth() > 12,
        "the test needs trees deeper than the perfect limit"
    );
    let mut x = model
        .preprocessor()
        .transform(
            model.schema(),
            &test_rows(3)
                .select_rows(&(0..20_000).collect::<Vec<_>>())
                .unwrap(),
        )
        .unwrap();
    // NaN goes right at every split, in the fitted ensemble as in the kernels.
    let d = x.ncols();
    for r in (0..x.nrows()).step_by(7) {
        x[[r, r % d]] = f64::NAN;
    }
    let expected = trees.predict(x.view()).unwrap();
    for max_perfect in [0, 4, 12, 64] {
        let flat = FlatForest::with_max_perfect_depth(trees, max_perfect);
        let kernel = Kernel::Forest(flat);
        for threads in [1, 2] {
            let got = kernel.predict_matrix(x.view(), threads).unwrap();
            let same = got
                .iter()
                .zip(expected.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "max perfect depth {max_perfect}, {threads} thread(s)");
        }
    }
    // A column-major (non-contiguous rows) view predicts the same.
    let fortran = x.t().as_standard_layout().into_owned();
    let got = Kernel::Forest(FlatForest::new(trees))
        .predict_matrix(fortran.t(), 1)
        .unwrap();
    assert_eq!(got, expected);
}

#[test]
fn linear_models_match_their_fitted_coefficients_within_1e_12_on_100k_rows() {
    for (name, classes) in [
        ("logistic_regression", 2),
        ("logistic_regression", 3),
        ("linear_regression", 0),
        ("ridge", 0),
    ] {
        let model = fit(name, &[], classes);
        let rows = test_rows(classes);
        let reference = model.predict_unoptimized(rows).unwrap();
        // Every instruction set this CPU runs, the portable one included.
        for simd in Simd::available() {
            let fast = model
                .predict_with(rows, &PredictOptions::default().with_simd(simd))
                .unwrap();
            let worst = outputs(&fast)
                .iter()
                .zip(outputs(&reference))
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(worst <= 1e-12, "{name}, {simd:?}: largest difference {worst:e}");
            if let (
                Predictions::Classification { predicted: a, .. },
                Predictions::Classification { predicted: b, .. },
            ) = (&fast, &reference)
            {
                assert_eq!(a, b, "{name}, {simd:?}: predicted classes");
            }
        }
    }
}

#[test]
fn the_feature_matrix_path_equals_the_frame_path() {
    // Trees: the same bits. Linear models: the frame path folds the scaling into the weights,
    // so the two agree to rounding.
    for (name, classes) in [("random_forest_classifier", 2), ("logistic_regression", 3)] {
        let model = fit(
            name,
            &[("n_estimators", "5")][..usize::from(name.starts_with("random"))],
            classes,
        );
        let rows = test_rows(classes)
            .select_rows(&(0..5000).collect::<Vec<_>>())
            .unwrap();
        let x = model.preprocessor().transform(model.schema(), &rows).unwrap();
        let lean = model
            .predict_features(x.view(), &PredictOptions::default())
            .unwrap();
        let framed = model.predict(&rows).unwrap();
        if name.starts_with("random") {
            assert_same_bits(&lean, &framed, name);
        } else {
            let worst = outputs(&lean)
                .iter()
                .zip(outputs(&framed))
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(worst <= 1e-12, "{name}: {worst:e}");
        }
    }
}

#[test]
fn two_threads_give_the_same_bits_as_one() {
    for (name, classes) in [("random_forest_regressor", 0), ("logistic_regression", 2)] {
        let model = fit(
            name,
            &[("n_estimators", "5")][..usize::from(name.starts_with("random"))],
            classes,
        );
        let rows = test_rows(classes)
            .select_rows(&(0..9_999).collect::<Vec<_>>())
            .unwrap();
        let one = model.predict(&rows).unwrap();
        for threads in [2, 3, 8] {
            let many = model
                .predict_with(&rows, &PredictOptions::with_threads(threads))
                .unwrap();
            assert_same_bits(&one, &many, &format!("{name}, {threads} threads"));
        }
    }
}

#[test]
fn a_local_scorer_passes_its_options_and_scores_like_the_model() {
    use std::sync::Arc;

    use ml_core::{LocalScorer, Scorer};

    let model = Arc::new(fit("random_forest_classifier", &[("n_estimators", "5")], 2));
    let rows = test_rows(2).select_rows(&(0..4096).collect::<Vec<_>>()).unwrap();
    let scorer = LocalScorer::new(model.clone());
    assert_eq!(scorer.options().threads, 1);
    let two = scorer.with_options(PredictOptions::with_threads(2));
    assert_eq!(two.options().threads, 2);
    let scored = futures::executor::block_on(two.score(&rows)).unwrap();
    assert_same_bits(&scored, &model.predict(&rows).unwrap(), "scorer");
    assert_eq!(PredictOptions::with_threads(0).threads, 1);
}

#[test]
fn a_wrong_design_matrix_is_an_error_not_a_panic() {
    let model = fit("logistic_regression", &[], 2);
    let err = model
        .predict_features(Array2::<f64>::zeros((3, 2)).view(), &PredictOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("design matrix"), "{err}");
}

fn models() -> &'static [NativeModel] {
    static MODELS: OnceLock<Vec<NativeModel>> = OnceLock::new();
    MODELS.get_or_init(|| {
        vec![
            fit(
                "random_forest_classifier",
                &[("n_estimators", "7"), ("max_depth", "6")],
                2,
            ),
            fit("random_forest_classifier", &[("n_estimators", "9")], 3),
            fit("random_forest_regressor", &[("n_estimators", "4")], 0),
            fit("logistic_regression", &[], 2),
            fit("logistic_regression", &[], 3),
            fit("linear_regression", &[], 0),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any split of a batch into smaller batches, and any selection of rows, predicts every row
    /// with the same bits as the whole batch.
    #[test]
    fn batch_size_does_not_change_any_prediction_bit(
        which in 0usize..6,
        sizes in prop::collection::vec(1usize..200, 1..12),
        picks in prop::collection::vec(0usize..600, 1..40),
    ) {
        let model = &models()[which];
        let classes = model.output().labels().len();
        let all = test_rows(classes).select_rows(&(0..600).collect::<Vec<_>>()).unwrap();
        let whole = output_bits(&model.predict(&all).unwrap());
        let k = whole.len() / 600;
        let mut start = 0;
        for size in sizes {
            if start >= 600 {
                break;
            }
            let end = (start + size).min(600);
            let part = all.select_rows(&(start..end).collect::<Vec<_>>()).unwrap();
            let bits = output_bits(&model.predict(&part).unwrap());
            prop_assert_eq!(&bits[..], &whole[start * k..end * k]);
            start = end;
        }
        let part = all.select_rows(&picks).unwrap();
        let bits = output_bits(&model.predict(&part).unwrap());
        for (i, &r) in picks.iter().enumerate() {
            prop_assert_eq!(&bits[i * k..(i + 1) * k], &whole[r * k..(r + 1) * k]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Linear models at every instruction set this CPU runs (the portable fallback included),
    /// through the frame and through a design matrix: any split of a batch, and any row's
    /// position in a batch, gives the same bits as the portable kernel on the whole batch.
    #[test]
    fn linear_predictions_have_the_same_bits_at_every_simd_level_batch_size_and_position(
        which in 3usize..6,
        level in 0usize..2,
        sizes in prop::collection::vec(1usize..300, 1..8),
        picks in prop::collection::vec(0usize..700, 1..40),
    ) {
        let levels = Simd::available();
        let simd = levels[level % levels.len()];
        let options = PredictOptions::default().with_simd(simd);
        let portable = PredictOptions::default().with_simd(Simd::Portable);
        let model = &models()[which];
        let classes = model.output().labels().len();
        let all = test_rows(classes).select_rows(&(0..700).collect::<Vec<_>>()).unwrap();
        let x_all = model.preprocessor().transform(model.schema(), &all).unwrap();
        let whole = output_bits(&model.predict_with(&all, &portable).unwrap());
        let whole_matrix = output_bits(&model.predict_features(x_all.view(), &portable).unwrap());
        let k = whole.len() / 700;
        prop_assert_eq!(&output_bits(&model.predict_with(&all, &options).unwrap()), &whole);
        let mut start = 0;
        for size in sizes {
            if start >= 700 {
                break;
            }
            let end = (start + size).min(700);
            let part = all.select_rows(&(start..end).collect::<Vec<_>>()).unwrap();
            let bits = output_bits(&model.predict_with(&part, &options).unwrap());
            prop_assert_eq!(&bits[..], &whole[start * k..end * k]);
            let x = x_all.slice(ndarray::s![start..end, ..]);
            let bits = output_bits(&model.predict_features(x, &options).unwrap());
            prop_assert_eq!(&bits[..], &whole_matrix[start * k..end * k]);
            start = end;
        }
        let part = all.select_rows(&picks).unwrap();
        let bits = output_bits(&model.predict_with(&part, &options).unwrap());
        let x = x_all.select(ndarray::Axis(0), &picks);
        let matrix_bits = output_bits(&model.predict_features(x.view(), &options).unwrap());
        for (i, &r) in picks.iter().enumerate() {
            prop_assert_eq!(&bits[i * k..(i + 1) * k], &whole[r * k..(r + 1) * k]);
            prop_assert_eq!(&matrix_bits[i * k..(i + 1) * k], &whole_matrix[r * k..(r + 1) * k]);
        }
    }
}

/// The kernels read the preprocessing's every option: median and most-frequent imputation (a
/// missing category filled with the most frequent one) and ordinal encoding, on rows with
/// missing values, give what the design-matrix path gives (trees exactly, linear within 1e-12).
#[test]
fn every_imputation_and_encoding_goes_through_the_kernels() {
    use ml_core::preprocess::{CategoricalEncoding, Imputation, Preprocessing};
    let train = mixed_frame(3000, 7, 2);
    let rows = test_rows(2);
    for impute in [Imputation::Mean, Imputation::Median, Imputation::MostFrequent] {
        for encode in [CategoricalEncoding::OneHot, CategoricalEncoding::Ordinal] {
            for name in ["logistic_regression", "random_forest_classifier"] {
                let params = if name == "logistic_regression" {
                    vec![]
                } else {
                    vec![("n_estimators".to_string(), "8".to_string())]
                };
                let model = Estimator::from_name(name, &params)
                    .unwrap()
                    .fit_with_preprocessing(&train, "y", Preprocessing { impute, encode }, &|| {})
                    .unwrap();
                let fast = model.predict(rows).unwrap();
                let reference = model.predict_unoptimized(rows).unwrap();
                let what = format!("{name} {impute:?} {encode:?}");
                if name == "logistic_regression" {
                    let worst = outputs(&fast)
                        .iter()
                        .zip(outputs(&reference))
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f64::max);
                    assert!(worst <= 1e-12, "{what}: largest difference {worst:e}");
                } else {
                    assert_same_bits(&fast, &reference, &what);
                }
            }
        }
    }
}
