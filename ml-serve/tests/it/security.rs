//! Security of the endpoint: key rotation through a key file without a restart, secrets never in
//! a log line or an answer, TLS with a certificate made in the test, limits on by default.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ml_serve::{AppState, ServeConfig, ServedModel};
use serde_json::json;

const BODY: &str = r#"{"data": [{"a": 1.5, "b": -2.0, "c": "red"}]}"#;

fn state(config: ServeConfig) -> AppState {
    let model = ServedModel::new("reg", "3", support::regression()).expect("served");
    AppState::with_model(config, model).expect("state")
}

async fn score(c: &reqwest::Client, base: &str, key: Option<&str>) -> u16 {
    let mut r = c
        .post(format!("{base}/score"))
        .header("content-type", "application/json")
        .body(BODY);
    if let Some(k) = key {
        r = r.header("authorization", format!("Bearer {k}"));
    }
    r.send().await.expect("send").status().as_u16()
}

/// Writes the key file as an operator should: a new file renamed over the old one.
fn write_keys(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// Log lines captured from the server (every level), for the redaction checks.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// Primary and secondary keys; rotation by rewriting the key file while the server runs: the
/// old primary is refused once the file is re-read, the secondary and the new primary work,
/// and no key (right or wrong) appears in any log line or answer. The server runs on this
/// thread (a current-thread runtime) so the thread's log subscriber sees all of it.
#[tokio::test]
async fn keys_rotate_through_the_key_file_and_never_reach_a_log_or_an_answer() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().expect("tmp");
    let key_file = dir.path().join("keys");
    let (old, secondary, new) = (
        "primary-old-5f1e8a0c3b",
        "secondary-77d0c2e9aa",
        "primary-new-c4a9b21e06",
    );
    let wrong = "wrong-key-0d9f3e7a51";
    write_keys(&key_file, &format!("{old}\n{secondary}\n"));
    let config = ServeConfig {
        key_file: Some(key_file.clone()),
        key_reload_interval: Duration::ZERO,
        ..Default::default()
    };
    assert!(!format!("{config:?}").contains(old));
    let server = support::TestServer::start_served(state(config)).await;
    assert!(
        !format!("{:?}", server.state).contains(old),
        "Debug never shows a key"
    );
    let base = server.url("");
    let c = support::client();

    assert_eq!(score(&c, &base, Some(old)).await, 200);
    assert_eq!(score(&c, &base, Some(secondary)).await, 200);
    assert_eq!(score(&c, &base, None).await, 401);
    assert_eq!(score(&c, &base, Some(wrong)).await, 401);
    assert_eq!(
        score(&c, &base, Some(&old[..old.len() - 1])).await,
        401,
        "a prefix of a key"
    );
    // The 401 answer tells how to authenticate and shows no key.
    let r = c
        .post(format!("{base}/score"))
        .header("authorization", format!("Bearer {wrong}"))
        .body(BODY)
        .send()
        .await
        .expect("send");
    let text = r.text().await.expect("text");
    assert!(
        text.contains("Authorization: Bearer <key>") && !text.contains(wrong),
        "{text}"
    );

    // Rotation: clients are on the secondary; the primary is replaced.
    write_keys(&key_file, &format!("{new}\n{secondary}\n"));
    assert_eq!(
        score(&c, &base, Some(old)).await,
        401,
        "the old primary is refused"
    );
    assert_eq!(score(&c, &base, Some(new)).await, 200);
    assert_eq!(score(&c, &base, Some(secondary)).await, 200);
    // A broken edit (an empty file) keeps the keys in use: nobody is locked out, nothing opens.
    std::fs::write(&key_file, "").expect("write");
    assert_eq!(score(&c, &base, Some(new)).await, 200);
    assert_eq!(score(&c, &base, None).await, 401);
    // Other routes with a key in the Authorization header and in other headers.
    let r = c
        .post(format!("{base}/v2/models/reg/infer"))
        .header("authorization", format!("Bearer {wrong}"))
        .header("x-ms-client-request-id", "abc")
        .json(&json!({"inputs": []}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    server.stop().await;

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).expect("utf8");
    assert!(logs.contains("key file changed"), "the reload is logged:\n{logs}");
    for secret in [old, secondary, new, wrong] {
        assert!(!logs.contains(secret), "{secret} in the log:\n{logs}");
    }
}

/// HTTPS with a self-signed certificate made here: a client trusting it scores; a plain-HTTP
/// client gets no answer; a client that does not trust it fails the handshake; the server
/// keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_https_with_a_certificate_from_pem_files() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let dir = tempfile::tempdir().expect("tmp");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).expect("write");
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).expect("write");
    let tls = ml_serve::tls_config(&cert_path, &key_path).expect("tls config");
    let server = support::TestServer::start_served_tls(state(ServeConfig::default()), Some(tls)).await;
    let base = format!("https://localhost:{}", server.addr.port());
    let trusting = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).expect("pem")])
        .resolve("localhost", server.addr)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    assert_eq!(score(&trusting, &base, None).await, 200);
    let r = trusting.get(format!("{base}/")).send().await.expect("health");
    assert_eq!(r.text().await.expect("text"), "Healthy");

    // Not trusted: the handshake fails.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let distrusting = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(other.cert.pem().as_bytes()).expect("pem")])
        .resolve("localhost", server.addr)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    assert!(distrusting.get(format!("{base}/")).send().await.is_err());
    // Plain HTTP to the TLS port: no HTTP answer.
    let plain = support::client()
        .get(format!("http://{}/", server.addr))
        .send()
        .await;
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status() != 200));
    assert_eq!(score(&trusting, &base, None).await, 200, "still serving");
    server.stop().await;

    // Unusable PEM files: typed errors naming the file, never the key's bytes.
    std::fs::write(dir.path().join("empty.pem"), "").expect("write");
    let e = ml_serve::tls_config(&dir.path().join("empty.pem"), &key_path)
        .expect_err("no cert")
        .to_string();
    assert!(e.contains("empty.pem") && e.contains("no certificate"), "{e}");
    let e = ml_serve::tls_config(&cert_path, &cert_path)
        .expect_err("a certificate is no key")
        .to_string();
    assert!(e.contains("private key") && e.contains("cert.pem"), "{e}");
    let key_pem = cert.key_pair.serialize_pem();
    assert!(!e.contains(&key_pem[40..80]));
    let e = ml_serve::tls_config(&cert_path, &other_key(&dir, &other))
        .expect_err("mismatched pair")
        .to_string();
    assert!(e.contains("do not make a usable pair"), "{e}");
}

fn other_key(dir: &tempfile::TempDir, other: &rcgen::CertifiedKey) -> std::path::PathBuf {
    let p = dir.path().join("other-key.pem");
    std::fs::write(&p, other.key_pair.serialize_pem()).expect("write");
    p
}

/// The limits are on without any setting.
#[test]
fn limits_are_on_by_default() {
    let c = ServeConfig::default();
    assert_eq!(c.max_body_bytes, 100 * 1024 * 1024);
    assert_eq!(c.body_timeout, Duration::from_secs(10));
    assert_eq!(c.header_timeout, Duration::from_secs(10));
    assert_eq!(c.request_timeout, Duration::from_secs(5));
    assert_eq!(c.max_concurrent_requests, 512);
    assert!(c.check().is_ok());
    for bad in [
        ServeConfig {
            header_timeout: Duration::ZERO,
            ..Default::default()
        },
        ServeConfig {
            body_timeout: Duration::ZERO,
            ..Default::default()
        },
        ServeConfig {
            keys: vec!["k".into()],
            key_file: Some("keys".into()),
            ..Default::default()
        },
    ] {
        assert!(bad.check().is_err());
    }
}
