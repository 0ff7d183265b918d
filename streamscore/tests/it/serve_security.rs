//! `streamscore serve` hardening from the outside: HTTPS with `--tls-cert`/`--tls-key`, key
//! rotation through `--key-file` while it runs, limits documented in `--help`, and no secret
//! (keys sent or configured, connection strings) in anything the CLI writes.

use crate::common::{fails_env, ok, p};

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `streamscore serve` child whose standard error goes to a file; killed when dropped.
struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(args: &[&str], log: &Path) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamscore"))
        .args(["serve", "--port", "0", "--log-format", "json"])
        .args(args)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("first line");
    Served {
        url: line.trim().to_string(),
        child,
    }
}

/// A model trained on 300 generated rows (seed 5) at `dir/model`, its data at `dir/train.csv`.
pub(crate) fn trained_model(dir: &Path) -> PathBuf {
    let (train, model) = (dir.join("train.csv"), dir.join("model"));
    ok(&["generate", "--rows", "300", "--seed", "5", "--out", p(&train)]);
    ok(&[
        "train",
        "--data",
        p(&train),
        "--target",
        "default",
        "--out",
        p(&model),
    ]);
    model
}

fn write_keys(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[test]
fn serve_over_tls_rotates_keys_from_the_key_file_and_logs_no_secret() {
    let tmp = tempfile::tempdir().expect("tmp");
    let model = trained_model(tmp.path());
    let rows = std::fs::read_to_string(tmp.path().join("train.csv")).expect("csv");
    let header: Vec<&str> = rows.lines().next().expect("header").split(',').collect();
    let values: Vec<&str> = rows.lines().nth(1).expect("row").split(',').collect();
    let record: serde_json::Map<String, serde_json::Value> = header
        .iter()
        .zip(&values)
        .filter(|(h, _)| **h != "default")
        .map(|(h, v)| {
            (
                h.to_string(),
                serde_json::from_str(v).unwrap_or(serde_json::json!(v)),
            )
        })
        .collect();
    let body = serde_json::json!({"data": [record]});

    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let (cert_pem, key_pem, keys) = (
        tmp.path().join("cert.pem"),
        tmp.path().join("key.pem"),
        tmp.path().join("keys"),
    );
    std::fs::write(&cert_pem, cert.cert.pem()).expect("write");
    std::fs::write(&key_pem, cert.key_pair.serialize_pem()).expect("write");
    let (old, secondary, new, wrong) = (
        "cli-primary-old-9a8b7c",
        "cli-secondary-1d2e3f",
        "cli-primary-new-4a5b6c",
        "cli-wrong-key-7e8f9a",
    );
    write_keys(&keys, &format!("{old}\n{secondary}\n"));
    let log = tmp.path().join("serve.log");
    let served = serve(
        &[
            "--model",
            p(&model),
            "--key-file",
            p(&keys),
            "--key-reload-ms",
            "0",
            "--tls-cert",
            p(&cert_pem),
            "--tls-key",
            p(&key_pem),
        ],
        &log,
    );
    assert!(served.url.starts_with("https://127.0.0.1:"), "{}", served.url);
    let port = served.url.rsplit(':').next().expect("port").to_string();
    let base = format!("https://localhost:{port}");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let c = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).expect("pem")])
            .resolve("localhost", addr)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        // The model loads in the background: wait for readiness (a condition, polled).
        let mut ready = false;
        for _ in 0..600 {
            if c.get(format!("{base}/"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "the server never became ready");
        let score = |key: Option<&'static str>| {
            let mut r = c
                .post(format!("{base}/score"))
                .header("content-type", "application/json")
                .body(body.to_string());
            if let Some(k) = key {
                r = r.header("authorization", format!("Bearer {k}"));
            }
            async move { r.send().await.expect("send").status().as_u16() }
        };
        assert_eq!(score(Some(old)).await, 200);
        assert_eq!(score(Some(secondary)).await, 200);
        assert_eq!(score(Some(wrong)).await, 401);
        assert_eq!(score(None).await, 401);
        write_keys(&keys, &format!("{new}\n{secondary}\n"));
        assert_eq!(
            score(Some(old)).await,
            401,
            "the old primary is refused after rotation"
        );
        assert_eq!(score(Some(new)).await, 200);
        assert_eq!(score(Some(secondary)).await, 200);
    });
    drop(served);
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(logged.contains("key file changed"), "{logged}");
    for secret in [old, secondary, new, wrong] {
        assert!(
            !logged.contains(secret),
            "{secret} in the server's log:\n{logged}"
        );
    }
    let key_body: String = cert
        .key_pair
        .serialize_pem()
        .lines()
        .nth(1)
        .expect("a line of the key")
        .to_string();
    assert!(!logged.contains(&key_body), "the TLS key in the log");

    // A key file with a third line, or TLS files that do not fit: one-line errors naming the
    // file, never its content.
    write_keys(&keys, &format!("{old}\n{secondary}\n{new}\n"));
    let e = fails_env(
        &[
            "serve",
            "--port",
            "0",
            "--model",
            p(&model),
            "--key-file",
            p(&keys),
        ],
        &[],
    );
    assert!(e.contains("3 keys") && e.contains("keys"), "{e}");
    for secret in [old, secondary, new] {
        assert!(!e.contains(secret), "{e}");
    }
    let e = fails_env(
        &[
            "serve",
            "--port",
            "0",
            "--model",
            p(&model),
            "--tls-cert",
            p(&key_pem),
            "--tls-key",
            p(&key_pem),
        ],
        &[],
    );
    assert!(e.contains("key.pem") && !e.contains(&key_body), "{e}");
}

#[test]
fn serve_help_documents_the_limits_on_by_default() {
    let (help, _) = ok(&["serve", "--help"]);
    for needle in [
        "--max-body-bytes",
        "413",
        "--body-timeout-ms",
        "408",
        "--header-timeout-ms",
        "431",
        "--request-timeout-ms",
        "503",
        "--max-concurrent-requests",
        "429",
        "[default: 104857600]",
        "[default: 10000]",
        "[default: 5000]",
        "--key-file",
        "--tls-cert",
        "constant time",
    ] {
        assert!(help.contains(needle), "`serve --help` lacks {needle}:\n{help}");
    }
}

/// A connection string whose account key is not valid: the error names the variable and the
/// problem, never the key.
#[cfg(feature = "azure")]
#[test]
fn a_bad_connection_string_is_reported_without_its_key() {
    let secret = "c2VjcmV0LWFjY291bnQta2V5LW5vdC1iYXNlNjQ=!!";
    let conn = format!(
        "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey={secret};BlobEndpoint=http://127.0.0.1:9/acct"
    );
    let e = fails_env(
        &["models", "--registry", "blob://models/x"],
        &[("AZURE_STORAGE_CONNECTION_STRING", &conn), ("RUST_LOG", "trace")],
    );
    assert!(!e.contains(secret) && !e.contains("c2VjcmV0"), "{e}");
}
