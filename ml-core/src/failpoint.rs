//! Named failpoints: exact places where a crash test can kill the process.
//!
//! `STREAMSCORE_FAILPOINT=name[:n][,name2[:n2]...]` makes [`hit`]`("name")` abort the process
//! (`std::process::abort`, as abrupt as `kill -9`: no destructor, no flush) the `n`-th time it
//! is reached (the first time when `:n` is absent). Without the variable, `hit` costs one
//! relaxed atomic load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};

/// The environment variable that arms failpoints.
pub const ENV: &str = "STREAMSCORE_FAILPOINT";

/// 0: not read yet, 1: none armed, 2: some armed.
static STATE: AtomicU8 = AtomicU8::new(0);
static ARMED: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();

fn armed() -> &'static Mutex<HashMap<String, u64>> {
    ARMED.get_or_init(|| {
        let mut map = HashMap::new();
        if let Ok(spec) = std::env::var(ENV) {
            for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (name, n) = match item.split_once(':') {
                    Some((name, n)) => (name, n.parse().unwrap_or(1)),
                    None => (item, 1),
                };
                map.insert(name.to_string(), n.max(1));
            }
        }
        STATE.store(if map.is_empty() { 1 } else { 2 }, Ordering::Relaxed);
        Mutex::new(map)
    })
}

/// Marks a failpoint. Aborts the process when `name` is armed and its count is reached.
pub fn hit(name: &str) {
    if STATE.load(Ordering::Relaxed) == 1 {
        return;
    }
    let mut map = armed().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(left) = map.get_mut(name) {
        *left -= 1;
        if *left == 0 {
            eprintln!("failpoint {name}: aborting the process");
            std::process::abort();
        }
    }
}
