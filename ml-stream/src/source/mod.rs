//! Built-in sources: files (JSONL/CSV, with follow mode and resumable offsets), stdin, an
//! in-process channel, and a rate-limited replay wrapper for load tests.

mod channel;
mod file;
mod replay;
mod stdin;

pub use self::channel::{ChannelSender, ChannelSource, channel};
pub use self::file::{FileFormat, FileSource, FileSourceOptions};
pub use self::replay::ReplaySource;
pub use self::stdin::StdinSource;

use crate::spec::SpecRegistry;

/// The header that marks an event as a CSV line.
pub const CONTENT_TYPE: &str = "content-type";
/// The header that carries the CSV header line of a CSV event.
pub const CSV_HEADER: &str = "csv-header";

pub(crate) fn register_builtin(registry: &mut SpecRegistry) {
    registry.register_source("file", |spec| {
        spec.only_params(&["follow", "state", "rate"])?;
        let options = FileSourceOptions {
            follow: spec.bool_param("follow", false)?,
            state_file: spec.params.get("state").map(Into::into),
        };
        let source = FileSource::open(spec.required_path("a file path")?, options)?;
        Ok(match spec.params.get("rate") {
            Some(_) => Box::new(ReplaySource::new(
                Box::new(source),
                spec.u64_param("rate", 0)? as f64,
            )?),
            None => Box::new(source),
        })
    });
    registry.register_source("stdin", |spec| {
        spec.only_params(&[])?;
        Ok(Box::new(StdinSource::new()))
    });
}
