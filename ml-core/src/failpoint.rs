//! Named failpoints for crash tests.
//!
//! Code that must survive a crash at an exact place calls [`hit`] with a stable name there
//! (for example `registry.register.before_publish` or `stream.after_flush_before_commit`).
//! Normally that is one atomic load and nothing happens. When the process was started with the
//! environment variable `STREAMSCORE_FAILPOINT` naming it, the process aborts on the spot with
//! [`std::process::abort`]: no destructors, no flushing, no unwinding — as close to a power cut
//! or `kill -9` as a test can get at a chosen point.
//!
//! The variable holds comma-separated names, each optionally with `:N` to abort at the N-th
//! time that point is reached (the first time without it): `stream.mid_batch:7` lets six
//! batches through and kills the process in the seventh.
//!
//! Tests start a child process with the variable set, see it die, and check that what it left
//! behind is consistent. Crates document the failpoint names they define next to the code that
//! calls [`hit`].
//!
//! # Example
//! ```
//! // Without STREAMSCORE_FAILPOINT naming it, a failpoint does nothing.
//! ml_core::failpoint::hit("example.never_armed");
//! assert!(!ml_core::failpoint::armed("example.never_armed"));
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// The environment variable that arms failpoints.
pub const ENV_VAR: &str = "STREAMSCORE_FAILPOINT";

/// Set once the variable is read and names nothing: then `hit` is a single relaxed load.
static NONE_ARMED: AtomicBool = AtomicBool::new(false);

/// Armed names → hits left before aborting; read once, at the first call.
fn table() -> &'static Mutex<HashMap<String, u64>> {
    static TABLE: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut map = HashMap::new();
        if let Ok(spec) = std::env::var(ENV_VAR) {
            for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (name, n) = match item.rsplit_once(':') {
                    Some((name, n)) if n.parse::<u64>().is_ok() => (name, n.parse().unwrap_or(1)),
                    _ => (item, 1),
                };
                map.insert(name.to_string(), n.max(1));
            }
        }
        NONE_ARMED.store(map.is_empty(), Ordering::Relaxed);
        Mutex::new(map)
    })
}

/// Whether the failpoint `name` is armed in this process.
pub fn armed(name: &str) -> bool {
    table()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains_key(name)
}

/// Aborts the process if the failpoint `name` is armed and its count is reached; otherwise
/// returns at once.
pub fn hit(name: &str) {
    if NONE_ARMED.load(Ordering::Relaxed) {
        return;
    }
    let mut map = table().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(left) = map.get_mut(name) {
        *left -= 1;
        if *left == 0 {
            eprintln!("failpoint `{name}` hit: aborting the process ({ENV_VAR})");
            std::process::abort();
        }
    }
}
