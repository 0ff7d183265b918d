//! `POST /v2/models/{m}/infer` (Open Inference Protocol v2): one `[N, F]` tensor or one tensor
//! per field, any datatype and shape, through the real router.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    streamscore_fuzz::served().post("/v2/models/fuzz/infer", Some("application/json"), data);
});
