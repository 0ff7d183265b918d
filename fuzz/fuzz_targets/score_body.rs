//! `POST /score` (Azure ML inference server): every body shape (`data`, `input_data`,
//! `Inputs`, records, lists in schema order, pandas split, columnar) through the real router.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    streamscore_fuzz::served().post("/score", Some("application/json"), data);
});
