//! `POST /invocations` (MLflow scoring server): the first byte picks the content type (JSON
//! with `dataframe_split`, `dataframe_records`, `instances`, `inputs`; CSV; none; another), the
//! rest is the body, through the real router.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let content_type = match kind % 8 {
        0..=3 => Some("application/json"),
        4..=5 => Some("text/csv"),
        6 => None,
        _ => Some("text/csv; charset=utf-8"),
    };
    streamscore_fuzz::served().post("/invocations", content_type, body);
});
