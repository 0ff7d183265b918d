//! The native model file (`model.json`: `NativeModel::from_json_bytes`, which validates tree
//! ensembles before the forest kernel is compiled from them), then scoring rows drawn from the
//! input through the compiled kernel and the plain walk. Input: `model.json ++ rows ++ [len]`.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ml_core::{Model, NativeModel};
use streamscore_fuzz::{Bytes, predict_and_check, rows, split_tail};

fuzz_target!(|data: &[u8]| {
    let (json, tail) = split_tail(data);
    let Ok(model) = NativeModel::from_json_bytes(json, Path::new("model.json")) else {
        return;
    };
    let Some(frame) = rows(model.schema(), &mut Bytes(tail)) else {
        return;
    };
    predict_and_check(&model, &frame);
    // For trees the compiled kernel and the plain walk predict the same bits (linear models
    // may differ in the last bits: the kernel sums in another order).
    let trees = matches!(model.fitted(), ml_core::native::Fitted::TreeEnsemble(_));
    if trees && let (Ok(fast), Ok(plain)) = (model.predict(&frame), model.predict_unoptimized(&frame)) {
        let same = |a: &ml_core::Predictions, b: &ml_core::Predictions| match (a, b) {
            (
                ml_core::Predictions::Classification { probabilities: p, .. },
                ml_core::Predictions::Classification { probabilities: q, .. },
            ) => p
                .iter()
                .zip(q)
                .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())),
            (
                ml_core::Predictions::Regression { values: p },
                ml_core::Predictions::Regression { values: q },
            ) => p
                .iter()
                .zip(q)
                .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())),
            _ => false,
        };
        assert!(same(&fast, &plain), "kernel and plain walk differ");
    }
});
