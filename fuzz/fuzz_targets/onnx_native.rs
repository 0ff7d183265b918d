//! The ONNX loader's native fast path (`NativeOnnxModel::from_bytes`: protobuf decoding, graph
//! compilation, schema and label derivation), then scoring rows drawn from the input with the
//! loaded model (tree ensembles run on ml-core's forest kernel). Input: `onnx ++ rows ++ [len]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ml_core::{Model, NativeOnnxModel};
use streamscore_fuzz::{Bytes, predict_and_check, rows, split_tail};

fuzz_target!(|data: &[u8]| {
    let (onnx, tail) = split_tail(data);
    let Ok(model) = NativeOnnxModel::from_bytes(onnx.to_vec(), "fuzz.onnx", None, None, None) else {
        return;
    };
    if let Some(frame) = rows(model.schema(), &mut Bytes(tail)) {
        predict_and_check(&model, &frame);
    }
});
