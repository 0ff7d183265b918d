//! ml-stream's `RemoteScorer` against a running server: same predictions as the local scorer
//! in both protocols, retries through injected 503s, a clear failure with the server's message
//! on 400 and 401.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use ml_core::{Frame, LocalScorer, ReadOptions, Scorer};
use ml_serve::{AppState, ServeConfig, ServedModel};
use ml_stream::{RemoteConfig, RemoteProtocol, RemoteScorer};
use support::*;

fn frame(model: &dyn ml_core::Model, csv: &str) -> Frame {
    Frame::from_csv(csv.as_bytes(), model.schema().clone(), &ReadOptions::default()).expect("frame")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_scores_equal_local_scores_in_batches_and_in_parallel() {
    let model = credit_forest();
    let server = TestServer::with_model(ServeConfig::default(), "credit", model.clone()).await;
    let data = frame(model.as_ref(), &credit_csv(2500, 8));
    let want = LocalScorer::new(model.clone()).score(&data).await.expect("local");

    let config = RemoteConfig {
        batch_size: 1000,
        parallel_requests: 2,
        ..RemoteConfig::new(server.url(""))
    };
    let remote = RemoteScorer::connect(config).await.expect("connect");
    assert_eq!(remote.schema(), Some(model.schema()));
    let got = remote.score(&data).await.expect("remote");
    assert_eq!(got.len(), 2500);
    assert_eq!(
        got.positive_probabilities(),
        want.positive_probabilities(),
        "positive-class probabilities, bit for bit"
    );
    for r in 0..2500 {
        assert_eq!(got.label(r), want.label(r));
    }

    // The Open Inference Protocol form gives every probability exactly.
    let config = RemoteConfig {
        protocol: RemoteProtocol::Oip {
            model: "credit".into(),
            version: Some("3".into()),
        },
        batch_size: 700,
        ..RemoteConfig::new(server.url(""))
    };
    let oip = RemoteScorer::new(config, model.schema().clone(), Some(model.output().clone())).expect("oip");
    assert_eq!(oip.score(&data).await.expect("oip score"), want);

    // Regression through /score.
    let reg = regression();
    let server = TestServer::with_model(ServeConfig::default(), "reg", reg.clone()).await;
    let data = frame(reg.as_ref(), "a,b,c\n1,2,red\n3.5,-1,blue\n");
    let remote = RemoteScorer::connect(RemoteConfig::new(server.url("")))
        .await
        .expect("connect");
    assert_eq!(
        remote.score(&data).await.expect("score"),
        reg.predict(&data).expect("local")
    );
}

#[test]
fn batch_size_is_checked_against_stream_analytics_range() {
    let schema = ml_core::Schema::new(vec![]).expect("schema");
    for bad in [0, 10_001] {
        let config = RemoteConfig {
            batch_size: bad,
            ..RemoteConfig::new("http://127.0.0.1:1")
        };
        let e = RemoteScorer::new(config, schema.clone(), None)
            .expect_err("out of range")
            .to_string();
        assert!(e.contains("1..=10000"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_503s_are_retried_until_the_batch_completes() {
    let model = credit_forest();
    let state = AppState::with_model(
        ServeConfig::default(),
        ServedModel::new("credit", "3", model.clone()).expect("m"),
    )
    .expect("s");
    // The first three POSTs answer 503 (as a scoring timeout would), then the app answers.
    let refused = Arc::new(AtomicUsize::new(0));
    let counter = refused.clone();
    let router = ml_serve::app(state.clone()).layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let counter = counter.clone();
            async move {
                if req.method() == axum::http::Method::POST && counter.fetch_add(1, Ordering::SeqCst) < 3 {
                    return (
                        StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(serde_json::json!({"message": "Scoring timeout after 5000 ms"})),
                    )
                        .into_response();
                }
                next.run(req).await
            }
        },
    ));
    let server = TestServer::start_router(state, router).await;
    let data = frame(model.as_ref(), &credit_csv(50, 4));
    let config = RemoteConfig {
        initial_backoff: Duration::from_millis(5),
        ..RemoteConfig::new(server.url(""))
    };
    let remote =
        RemoteScorer::new(config, model.schema().clone(), Some(model.output().clone())).expect("remote");
    let got = remote.score(&data).await.expect("completes after retries");
    assert_eq!(
        got.positive_probabilities(),
        model.predict(&data).expect("local").positive_probabilities()
    );
    assert_eq!(
        refused.load(Ordering::SeqCst),
        4,
        "three refusals and one success"
    );

    // With fewer attempts than refusals, the failure names the status and the message.
    refused.store(0, Ordering::SeqCst);
    let config = RemoteConfig {
        initial_backoff: Duration::from_millis(5),
        max_attempts: 2,
        ..RemoteConfig::new(server.url(""))
    };
    let remote =
        RemoteScorer::new(config, model.schema().clone(), Some(model.output().clone())).expect("remote");
    let e = remote.score(&data).await.expect_err("gives up").to_string();
    assert!(
        e.contains("HTTP 503: Scoring timeout after 5000 ms (gave up after 2 attempts)"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_or_401_fails_at_once_with_the_servers_message() {
    let model = credit_forest();
    let config = ServeConfig {
        keys: vec!["k1".into()],
        ..Default::default()
    };
    let state =
        AppState::with_model(config, ServedModel::new("credit", "1", model.clone()).expect("m")).expect("s");
    // The app counts the POSTs it receives (metrics are shared by every test in the process).
    let posts = Arc::new(AtomicUsize::new(0));
    let counter = posts.clone();
    let router = ml_serve::app(state.clone()).layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let counter = counter.clone();
            async move {
                if req.method() == axum::http::Method::POST {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                next.run(req).await
            }
        },
    ));
    let server = TestServer::start_router(state, router).await;
    let data = frame(model.as_ref(), &credit_csv(3, 4));
    // Without the key: 401, no retry.
    let remote = RemoteScorer::new(
        RemoteConfig::new(server.url("")),
        model.schema().clone(),
        Some(model.output().clone()),
    )
    .expect("r");
    let e = remote.score(&data).await.expect_err("401").to_string();
    assert!(e.contains("HTTP 401: missing or wrong key"), "{e}");
    assert_eq!(posts.swap(0, Ordering::SeqCst), 1, "no retries on 401");
    // The client's schema lacks the server's fields: 400 naming them.
    let other = ml_core::Schema::new(vec![ml_core::Field::new("LIMIT_BAL", ml_core::DataType::String)])
        .expect("schema");
    let wrong = Frame::from_rows(other.clone(), &[vec![ml_core::Value::from("plenty")]]).expect("frame");
    let config = RemoteConfig {
        key: Some("k1".into()),
        ..RemoteConfig::new(server.url(""))
    };
    let remote = RemoteScorer::new(config, other, None).expect("r");
    let e = remote.score(&wrong).await.expect_err("400").to_string();
    assert!(
        e.contains("HTTP 400: invalid input") && e.contains("field `SEX`: column is missing"),
        "{e}"
    );
    assert_eq!(posts.swap(0, Ordering::SeqCst), 1, "no retries on 400");
    // A wrong path: 404 from the server, no retry.
    let config = RemoteConfig {
        key: Some("k1".into()),
        protocol: RemoteProtocol::Oip {
            model: "nope".into(),
            version: None,
        },
        ..RemoteConfig::new(server.url(""))
    };
    let remote = RemoteScorer::new(config, model.schema().clone(), None).expect("r");
    let e = remote.score(&data).await.expect_err("404").to_string();
    assert!(e.contains("HTTP 404: Model 'nope' is not found"), "{e}");
    assert_eq!(posts.load(Ordering::SeqCst), 1, "no retries on 404");
}
