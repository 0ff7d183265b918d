//! Named failpoints for crash tests.
//!
//! Code that must survive a crash at an exact place calls [`hit`] with a stable name there
//! (for example `registry.register.before_publish`). Normally that is one cached lookup and
//! nothing happens. When the process was started with the environment variable
//! `STREAMSCORE_FAILPOINT` set to that name (several names may be given, separated by commas),
//! the process aborts on the spot with [`std::process::abort`]: no destructors, no flushing, no
//! unwinding — as close to a power cut or `kill -9` as a test can get at a chosen point.
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

use std::sync::OnceLock;

/// The environment variable that arms failpoints.
pub const ENV_VAR: &str = "STREAMSCORE_FAILPOINT";

fn armed_names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        std::env::var(ENV_VAR)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Whether the failpoint `name` is armed in this process (read once, at the first call).
pub fn armed(name: &str) -> bool {
    armed_names().iter().any(|n| n == name)
}

/// Aborts the process if the failpoint `name` is armed; otherwise returns at once.
pub fn hit(name: &str) {
    if armed(name) {
        eprintln!("failpoint `{name}` hit: aborting the process ({ENV_VAR})");
        std::process::abort();
    }
}
