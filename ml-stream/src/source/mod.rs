//! Built-in sources: files (JSONL/CSV, with follow mode and resumable offsets), directories of
//! such files, stdin, an in-process channel, and a rate-limited replay wrapper for load tests.

mod channel;
mod dir;
mod file;
mod replay;
mod stdin;

pub use self::channel::{ChannelSender, ChannelSource, channel};
pub use self::dir::{DirSource, DirSourceOptions};
pub use self::file::{FileFormat, FileSource, FileSourceOptions};
pub use self::replay::ReplaySource;
pub use self::stdin::StdinSource;

use crate::error::Result;
use crate::spec::{Spec, SpecRegistry};
use crate::traits::StreamSource;

/// Wraps `source` in a [`ReplaySource`] when the spec asks for a `rate` (events/s).
fn with_rate(spec: &Spec, source: Box<dyn StreamSource>) -> Result<Box<dyn StreamSource>> {
    Ok(match spec.params.get("rate") {
        Some(_) => Box::new(ReplaySource::new(source, spec.u64_param("rate", 0)? as f64)?),
        None => source,
    })
}

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
        with_rate(spec, Box::new(source))
    });
    registry.register_source("dir", |spec| {
        spec.only_params(&["follow", "state", "rate", "recursive"])?;
        let options = DirSourceOptions {
            follow: spec.bool_param("follow", false)?,
            state_file: spec.params.get("state").map(Into::into),
            recursive: spec.bool_param("recursive", false)?,
        };
        let source = DirSource::open(spec.required_path("a directory path")?, options)?;
        with_rate(spec, Box::new(source))
    });
    registry.register_source("stdin", |spec| {
        spec.only_params(&[])?;
        Ok(Box::new(StdinSource::new()))
    });
}
