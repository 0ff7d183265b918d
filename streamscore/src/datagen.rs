//! The synthetic credit-default data set as files: CSV plus its schema.

use ml_core::datasets::{CREDIT_CATEGORICAL_COLUMNS, CREDIT_TARGET_COLUMN, CreditDefaultData};
use ml_core::{DataType, Field, Result, Schema};

/// The schema of the generated data: the 9 categorical code columns as categorical (with the
/// codes of the UCI data set as vocabulary), the other columns as int, the target as int.
///
/// It is written next to the CSV (`x.csv` → `x.schema.json`) so that `streamscore train`
/// one-hot encodes the code columns instead of reading them as numbers.
pub fn credit_schema() -> Result<Schema> {
    let vocabulary = |name: &str| -> Vec<String> {
        let range = match name {
            "SEX" => 1..=2,
            "EDUCATION" => 0..=6,
            "MARRIAGE" => 0..=3,
            _ => -2..=8, // PAY_0, PAY_2..PAY_6: repayment status codes
        };
        range.map(|c: i64| c.to_string()).collect()
    };
    let fields = CreditDefaultData::COLUMN_NAMES
        .iter()
        .map(|&name| {
            let dtype = if CREDIT_CATEGORICAL_COLUMNS.contains(&name) {
                DataType::categorical(vocabulary(name))?
            } else {
                DataType::Int
            };
            Ok(Field::new(name, dtype))
        })
        .collect::<Result<Vec<_>>>()?;
    debug_assert!(fields.iter().any(|f| f.name == CREDIT_TARGET_COLUMN));
    Schema::new(fields)
}

/// Writes the data as JSON lines, one object per row with every column (the events that
/// `streamscore stream` reads).
pub fn write_jsonl(data: &CreditDefaultData, writer: impl std::io::Write) -> std::io::Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(writer);
    let columns: Vec<(&str, &[i64])> = data
        .column_names()
        .iter()
        .filter_map(|&n| data.column(n).map(|c| (n, c)))
        .collect();
    let mut line = String::with_capacity(512);
    for row in 0..data.n_rows() {
        line.clear();
        line.push('{');
        for (i, (name, values)) in columns.iter().enumerate() {
            if i > 0 {
                line.push_str(", ");
            }
            // Column names are fixed identifiers and values integers: no escaping needed.
            line.push_str(&format!("\"{name}\": {}", values[row]));
        }
        line.push_str("}\n");
        w.write_all(line.as_bytes())?;
    }
    w.flush()
}

/// A scoring stream with delayed labels, for the loop: what [`loop_stream`] generates.
#[derive(Clone, Debug, PartialEq)]
pub struct LoopStreamConfig {
    /// Events in all.
    pub events: usize,
    /// Events from this index on are drawn from the drifted population.
    pub drift_from: usize,
    /// How far the drifted population moved (0..=1).
    pub drift: f64,
    /// Seed.
    pub seed: u64,
    /// Events per second of event time.
    pub rate_per_s: f64,
    /// Shortest and longest label delay, ms (uniform).
    pub label_delay_ms: (i64, i64),
    /// Event time of the first event, ms since the epoch.
    pub start_ms: i64,
}

impl Default for LoopStreamConfig {
    /// 20 000 events, drifted (1.0) from the middle, 2 000 events/s, labels 1–5 s late.
    fn default() -> Self {
        LoopStreamConfig {
            events: 20_000,
            drift_from: 10_000,
            drift: 1.0,
            seed: 11,
            rate_per_s: 2_000.0,
            label_delay_ms: (1_000, 5_000),
            start_ms: 1_800_000_000_000,
        }
    }
}

/// Generated events (features only, correlation ids `ev-N`, time stamps at `rate_per_s`) and
/// their labels (`default`), each arriving a uniform random delay later; labels sorted by
/// arrival time.
pub fn loop_stream(
    config: &LoopStreamConfig,
) -> Result<(Vec<crate::run::ScoringEvent>, Vec<crate::run::Label>)> {
    use ml_core::datasets::{CreditDefaultConfig, credit_default};
    let normal_rows = config.drift_from.min(config.events);
    let drifted_rows = config.events - normal_rows;
    let mut parts = Vec::new();
    if normal_rows > 0 {
        parts.push(credit_default(&CreditDefaultConfig {
            rows: normal_rows,
            seed: config.seed,
            drift: 0.0,
        })?);
    }
    if drifted_rows > 0 {
        parts.push(credit_default(&CreditDefaultConfig {
            rows: drifted_rows,
            seed: config.seed.wrapping_add(1),
            drift: config.drift,
        })?);
    }
    let mut rng = ml_core::rng::Rng::new(config.seed ^ 0x5eed);
    let mut events = Vec::with_capacity(config.events);
    let mut labels = Vec::with_capacity(config.events);
    let step_ms = 1e3 / config.rate_per_s.max(1e-9);
    for data in &parts {
        let columns: Vec<(&str, &[i64])> = data
            .column_names()
            .iter()
            .filter(|&&n| n != CREDIT_TARGET_COLUMN)
            .filter_map(|&n| data.column(n).map(|c| (n, c)))
            .collect();
        for row in 0..data.n_rows() {
            let i = events.len();
            let time_ms = config.start_ms + (i as f64 * step_ms) as i64;
            let features = columns
                .iter()
                .map(|(n, c)| (n.to_string(), serde_json::Value::from(c[row])))
                .collect();
            let id = format!("ev-{i}");
            let (lo, hi) = config.label_delay_ms;
            let delay = lo + rng.below((hi - lo).max(0) as u64 + 1) as i64;
            labels.push(crate::run::Label {
                correlation_id: id.clone(),
                label: data.target()[row] as f64,
                time_ms: time_ms + delay,
            });
            events.push(crate::run::ScoringEvent {
                correlation_id: id,
                time_ms,
                features,
            });
        }
    }
    labels.sort_by_key(|l| l.time_ms);
    Ok((events, labels))
}
