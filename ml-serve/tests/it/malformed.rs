//! The malformed-input catalogue: byte-level requests (raw TCP, so invalid UTF-8, broken
//! framing and stalled bodies can be sent) against `/score`, Open Inference Protocol v2 `infer`
//! and MLflow `/invocations` of a server run by `ml_serve::serve`. Every case asserts the status
//! of DESIGN §Conventions and a message that names the field or limit, and after every case the
//! same server still answers a valid request.

use crate::support;

use std::net::SocketAddr;
use std::time::Duration;

use ml_serve::{AppState, ServeConfig, ServedModel};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The model: a regression on `a` (float), `b` (float), `c` (category).
const VALID: &str = r#"{"data": [{"a": 1.5, "b": -2, "c": "red"}]}"#;
const VALID_OIP: &str = r#"{"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1.5]}, {"name": "b", "shape": [1], "datatype": "INT64", "data": [-2]}, {"name": "c", "shape": [1], "datatype": "BYTES", "data": ["red"]}]}"#;
const INFER: &str = "/v2/models/reg/infer";

/// What came back: the status (0 when the server closed the connection without answering),
/// and the body.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    /// The error message of any of the three protocols' error bodies.
    fn message(&self) -> String {
        let v: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        v.get("message")
            .or_else(|| v.get("error"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }
}

fn parse(raw: &[u8]) -> Answer {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Answer {
            status: 0,
            head: String::from_utf8_lossy(raw).into(),
            body: Vec::new(),
        };
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut body = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Answer { status, head, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap_or("0").trim(), 16).unwrap_or(0);
        if n == 0 || b.len() < eol + 2 + n {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
    out
}

/// Reads until the server closes the connection (every request says `connection: close`).
async fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("no answer within 30 s: {}", String::from_utf8_lossy(&out)),
        }
    }
}

/// Sends `request` whole and reads the answer.
async fn send(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // The server may answer (413, 431) and close before it has read everything: a failed write
    // is then expected, the answer is what counts.
    let _ = s.write_all(request).await;
    parse(&read_all(&mut s).await)
}

/// Sends `request` and then nothing more, keeping the connection open: the server must answer
/// on its own (408) or close it (slow headers).
async fn send_and_stall(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    parse(&read_all(&mut s).await)
}

/// Sends `request`, then one more body byte every 20 ms until the server answers.
async fn send_dripping(addr: SocketAddr, request: &[u8]) -> Answer {
    let s = TcpStream::connect(addr).await.expect("connect");
    let (mut r, mut w) = s.into_split();
    w.write_all(request).await.expect("write");
    let drip = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            if w.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), r.read_to_end(&mut out)).await;
    drip.abort();
    parse(&out)
}

/// Sends `request` and closes the writing half (the body ends early).
async fn send_and_close(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    s.shutdown().await.expect("shutdown");
    parse(&read_all(&mut s).await)
}

fn request(method: &str, path: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n").into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

fn post(path: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    request("POST", path, &[("content-type", content_type.as_bytes())], body)
}

fn json(path: &str, body: impl AsRef<[u8]>) -> Vec<u8> {
    post(path, "application/json", body.as_ref())
}

/// Only the head of a request: the body is announced but (partly) not sent.
fn head_only(path: &str, extra: &str) -> Vec<u8> {
    format!("POST {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-type: application/json\r\n{extra}\r\n")
        .into_bytes()
}

fn oip_tensor(shape: &str, datatype: &str, data: &str) -> String {
    format!(r#"{{"inputs": [{{"name": "x", "shape": {shape}, "datatype": "{datatype}", "data": {data}}}]}}"#)
}

fn big(n: usize) -> String {
    "x".repeat(n)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Server {
    /// Default limits, but 16 MiB bodies (the 10 MB cases must reach the parser).
    Main,
    /// 1 KiB bodies.
    Tight,
    /// 200 ms for the body, 300 ms for the headers.
    Slow,
}

#[derive(Clone, Copy, Debug)]
enum How {
    Whole,
    Stall,
    Drip,
    CloseEarly,
}

struct Case {
    name: &'static str,
    server: Server,
    how: How,
    request: Vec<u8>,
    status: u16,
    /// Substrings the message must hold (none: the server answers before any route runs, with
    /// no body, or closes the connection).
    needles: Vec<&'static str>,
}

fn case(name: &'static str, request: Vec<u8>, status: u16, needles: &[&'static str]) -> Case {
    Case {
        name,
        server: Server::Main,
        how: How::Whole,
        request,
        status,
        needles: needles.to_vec(),
    }
}

impl Case {
    fn on(mut self, server: Server, how: How) -> Self {
        self.server = server;
        self.how = how;
        self
    }
}

fn catalogue() -> Vec<Case> {
    let deep = format!("{{\"data\": {}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    let wide_row: String = (0..100_000)
        .map(|i| format!("\"col{i}\": {i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let wide_columnar: String = (0..100_000)
        .map(|i| format!("\"col{i}\": [{i}]"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut invalid_utf8_string = br#"{"data": [{"a": 1.5, "b": -2.0, "c": "re"#.to_vec();
    invalid_utf8_string.extend_from_slice(b"\xff\xfed\"}]}");
    let mut invalid_utf8_bare = br#"{"data": [{"a": 1.5, "b": "#.to_vec();
    invalid_utf8_bare.extend_from_slice(b"\xc3\x28}]}");
    let flood: Vec<(String, Vec<u8>)> = (0..150)
        .map(|i| (format!("x-flood-{i}"), b"v".to_vec()))
        .collect();
    let flood_refs: Vec<(&str, &[u8])> = flood.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
    let huge_header = big(512 * 1024);
    let mut csv_invalid_utf8 = b"a,b,c\n1.5,-2,r".to_vec();
    csv_invalid_utf8.extend_from_slice(b"\xff\xfe\n");

    vec![
        // ---- /score: JSON syntax
        case(
            "score: truncated JSON",
            json("/score", r#"{"data": [{"a": 1.5,"#),
            400,
            &["not valid JSON", "line 1"],
        ),
        case(
            "score: empty body",
            json("/score", ""),
            400,
            &["body is empty", "\"data\""],
        ),
        case(
            "score: blank body",
            json("/score", " \n\t "),
            400,
            &["body is empty"],
        ),
        case(
            "score: trailing garbage",
            json("/score", format!("{VALID} xyz")),
            400,
            &["not valid JSON", "trailing"],
        ),
        case(
            "score: NaN literal",
            json("/score", r#"{"data": [{"a": NaN, "b": 1, "c": "red"}]}"#),
            400,
            &["NaN", "null"],
        ),
        case(
            "score: Infinity literal",
            json("/score", r#"{"data": [{"a": Infinity, "b": 1, "c": "red"}]}"#),
            400,
            &["Infinity", "null"],
        ),
        case(
            "score: -Infinity literal",
            json("/score", r#"{"data": [{"a": -Infinity, "b": 1, "c": "red"}]}"#),
            400,
            &["Infinity", "null"],
        ),
        case(
            "score: number out of range",
            json("/score", r#"{"data": [{"a": 1e999, "b": 1, "c": "red"}]}"#),
            400,
            &["out of range"],
        ),
        case(
            "score: duplicate top-level key",
            json(
                "/score",
                r#"{"data": [{"a": 1, "b": 1, "c": "red"}], "data": []}"#,
            ),
            400,
            &["duplicate key `data`"],
        ),
        case(
            "score: duplicate key in a row",
            json("/score", r#"{"data": [{"a": 1, "a": 2, "b": 1, "c": "red"}]}"#),
            400,
            &["duplicate key `a`"],
        ),
        case(
            "score: nesting 10000 deep",
            json("/score", deep),
            400,
            &["not valid JSON", "nested"],
        ),
        case(
            "score: invalid UTF-8 in a string",
            json("/score", &invalid_utf8_string),
            400,
            &["not valid JSON", "UTF-8"],
        ),
        case(
            "score: invalid UTF-8 outside strings",
            json("/score", &invalid_utf8_bare),
            400,
            &["not valid JSON"],
        ),
        // ---- /score: shapes and types
        case(
            "score: body is an array",
            json("/score", "[1, 2, 3]"),
            400,
            &["must be a JSON object", "data"],
        ),
        case(
            "score: body is a string",
            json("/score", r#""data""#),
            400,
            &["must be a JSON object"],
        ),
        case(
            "score: no known field",
            json("/score", r#"{"rows": []}"#),
            400,
            &["'data' parameter"],
        ),
        case(
            "score: data is a string",
            json("/score", r#"{"data": "a=1"}"#),
            400,
            &["`data` must be a list of rows", "a, b, c"],
        ),
        case(
            "score: data is a number",
            json("/score", r#"{"data": 42}"#),
            400,
            &["`data` must be a list of rows"],
        ),
        case(
            "score: rows are numbers",
            json("/score", r#"{"data": [1, 2]}"#),
            400,
            &["row 0"],
        ),
        case(
            "score: wrong type for a float",
            json("/score", r#"{"data": [{"a": "one", "b": 1, "c": "red"}]}"#),
            400,
            &["field `a`", "float"],
        ),
        case(
            "score: boolean for a float",
            json("/score", r#"{"data": [{"a": true, "b": 1, "c": "red"}]}"#),
            400,
            &["field `a`"],
        ),
        case(
            "score: missing field",
            json("/score", r#"{"data": [{"b": 1, "c": "red"}]}"#),
            400,
            &["`a`"],
        ),
        case(
            "score: nested garbage in a field",
            json(
                "/score",
                r#"{"data": [{"a": {"x": [1, {"y": null}]}, "b": 1, "c": "red"}]}"#,
            ),
            400,
            &["field `a`"],
        ),
        case(
            "score: ragged list rows",
            json("/score", r#"{"data": [[1.5, -2.0, "red"], [1.0]]}"#),
            400,
            &["row 1"],
        ),
        case(
            "score: 10 MB string value",
            json(
                "/score",
                format!(
                    r#"{{"data": [{{"a": "{}", "b": 1, "c": "red"}}]}}"#,
                    big(10_000_000)
                ),
            ),
            400,
            &["field `a`"],
        ),
        case(
            "score: 10 MB key",
            json(
                "/score",
                format!(
                    r#"{{"data": [{{"{}": 1, "b": 1, "c": "red"}}]}}"#,
                    big(10_000_000)
                ),
            ),
            400,
            &["`a`"],
        ),
        case(
            "score: 100k columns in a row",
            json("/score", format!(r#"{{"data": [{{{wide_row}}}]}}"#)),
            400,
            &["`a`"],
        ),
        case(
            "score: 100k named tensors",
            json("/score", format!(r#"{{"input_data": {{{wide_columnar}}}}}"#)),
            400,
            &["`a`"],
        ),
        case(
            "score: two named inputs",
            json("/score", r#"{"Inputs": {"x": [], "y": []}}"#),
            400,
            &["2 inputs"],
        ),
        case(
            "score: split with a short row",
            json(
                "/score",
                r#"{"input_data": {"columns": ["a", "b", "c"], "data": [[1, 2]]}}"#,
            ),
            400,
            &["row 0", "expected 3 values (one per field: a, b, c), found 2"],
        ),
        // ---- /score: HTTP
        case(
            "score: text/plain",
            post("/score", "text/plain", VALID.as_bytes()),
            415,
            &["text/plain", "application/json"],
        ),
        case(
            "score: form data",
            post("/score", "application/x-www-form-urlencoded", b"data=1"),
            415,
            &["application/json"],
        ),
        case(
            "score: content type not text",
            request(
                "POST",
                "/score",
                &[("content-type", b"\xff\xfe")],
                VALID.as_bytes(),
            ),
            415,
            &["Content-Type", "application/json"],
        ),
        case(
            "score: GET",
            request("GET", "/score", &[], b""),
            405,
            &["GET is not allowed on /score"],
        ),
        case(
            "unknown route",
            json("/scoring", VALID),
            404,
            &["no route POST /scoring"],
        ),
        case(
            "x-request-id of 101 characters",
            request(
                "POST",
                "/score",
                &[("x-request-id", big(101).as_bytes())],
                VALID.as_bytes(),
            ),
            431,
            &["x-request-id is 101 characters", "100"],
        ),
        case(
            "x-request-id of 8 KB",
            request(
                "POST",
                "/score",
                &[("x-request-id", big(8192).as_bytes())],
                VALID.as_bytes(),
            ),
            431,
            &["x-request-id is 8192 characters"],
        ),
        case(
            "header flood: 150 header fields",
            request("POST", "/score", &flood_refs, VALID.as_bytes()),
            431,
            &[],
        ),
        case(
            "header flood: one 512 KB header",
            request(
                "POST",
                "/score",
                &[("x-junk", huge_header.as_bytes())],
                VALID.as_bytes(),
            ),
            431,
            &[],
        ),
        case(
            "broken chunked framing",
            head_only("/score", "transfer-encoding: chunked\r\n")
                .into_iter()
                .chain(b"zz\r\nabc\r\n".iter().copied())
                .collect(),
            400,
            &["body could not be read"],
        ),
        case(
            "body shorter than content-length, then closed",
            [
                head_only("/score", "content-length: 100\r\n"),
                b"{\"data\"".to_vec(),
            ]
            .concat(),
            400,
            &["body could not be read"],
        )
        .on(Server::Main, How::CloseEarly),
        // Regression: hyper closed a connection whose client shut its sending side after a
        // whole request, without an answer; the answer now comes.
        case(
            "whole request, then the sending side closed",
            json("/score", VALID),
            200,
            &[],
        )
        .on(Server::Main, How::CloseEarly),
        // ---- limits
        case(
            "413: declared length over the limit",
            head_only("/score", "content-length: 2000\r\n"),
            413,
            &["limit of 1024 bytes"],
        )
        .on(Server::Tight, How::Stall),
        case(
            "413: chunked body over the limit",
            [
                head_only("/score", "transfer-encoding: chunked\r\n"),
                format!("7d0\r\n{}\r\n", big(2000)).into_bytes(),
            ]
            .concat(),
            413,
            &["limit of 1024 bytes"],
        )
        .on(Server::Tight, How::Stall),
        case(
            "413: invocations over the limit",
            [head_only("/invocations", "content-length: 5000\r\n")].concat(),
            413,
            &["limit of 1024 bytes"],
        )
        .on(Server::Tight, How::Stall),
        case(
            "408: body stalls after 10 of 100 bytes",
            [
                head_only("/score", "content-length: 100\r\n"),
                b"{\"data\": [".to_vec(),
            ]
            .concat(),
            408,
            &["did not arrive within 200 ms"],
        )
        .on(Server::Slow, How::Stall),
        case(
            "408: headers only, no body byte",
            head_only("/score", "content-length: 100\r\n"),
            408,
            &["did not arrive within 200 ms"],
        )
        .on(Server::Slow, How::Stall),
        case(
            "408: chunked body stalls",
            [
                head_only("/score", "transfer-encoding: chunked\r\n"),
                b"5\r\n{\"dat\r\n".to_vec(),
            ]
            .concat(),
            408,
            &["did not arrive within 200 ms"],
        )
        .on(Server::Slow, How::Stall),
        case(
            "408: body dripped a byte at a time",
            head_only("/score", "content-length: 100000\r\n"),
            408,
            &["did not arrive within 200 ms"],
        )
        .on(Server::Slow, How::Drip),
        case(
            "408: OIP body stalls",
            [head_only(INFER, "content-length: 100\r\n"), b"{".to_vec()].concat(),
            408,
            &["did not arrive within 200 ms"],
        )
        .on(Server::Slow, How::Stall),
        case(
            "408: invocations body stalls",
            [
                head_only("/invocations", "content-length: 100\r\n"),
                b"{".to_vec(),
            ]
            .concat(),
            408,
            &["did not arrive within 200 ms"],
        )
        .on(Server::Slow, How::Stall),
        case(
            "slow headers: connection closed",
            b"POST /score HTTP/1.1\r\nhost: test\r\n".to_vec(),
            0,
            &[],
        )
        .on(Server::Slow, How::Stall),
        // ---- Open Inference Protocol v2
        case(
            "oip: truncated JSON",
            json(INFER, r#"{"inputs": [{"name": "x""#),
            400,
            &["not valid JSON"],
        ),
        case("oip: empty body", json(INFER, ""), 400, &["body is empty"]),
        case(
            "oip: no inputs",
            json(INFER, r#"{"outputs": []}"#),
            400,
            &["needs `inputs`"],
        ),
        case(
            "oip: inputs not a list",
            json(INFER, r#"{"inputs": {"name": "x"}}"#),
            400,
            &["needs `inputs`"],
        ),
        case(
            "oip: input without a name",
            json(
                INFER,
                r#"{"inputs": [{"shape": [1], "datatype": "FP64", "data": [1]}]}"#,
            ),
            400,
            &["needs a `name`"],
        ),
        case(
            "oip: negative shape",
            json(INFER, oip_tensor("[-1, 3]", "FP64", "[1, 2, 3]")),
            400,
            &["input 'x'", "non-negative integers"],
        ),
        case(
            "oip: fractional shape",
            json(INFER, oip_tensor("[1.5, 3]", "FP64", "[1, 2, 3]")),
            400,
            &["non-negative integers"],
        ),
        case(
            "oip: shape not a list",
            json(INFER, oip_tensor("3", "FP64", "[1, 2, 3]")),
            400,
            &["needs a `shape`"],
        ),
        case(
            "oip: huge shape (u64 max)",
            json(
                INFER,
                oip_tensor("[18446744073709551615, 3]", "FP64", "[1, 2, 3]"),
            ),
            400,
            &["input 'x'", "shape", "too large"],
        ),
        case(
            "oip: shape product overflows",
            json(
                INFER,
                oip_tensor("[4294967296, 4294967296, 4294967296]", "FP64", "[1, 2, 3]"),
            ),
            400,
            &["input 'x'", "too large"],
        ),
        case(
            "oip: shape 2x3 with 3 values",
            json(INFER, oip_tensor("[2, 3]", "FP64", "[1, 2, 3]")),
            400,
            &["has 3 values but its shape [2, 3] needs 6"],
        ),
        case(
            "oip: zero rows",
            json(INFER, oip_tensor("[0, 3]", "FP64", "[]")),
            400,
            &["no rows"],
        ),
        case(
            "oip: unknown datatype",
            json(INFER, oip_tensor("[1, 3]", "FP128", "[1, 2, 3]")),
            400,
            &["unknown datatype 'FP128'"],
        ),
        case(
            "oip: numbers as BYTES",
            json(INFER, oip_tensor("[1, 3]", "BYTES", "[1, 2, 3]")),
            400,
            &["element 0", "BYTES"],
        ),
        case(
            "oip: NaN literal",
            json(INFER, oip_tensor("[1, 3]", "FP64", "[NaN, 2, 3]")),
            400,
            &["NaN"],
        ),
        case(
            "oip: duplicate key",
            json(INFER, r#"{"inputs": [], "inputs": []}"#),
            400,
            &["duplicate key `inputs`"],
        ),
        case(
            "oip: wrong content type",
            post(INFER, "text/plain", VALID_OIP.as_bytes()),
            415,
            &["application/json"],
        ),
        case(
            "oip: binary tensor extension",
            request(
                "POST",
                INFER,
                &[("inference-header-content-length", b"10")],
                VALID_OIP.as_bytes(),
            ),
            400,
            &["binary tensor data"],
        ),
        case(
            "oip: unknown model",
            json("/v2/models/nope/infer", VALID_OIP),
            404,
            &["Model 'nope' is not found"],
        ),
        case(
            "oip: model name not UTF-8",
            json("/v2/models/%FF%FE/infer", VALID_OIP),
            404,
            &["is not found", "reg"],
        ),
        case(
            "oip: unknown version",
            json("/v2/models/reg/versions/99/infer", VALID_OIP),
            404,
            &["version '99' is not found"],
        ),
        // ---- MLflow /invocations
        case(
            "mlflow: truncated JSON",
            json("/invocations", r#"{"instances": [{"a": 1"#),
            400,
            &["not valid JSON"],
        ),
        case(
            "mlflow: empty body",
            json("/invocations", ""),
            400,
            &["body is empty"],
        ),
        case(
            "mlflow: two input fields",
            json("/invocations", r#"{"instances": [], "inputs": []}"#),
            400,
            &["exactly one of the input fields"],
        ),
        case(
            "mlflow: no input field",
            json("/invocations", r#"{"rows": []}"#),
            400,
            &["exactly one of the input fields"],
        ),
        case(
            "mlflow: records not objects",
            json("/invocations", r#"{"dataframe_records": [[1, 2, "red"]]}"#),
            400,
            &["`dataframe_records` must be a list of records"],
        ),
        case(
            "mlflow: split columns not strings",
            json(
                "/invocations",
                r#"{"dataframe_split": {"columns": [1, 2, 3], "data": [[1, 2, "red"]]}}"#,
            ),
            400,
            &["must hold column names"],
        ),
        case(
            "mlflow: split index length",
            json(
                "/invocations",
                r#"{"dataframe_split": {"columns": ["a", "b", "c"], "index": [0, 1], "data": [[1, 2, "red"]]}}"#,
            ),
            400,
            &["`dataframe_split.index`", "1 rows"],
        ),
        case(
            "mlflow: wrong type",
            json(
                "/invocations",
                r#"{"dataframe_records": [{"a": [1], "b": 1, "c": "red"}]}"#,
            ),
            400,
            &["field `a`"],
        ),
        case(
            "mlflow: Infinity literal",
            json(
                "/invocations",
                r#"{"instances": [{"a": Infinity, "b": 1, "c": "red"}]}"#,
            ),
            400,
            &["Infinity"],
        ),
        case(
            "mlflow: duplicate key",
            json(
                "/invocations",
                r#"{"instances": [{"a": 1, "b": 1, "b": 2, "c": "red"}]}"#,
            ),
            400,
            &["duplicate key `b`"],
        ),
        case(
            "mlflow: text/plain",
            post("/invocations", "text/plain", b"a,b,c\n1,2,red\n"),
            415,
            &["text/csv", "application/json", "text/plain"],
        ),
        case(
            "mlflow: ragged CSV",
            post("/invocations", "text/csv", b"a,b,c\n1,2\n"),
            400,
            &["row 0 has 2 fields but the header has 3"],
        ),
        case(
            "mlflow: split row length",
            json(
                "/invocations",
                r#"{"dataframe_split": {"columns": ["c", "b", "a"], "data": [["red", 1]]}}"#,
            ),
            400,
            &["`dataframe_split.data` row 0 has 2 values for 3 columns"],
        ),
        case(
            "mlflow: CSV not UTF-8",
            post("/invocations", "text/csv", &csv_invalid_utf8),
            400,
            &["UTF-8"],
        ),
        case(
            "mlflow: CSV header only",
            post("/invocations", "text/csv", b"a,b,c\n"),
            400,
            &["request body"],
        ),
    ]
}

async fn server(config: ServeConfig) -> support::TestServer {
    let model = ServedModel::new("reg", "3", support::regression()).expect("served");
    support::TestServer::start_served(AppState::with_model(config, model).expect("state")).await
}

async fn still_serving(addr: SocketAddr, after: &str) {
    for (path, body) in [
        ("/score", VALID),
        (INFER, VALID_OIP),
        (
            "/invocations",
            r#"{"instances": [{"a": 1.5, "b": -2, "c": "red"}]}"#,
        ),
    ] {
        let a = send(addr, &json(path, body)).await;
        assert_eq!(a.status, 200, "after `{after}`, {path} answers: {a:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_request_gets_its_status_and_a_message_and_the_server_keeps_serving() {
    let main = server(ServeConfig {
        max_body_bytes: 16 * 1024 * 1024,
        ..Default::default()
    })
    .await;
    let tight = server(ServeConfig {
        max_body_bytes: 1024,
        ..Default::default()
    })
    .await;
    let slow = server(ServeConfig {
        body_timeout: Duration::from_millis(200),
        header_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let cases = catalogue();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let addr = match c.server {
            Server::Main => main.addr,
            Server::Tight => tight.addr,
            Server::Slow => slow.addr,
        };
        let a = match c.how {
            How::Whole => send(addr, &c.request).await,
            How::Stall => send_and_stall(addr, &c.request).await,
            How::Drip => send_dripping(addr, &c.request).await,
            How::CloseEarly => send_and_close(addr, &c.request).await,
        };
        let message = a.message();
        println!("{:>3}  {}: {}", a.status, c.name, message);
        let mut wrong = Vec::new();
        if a.status != c.status {
            wrong.push(format!(
                "status {} (want {}): {}",
                a.status,
                c.status,
                a.head.lines().next().unwrap_or("")
            ));
        }
        for n in &c.needles {
            if !message.contains(n) {
                wrong.push(format!("message lacks {n:?}"));
            }
        }
        if !c.needles.is_empty() && a.body.len() >= 4096 {
            wrong.push(format!(
                "the answer is {} bytes; echoed input must be truncated",
                a.body.len()
            ));
        }
        if !wrong.is_empty() {
            failures.push(format!("{}: {} [{message}]", c.name, wrong.join("; ")));
        }
        still_serving(addr, c.name).await;
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
