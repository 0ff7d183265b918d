//! The Event Hubs connection-string parser (`ml_stream::kafka::EventHubsConnection::parse`).
//! A string that parses gives Kafka settings whose password is the whole (trimmed) string, and
//! its `Debug` form never shows the key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ml_stream::kafka::EventHubsConnection;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(c) = EventHubsConnection::parse(text) else {
        return;
    };
    assert!(!c.namespace.is_empty());
    let settings = c.kafka_settings();
    let password = settings
        .iter()
        .find(|(k, _)| k == "sasl.password")
        .map(|(_, v)| v.as_str());
    assert_eq!(password, Some(text.trim()));
    assert!(!c.bootstrap_servers().is_empty());
    // The key, when it is long enough not to occur by chance in the other (shown) parts.
    let key = text.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("SharedAccessKey").then(|| v.trim())
    });
    if let Some(key) = key
        && key.len() >= 12
    {
        let shown = format!("{:?}{:?}{:?}", c.namespace, c.key_name, c.entity_path);
        if !shown.contains(key) {
            assert!(!format!("{c:?}").contains(key), "Debug shows the key");
        }
    }
});
