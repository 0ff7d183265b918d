//! `streamscore.toml` (`streamscore::config::Config::parse_env`: `${VAR}` expansion, TOML, the
//! `[env.*]` overlays, every section's checks and the did-you-mean suggestions). A config that
//! parses must print as JSON (what `streamscore config check` shows).
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamscore::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::parse(text) {
        config.to_json().expect("a parsed config prints as JSON");
    }
    let _ = Config::parse_env(text, Some("prod"));
});
