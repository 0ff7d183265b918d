//! ml-core's frame readers against a schema: CSV (`Frame::from_csv`, and `CsvTable` with schema
//! inference) and JSON (`Frame::from_json_str`: records or lists in schema order). The first
//! byte picks the schema and the reader. A frame that is built must hold one column per field,
//! each `n_rows` long.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ml_core::{CsvTable, ExtraColumns, Frame, InferOptions, ReadOptions};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let schemas = streamscore_fuzz::schemas();
    let schema = &schemas[usize::from(kind >> 4) % schemas.len()];
    let mut options = ReadOptions::named("fuzz");
    if kind & 8 != 0 {
        options.extra_columns = ExtraColumns::Error;
    }
    match kind % 4 {
        0 => {
            if let Ok(frame) = Frame::from_csv(body, schema.clone(), &options) {
                streamscore_fuzz::check_frame(&frame, schema);
            }
        }
        1 => {
            if let Ok(table) = CsvTable::read(body, "fuzz.csv")
                && let Ok(inferred) = table.infer_schema(&InferOptions::default())
                && let Ok(frame) = table.to_frame(inferred.clone(), &options)
            {
                assert_eq!(frame.n_rows(), table.n_rows(), "one row per CSV record");
                streamscore_fuzz::check_frame(&frame, &inferred);
            }
        }
        _ => {
            let Ok(text) = std::str::from_utf8(body) else {
                return;
            };
            if let Ok(frame) = Frame::from_json_str(text, schema.clone(), &options) {
                streamscore_fuzz::check_frame(&frame, schema);
            }
        }
    }
});
