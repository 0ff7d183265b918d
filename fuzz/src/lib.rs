//! Shared pieces of the fuzz targets: fixed schemas, one served model behind the real router,
//! and rows for loaded models drawn from the fuzz input.
//!
//! Every target drives the code that production runs (the axum router of ml-serve, ml-core's
//! readers and loaders, streamscore's config parser, ml-stream's connection-string parser);
//! nothing here re-implements a parser.

use std::sync::{Arc, OnceLock};

#[cfg(feature = "serve")]
use axum::body::Body;
#[cfg(feature = "serve")]
use axum::http::{Request, StatusCode};
#[cfg(feature = "serve")]
use ml_core::{CsvTable, Estimator, InferOptions, ReadOptions};
use ml_core::{DataType, Field, Frame, Model, Schema, Value};
#[cfg(feature = "serve")]
use tower::ServiceExt;

/// The schemas the frame readers are fuzzed against (the first input byte picks one).
pub fn schemas() -> &'static [Arc<Schema>] {
    static SCHEMAS: OnceLock<Vec<Arc<Schema>>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let plan = || DataType::categorical(["basic", "pro", "1"]).expect("a valid vocabulary");
        let schema = |fields: Vec<Field>| Arc::new(Schema::new(fields).expect("a valid schema"));
        vec![
            schema(vec![
                Field::new("income", DataType::Float),
                Field::new("age", DataType::Int).nullable(),
                Field::new("plan", plan()),
                Field::new("active", DataType::Bool),
                Field::new("note", DataType::String).nullable(),
            ]),
            schema(vec![
                Field::new("x", DataType::Float),
                Field::new("y", DataType::Float).nullable(),
            ]),
            schema(vec![Field::new("plan", plan()).nullable()]),
            schema(vec![
                Field::new("n", DataType::Int),
                Field::new("b", DataType::Bool).nullable(),
                Field::new("s", DataType::String),
            ]),
        ]
    })
}

/// Checks what every frame that exists must satisfy: one column per schema field, every column
/// (and null mask) `n_rows` long.
pub fn check_frame(frame: &Frame, schema: &Schema) {
    assert_eq!(frame.columns().len(), schema.len(), "one column per field");
    assert_eq!(frame.schema().len(), schema.len());
    for (i, c) in frame.columns().iter().enumerate() {
        assert_eq!(c.len(), frame.n_rows(), "column {i} has n_rows values");
        if let Some(mask) = frame.null_mask(i) {
            assert_eq!(mask.len(), frame.n_rows(), "null mask {i} has n_rows entries");
        }
    }
    for r in 0..frame.n_rows() {
        for i in 0..schema.len() {
            assert!(frame.value(r, i).is_some(), "cell ({r}, {i}) is readable");
        }
    }
}

/// The training data of the served model: the first schema's kinds of fields and a binary
/// target, small enough to fit in milliseconds at start-up.
pub const TRAINING_CSV: &str = "income,age,plan,active,note,churn
20.5,31,basic,true,a,1
80,45,pro,false,b,0
25,,basic,true,,1
70,52,pro,false,c,0
30,29,pro,true,d,1
90,61,basic,false,e,0
22,33,basic,true,f,1
75,40,pro,false,,0
28,,basic,true,g,1
85,58,pro,false,h,0
";

/// A served random forest and a router around it, with the runtime that drives it.
#[cfg(feature = "serve")]
pub struct Served {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
}

/// The served model (a random forest classifier over income, age, plan, active, note), built
/// once per process.
#[cfg(feature = "serve")]
pub fn served() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let table = CsvTable::read(TRAINING_CSV.as_bytes(), "train.csv").expect("training csv");
        let schema = table
            .infer_schema(&InferOptions::default())
            .expect("inferred schema");
        let data = table
            .to_frame(schema, &ReadOptions::default())
            .expect("training frame");
        let params = [("n_estimators".to_string(), "9".to_string())];
        let model = Estimator::from_name("random_forest_classifier", &params)
            .expect("estimator")
            .fit(&data, "churn")
            .expect("fitted model");
        let model = ml_serve::ServedModel::new("fuzz", "1", Arc::new(model)).expect("served model");
        let state =
            ml_serve::AppState::with_model(ml_serve::ServeConfig::default(), model).expect("app state");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        Served {
            runtime,
            router: ml_serve::app(state),
        }
    })
}

#[cfg(feature = "serve")]
impl Served {
    /// Sends `body` to `POST path` with `content_type` and checks what every answer must
    /// satisfy: never a 500 (a 500 is a bug by the endpoint's contract), and a 2xx answer is
    /// JSON. Returns the status and body.
    pub fn post(&self, path: &str, content_type: Option<&str>, body: &[u8]) -> (StatusCode, Vec<u8>) {
        let mut request = Request::post(path);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let request = request.body(Body::from(body.to_vec())).expect("a valid request");
        let router = self.router.clone();
        let (status, bytes) = self.runtime.block_on(async move {
            let response = router.oneshot(request).await.expect("the router is infallible");
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("a readable body");
            (status, bytes.to_vec())
        });
        assert_ne!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "500 for a request body: {}",
            String::from_utf8_lossy(&bytes)
        );
        if status.is_success() {
            serde_json::from_slice::<serde_json::Value>(&bytes).expect("a 2xx answer is JSON");
        }
        (status, bytes)
    }
}

/// Reads bytes off the front of the fuzz input (zeros once it is used up).
pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    /// The next byte.
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    /// The next eight bytes as a little-endian u64.
    pub fn u64(&mut self) -> u64 {
        let mut v = [0u8; 8];
        for b in &mut v {
            *b = self.byte();
        }
        u64::from_le_bytes(v)
    }

    /// A float: mostly the values splits and encoders care about (zero, signs, NaN, the
    /// infinities, the extremes, small integers), otherwise any bit pattern.
    pub fn float(&mut self) -> f64 {
        const SPECIAL: [f64; 14] = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            1e15,
            -1e-300,
        ];
        let b = self.byte();
        match b % 4 {
            0 => SPECIAL[usize::from(b / 4) % SPECIAL.len()],
            1 => f64::from(b / 4) - 32.0,
            2 => f64::from(self.byte()) / 8.0 - 16.0,
            _ => f64::from_bits(self.u64()),
        }
    }

    /// Whether there is input left.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One cell of `field`'s type drawn from `b` (nulls only where the field allows them).
pub fn cell(field: &Field, b: &mut Bytes<'_>) -> Value {
    let k = b.byte();
    if field.nullable && k % 9 == 0 {
        return Value::Null;
    }
    match &field.dtype {
        DataType::Float => {
            let v = b.float();
            if v.is_finite() || field.nullable {
                Value::Float(v)
            } else {
                Value::Float(f64::from(k))
            }
        }
        DataType::Int => Value::Int(match k % 3 {
            0 => i64::from(b.byte()) - 128,
            1 => [i64::MIN, i64::MAX, 0, -1][usize::from(b.byte() % 4)],
            _ => b.u64() as i64,
        }),
        DataType::Bool => Value::Bool(k & 1 == 1),
        DataType::Categorical { vocabulary, .. } => {
            let values = vocabulary.values();
            match values.len() {
                0 => Value::Str("unseen".into()),
                n => Value::Str(values[usize::from(b.byte()) % n].clone()),
            }
        }
        DataType::String => Value::Str(format!("s{}", b.byte())),
    }
}

/// A frame of 1 to 67 rows for `schema` drawn from `b` (1..=67 covers the kernels' row
/// blocks of 16 and their remainders); `None` when the schema refuses the cells (a loaded
/// model's schema may be stricter than the draw, e.g. an infinity in a float field).
pub fn rows(schema: &Schema, b: &mut Bytes<'_>) -> Option<Frame> {
    let n = 1 + usize::from(b.byte()) % 67;
    let rows: Vec<Vec<Value>> = (0..n)
        .map(|_| schema.fields().iter().map(|f| cell(f, b)).collect())
        .collect();
    Frame::from_rows(schema.clone(), &rows).ok()
}

/// Predicts `frame` with `model` and checks one prediction per row with probabilities in
/// [0, 1] (NaN aside: a model fed NaN may answer NaN) for classifiers.
pub fn predict_and_check(model: &dyn Model, frame: &Frame) {
    if let Ok(p) = model.predict(frame) {
        assert_eq!(p.len(), frame.n_rows(), "one prediction per row");
        if let ml_core::Predictions::Classification { probabilities, .. } = &p {
            assert_eq!(probabilities.nrows(), frame.n_rows());
        }
    }
}

/// Splits a fuzz input into a file and the bytes rows are drawn from: the last byte says how
/// many bytes before it belong to the rows (`file ++ rows ++ [rows.len()]`).
pub fn split_tail(data: &[u8]) -> (&[u8], &[u8]) {
    match data.split_last() {
        Some((&n, rest)) => rest.split_at(rest.len() - usize::from(n).min(rest.len())),
        None => (data, &[]),
    }
}
