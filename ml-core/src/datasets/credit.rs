//! Synthetic credit-card default data modelled on the UCI "default of credit card clients" data
//! set (Yeh and Lien, 2009: 30 000 clients of a Taiwanese bank, April to September 2005).
//!
//! [`credit_default`] generates any number of rows with the UCI columns, in the UCI order
//! (without its `ID` column), all values integers:
//!
//! - `LIMIT_BAL`: credit limit (NT dollars, a multiple of 10 000);
//! - `SEX` (1 male, 2 female), `EDUCATION` (1 graduate school, 2 university, 3 high school,
//!   4 others, 0/5/6 unknown), `MARRIAGE` (1 married, 2 single, 3 others, 0 unknown), `AGE`;
//! - `PAY_0`, `PAY_2` .. `PAY_6`: repayment status in September, August, ..., April
//!   (-2 no consumption, -1 paid in full, 0 revolving credit, 1..=8 months of delay);
//! - `BILL_AMT1` .. `BILL_AMT6`: bill statement, September first; can be negative (credit);
//! - `PAY_AMT1` .. `PAY_AMT6`: amount paid, September first;
//! - `default`: 1 if the client defaulted on the next payment.
//!
//! [`CREDIT_NUMERIC_COLUMNS`] and [`CREDIT_CATEGORICAL_COLUMNS`] say how to treat the features.
//!
//! # Targeted statistics
//!
//! The generator is calibrated against the published summary statistics of the UCI data set
//! (the `describe()` table, value counts and correlations of its 30 000 rows, as reported with
//! the data set and in its many write-ups); no UCI rows are used or copied. Targets apply to
//! `drift = 0`; a `±` is the tolerance the unit tests check on 50 000 rows, an `≈` is
//! calibrated but not tested. `docs/credit-dataset.md` lists what the generator produces.
//!
//! | Column / statistic                 | UCI value                               | Our target                             |
//! |------------------------------------|-----------------------------------------|----------------------------------------|
//! | `LIMIT_BAL` mean / sd              | 167 484 / 129 748                       | 167 500 ± 5 000 / ≈ 130 000            |
//! | `LIMIT_BAL` quartiles              | 50 000 / 140 000 / 240 000              | same (median ± 10 000)                 |
//! | `LIMIT_BAL` range                  | 10 000 .. 1 000 000                     | same, multiples of 10 000              |
//! | `SEX` = 2                          | 60.4 %                                  | 60.4 ± 1 %                             |
//! | `EDUCATION` 1 / 2 / 3 / other      | 35.3 / 46.8 / 16.4 / 1.6 %              | same (1 and 2 ± 1.2 %)                 |
//! | `MARRIAGE` 1 / 2 / 3 / 0           | 45.5 / 53.2 / 1.1 / 0.2 %               | same (1 and 2 ± 1.5 %)                 |
//! | `AGE` mean / sd                    | 35.5 / 9.2                              | 35.5 ± 0.4 / ≈ 9.2                     |
//! | `AGE` quartiles, range             | 28 / 34 / 41, 21 .. 79                  | same (median ± 1)                      |
//! | `PAY_0` -2 / -1 / 0 / 1 / 2 / 3..8 | 9.2 / 19.0 / 49.1 / 12.3 / 8.9 / 1.5 %  | same (-1, 0, 1, 2 ± 1 to 1.2 %)        |
//! | `PAY_2` -2 / -1 / 0 / 1 / 2 / 3..8 | 12.6 / 20.2 / 52.4 / 0.1 / 13.1 / 1.6 % | same                                   |
//! | `PAY_6` -2 / -1 / 0 / 2 / 3..8     | 16.3 / 19.1 / 54.3 / 9.2 / 1.0 %        | same                                   |
//! | `BILL_AMT1` mean / median / sd     | 51 223 / 22 382 / 73 636                | 51 200 ± 4 000 / 22 400 ± 3 000 / ≈ 70 000 |
//! | `BILL_AMT1` quartiles              | 3 559 / 67 091                          | ≈ 5 000 / ≈ 67 000                     |
//! | `BILL_AMT1` below 0                | ≈ 2 %                                   | 2 ± 1 %                                |
//! | `BILL_AMT2` .. `BILL_AMT6` mean    | 49 179, 47 013, 43 263, 40 311, 38 872  | ≈ same (`BILL_AMT6` ± 4 000)           |
//! | `PAY_AMT1` mean / median / sd      | 5 664 / 2 100 / 16 563                  | 5 700 ± 1 000 / 2 100 ± 400 / ≈ 16 000 |
//! | `PAY_AMT1` quartiles               | 1 000 / 5 006                           | ≈ 700 / ≈ 5 000                        |
//! | `default` rate                     | 22.1 %                                  | 22.1 ± 1.2 %                           |
//! | corr(`BILL_AMT1`, `BILL_AMT2`)     | 0.95                                    | above 0.8                              |
//! | corr(`PAY_0`, `PAY_2`)             | 0.67                                    | 0.6 .. 0.85                            |
//! | corr(`LIMIT_BAL`, `default`)       | -0.15                                   | below -0.1                             |
//!
//! # Structure
//!
//! - `AGE` and `LIMIT_BAL` follow piecewise-linear quantile functions through the UCI quantiles.
//!   `LIMIT_BAL` is a Gaussian copula of education (graduate school highest), age, a latent
//!   per-client financial stress and noise.
//! - The married share rises with age; "others" are older still.
//! - Repayment statuses come from the stress factor plus an AR(1) month-to-month component cut
//!   at each month's UCI shares, so statuses are autocorrelated and shares match per month.
//! - Bills are the limit times a utilisation that grows with stress and a low limit, varies
//!   slowly from month to month and depends on the month's status (small balances when paid in
//!   full, mostly zero with no consumption, fees when late). A few bills are negative credit
//!   balances.
//! - Payments settle part of the previous statement according to the month's status, with a
//!   heavy tail of large repayments.
//!
//! # Target
//!
//! The log-odds of `default` are **non-linear** in the features: step effects of `PAY_0` and of
//! a delay of two months or more in `PAY_2`; a quadratic ramp in utilisation
//! (`BILL_AMT1 / LIMIT_BAL`) from 55 % to 90 %; a U-shape in `AGE` (young and old clients are
//! riskier); a flag for a September payment below 2 % of the September bill; a young and highly
//! utilised interaction; `ln(LIMIT_BAL)`; small demographic effects; and unobserved noise. The
//! intercept is calibrated to a 22.1 % default rate. With the scikit-learn reference pipeline
//! (`scripts/reference/sklearn_lr_auc.py`: standardised numeric columns, one-hot categorical
//! columns, logistic regression) the validation ROC AUC is about 0.77 for 50 000 rows, while a
//! depth-8 random forest reaches about 0.80: a linear model misses part of the signal.
//!
//! # Drift
//!
//! `drift` in `[0, 1]` moves the population and the target relation linearly; `drift = 0` is the
//! reference data above, bit for bit. At `drift = 1`:
//!
//! - `AGE` is 4 years higher (capped at 79) and `LIMIT_BAL` 20 % lower before rounding (the
//!   mean falls by about 16 %, as older clients get somewhat higher limits);
//! - the latent repayment stress rises by 0.45 sd in September (`PAY_0`) and 0.25 sd in August
//!   (`PAY_2`), so more clients are late (`PAY_0` of 1 or more: 23 % to 38 %);
//! - utilisation is 25 % higher (`BILL_AMT1` mean up about 15 % although limits fall) and
//!   payments are 30 % lower (`PAY_AMT1` mean down about 45 %, late clients paying less);
//! - in the target, the utilisation effect grows by half, the age U turns upside down
//!   (middle-aged clients become the riskier ones), the `PAY_0` effect shrinks to a fifth and
//!   the unobserved noise is 2.5 times as strong. The default rate rises to about 28 %; a
//!   logistic regression fitted at `drift = 0` drops from an AUC of about 0.77 to about 0.73 on
//!   drift-1 data, while one refitted on drifted data scores about 0.78.
//!
//! Each row has its own random stream derived from `(seed, row)`, and every row draws the same
//! random numbers whatever the drift: the same seed gives the same clients at every drift value
//! (`SEX` and `EDUCATION` do not change at all), and more rows only append to fewer.

use std::io::Write;

use crate::rng::{Rng, splitmix64};
use crate::{Error, Result};

/// The numeric feature columns, in file order.
pub const CREDIT_NUMERIC_COLUMNS: [&str; 14] = [
    "LIMIT_BAL",
    "AGE",
    "BILL_AMT1",
    "BILL_AMT2",
    "BILL_AMT3",
    "BILL_AMT4",
    "BILL_AMT5",
    "BILL_AMT6",
    "PAY_AMT1",
    "PAY_AMT2",
    "PAY_AMT3",
    "PAY_AMT4",
    "PAY_AMT5",
    "PAY_AMT6",
];

/// The categorical feature columns (integer codes as in the UCI data), in file order.
pub const CREDIT_CATEGORICAL_COLUMNS: [&str; 9] = [
    "SEX",
    "EDUCATION",
    "MARRIAGE",
    "PAY_0",
    "PAY_2",
    "PAY_3",
    "PAY_4",
    "PAY_5",
    "PAY_6",
];

/// The binary target column: 1 if the client defaulted on the next payment, else 0.
pub const CREDIT_TARGET_COLUMN: &str = "default";

/// All columns in file order: the UCI order without its `ID` column, target last.
pub const CREDIT_COLUMNS: [&str; 24] = [
    "LIMIT_BAL",
    "SEX",
    "EDUCATION",
    "MARRIAGE",
    "AGE",
    "PAY_0",
    "PAY_2",
    "PAY_3",
    "PAY_4",
    "PAY_5",
    "PAY_6",
    "BILL_AMT1",
    "BILL_AMT2",
    "BILL_AMT3",
    "BILL_AMT4",
    "BILL_AMT5",
    "BILL_AMT6",
    "PAY_AMT1",
    "PAY_AMT2",
    "PAY_AMT3",
    "PAY_AMT4",
    "PAY_AMT5",
    "PAY_AMT6",
    "default",
];

/// The largest `rows` accepted: the table is held in memory (192 bytes per row).
pub const CREDIT_MAX_ROWS: usize = 10_000_000;

// Column positions in `CREDIT_COLUMNS`.
const LIMIT_BAL: usize = 0;
const SEX: usize = 1;
const EDUCATION: usize = 2;
const MARRIAGE: usize = 3;
const AGE: usize = 4;
/// `PAY_0`; month `m` (0 = September, the latest) is at `PAY_FIRST + m`.
const PAY_FIRST: usize = 5;
/// `BILL_AMT1`; month `m` is at `BILL_FIRST + m`.
const BILL_FIRST: usize = 11;
/// `PAY_AMT1`; month `m` is at `PAY_AMT_FIRST + m`.
const PAY_AMT_FIRST: usize = 17;
const TARGET: usize = 23;

/// Number of monthly history columns of each kind (April to September 2005 in the UCI data).
const MONTHS: usize = 6;

/// Settings of [`credit_default`].
#[derive(Debug, Clone, PartialEq)]
pub struct CreditDefaultConfig {
    /// Number of rows to generate, 1 to [`CREDIT_MAX_ROWS`].
    pub rows: usize,
    /// Seed: the same seed, rows and drift always give byte-identical data.
    pub seed: u64,
    /// Distribution shift in `[0, 1]`: 0 is the reference population, 1 the fully drifted
    /// one (see the module docs for what changes).
    pub drift: f64,
}

impl Default for CreditDefaultConfig {
    /// 10 000 rows, seed 0, no drift.
    fn default() -> Self {
        CreditDefaultConfig {
            rows: 10_000,
            seed: 0,
            drift: 0.0,
        }
    }
}

/// A generated credit-default table, stored column by column.
///
/// Every value is an integer, as in the UCI data. Columns are in [`CREDIT_COLUMNS`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditDefaultData {
    columns: Vec<Vec<i64>>,
}

impl CreditDefaultData {
    /// Column names in file order (the same as [`CREDIT_COLUMNS`]), usable without a table.
    pub const COLUMN_NAMES: [&'static str; 24] = CREDIT_COLUMNS;

    /// Column names in file order (the same as [`CREDIT_COLUMNS`]).
    pub fn column_names(&self) -> &[&'static str] {
        &Self::COLUMN_NAMES
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.columns.first().map_or(0, Vec::len)
    }

    /// The values of column `name`, or `None` if there is no such column.
    pub fn column(&self, name: &str) -> Option<&[i64]> {
        let index = CREDIT_COLUMNS.iter().position(|c| *c == name)?;
        self.columns.get(index).map(Vec::as_slice)
    }

    /// The target column (`default`): 1 for a default, 0 otherwise.
    pub fn target(&self) -> &[i64] {
        &self.columns[TARGET]
    }

    /// Writes the table as CSV: a header line, then one line per row, `\n` line endings.
    ///
    /// No field needs quoting (names are plain identifiers, values are integers). The output
    /// is byte-identical for the same configuration. Output is buffered internally.
    pub fn write_csv<W: Write>(&self, writer: W) -> std::io::Result<()> {
        let mut w = std::io::BufWriter::new(writer);
        w.write_all(CREDIT_COLUMNS.join(",").as_bytes())?;
        w.write_all(b"\n")?;
        for row in 0..self.n_rows() {
            for (i, column) in self.columns.iter().enumerate() {
                if i > 0 {
                    w.write_all(b",")?;
                }
                write!(w, "{}", column[row])?;
            }
            w.write_all(b"\n")?;
        }
        w.flush()
    }
}

/// Generates a synthetic credit-default table modelled on the UCI "default of credit card
/// clients" data set; see the [module docs](self) for columns, targeted statistics and drift.
///
/// # Errors
///
/// [`Error::InvalidParameter`] if `rows` is 0 or above [`CREDIT_MAX_ROWS`], or `drift` is not
/// in `[0, 1]` (NaN included).
pub fn credit_default(config: &CreditDefaultConfig) -> Result<CreditDefaultData> {
    if config.rows == 0 || config.rows > CREDIT_MAX_ROWS {
        return Err(Error::invalid_parameter(
            "rows",
            format!(
                "must be between 1 and {CREDIT_MAX_ROWS}, got {} (the UCI data set has 30000 rows)",
                config.rows
            ),
        ));
    }
    // `contains` is false for NaN, so NaN is rejected too.
    if !(0.0..=1.0).contains(&config.drift) {
        return Err(Error::invalid_parameter(
            "drift",
            format!(
                "must be between 0 (no drift) and 1 (full drift), got {}",
                config.drift
            ),
        ));
    }
    let mut columns: Vec<Vec<i64>> = (0..CREDIT_COLUMNS.len())
        .map(|_| Vec::with_capacity(config.rows))
        .collect();
    // A per-seed key, distinct from the raw seed, so that the data stream of seed `s` is
    // unrelated to the split hash of the same `s` (both hash `seed + row * golden`).
    let key = splitmix64(config.seed ^ DATA_STREAM_DOMAIN);
    for row in 0..config.rows {
        // One independent generator per row: a row depends only on (seed, row, drift).
        // usize is at most 64 bits on every supported target, so the cast never truncates.
        let row_seed = splitmix64(key.wrapping_add((row as u64).wrapping_mul(ROW_STRIDE)));
        let draws = RowDraws::draw(&mut Rng::new(row_seed));
        for (column, value) in columns.iter_mut().zip(draws.row(config.drift)) {
            column.push(value);
        }
    }
    Ok(CreditDefaultData { columns })
}

/// Domain separator for the data stream (an arbitrary constant).
const DATA_STREAM_DOMAIN: u64 = 0x00C2_ED17_DA7A_5E7D;
/// Multiplier that spreads row indices over the hash input space (2^64 / phi).
const ROW_STRIDE: u64 = 0x9E37_79B9_7F4A_7C15;

// ---------------------------------------------------------------------------------------------
// Marginal tables, from the UCI data set's published summaries.
// ---------------------------------------------------------------------------------------------

/// Share of SEX = 2 (female).
const FEMALE_SHARE: f64 = 0.604;

/// Shares of EDUCATION codes 0..=6.
const EDUCATION_SHARES: [f64; 7] = [0.0005, 0.353, 0.468, 0.164, 0.0041, 0.0093, 0.0017];

/// Quantile function of AGE before flooring to whole years: (cumulative share, age) knots,
/// linearly interpolated. The knots are the UCI quantiles shifted up by about half a year
/// because the value is floored.
const AGE_QUANTILES: [(f64, f64); 11] = [
    (0.0, 21.0),
    (0.02, 23.0),
    (0.10, 25.1),
    (0.25, 28.7),
    (0.50, 34.7),
    (0.75, 41.7),
    (0.90, 48.3),
    (0.95, 52.3),
    (0.99, 59.3),
    (0.999, 68.0),
    (1.0, 80.0),
];

/// Quantile function of LIMIT_BAL before rounding to 10 000; the tail knots are set so that
/// the mean and standard deviation match too.
const LIMIT_QUANTILES: [(f64, f64); 11] = [
    (0.0, 10_000.0),
    (0.05, 20_000.0),
    (0.10, 30_000.0),
    (0.25, 50_000.0),
    (0.50, 140_000.0),
    (0.75, 240_000.0),
    (0.90, 350_000.0),
    (0.95, 420_000.0),
    (0.99, 500_000.0),
    (0.999, 700_000.0),
    (1.0, 1_000_000.0),
];

/// Repayment status codes in latent order (more stress gives a later code).
const PAY_CODES: [i64; 11] = [-2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8];
/// Index of code 0 (revolving credit) in [`PAY_CODES`].
const PAY_REVOLVING: usize = 2;

/// Share of each code in [`PAY_CODES`] per month, PAY_0 (September) first. Only PAY_0 uses
/// code 1 to any extent, as in the UCI data.
const PAY_SHARES: [[f64; 11]; MONTHS] = [
    [
        0.0920, 0.1895, 0.4912, 0.1229, 0.0889, 0.0107, 0.0025, 0.0009, 0.0004, 0.0003, 0.0006,
    ],
    [
        0.1261, 0.2017, 0.5243, 0.0009, 0.1309, 0.0109, 0.0033, 0.0008, 0.0004, 0.0007, 0.0001,
    ],
    [
        0.1362, 0.1979, 0.5255, 0.0001, 0.1273, 0.0080, 0.0025, 0.0007, 0.0008, 0.0009, 0.0001,
    ],
    [
        0.1449, 0.1896, 0.5485, 0.0001, 0.1053, 0.0060, 0.0023, 0.0012, 0.0002, 0.0019, 0.0001,
    ],
    [
        0.1515, 0.1846, 0.5649, 0.0000, 0.0875, 0.0059, 0.0028, 0.0006, 0.0001, 0.0019, 0.0001,
    ],
    [
        0.1632, 0.1913, 0.5429, 0.0000, 0.0922, 0.0061, 0.0016, 0.0004, 0.0006, 0.0015, 0.0001,
    ],
];

/// Utilisation scale of each month relative to September. Calibrated (not simply the ratio of
/// UCI means) so that the monthly bill means come out at the UCI values, 51 223 down to 38 872:
/// later months have more no-consumption (zero) bills, which the scale compensates.
const BILL_MONTH_SCALE: [f64; MONTHS] = [1.0, 1.01, 0.975, 0.897, 0.841, 0.83];

// ---------------------------------------------------------------------------------------------
// Dependence structure.
// ---------------------------------------------------------------------------------------------

/// Weight of the per-client stress factor in each month's repayment latent; the rest is an
/// AR(1) month-to-month component, so statuses are autocorrelated.
const PAY_STRESS_WEIGHT: f64 = 0.6;
/// Month-to-month autocorrelation of the idiosyncratic repayment component.
const PAY_AR: f64 = 0.75;
/// Month-to-month autocorrelation of the utilisation noise.
const UTIL_AR: f64 = 0.85;
/// Standard deviation of the log monthly utilisation noise: small, so that bills of
/// neighbouring months are strongly correlated.
const UTIL_MONTH_SD: f64 = 0.15;
/// Utilisation cap: bills can exceed the limit a little (interest, fees), not much.
const UTIL_CAP: f64 = 1.15;

// ---------------------------------------------------------------------------------------------
// Drift: how far each quantity moves at drift = 1 (scaled linearly by the drift value).
// ---------------------------------------------------------------------------------------------

/// Years added to AGE.
const DRIFT_AGE_YEARS: f64 = 4.0;
/// Relative decrease of LIMIT_BAL.
const DRIFT_LIMIT_CUT: f64 = 0.2;
/// Shift of the repayment latent (in standard deviations) for PAY_0 and PAY_2.
const DRIFT_PAY_SHIFT: [f64; 2] = [0.45, 0.25];
/// Relative increase of utilisation (bills relative to the limit).
const DRIFT_UTIL_RISE: f64 = 0.25;
/// Relative decrease of payments.
const DRIFT_PAYMENT_CUT: f64 = 0.3;
/// Relative increase of the utilisation effect on the target.
const DRIFT_UTIL_EFFECT_RISE: f64 = 0.5;
/// The age effect is multiplied by `1 - DRIFT_AGE_FLIP * drift`: at drift 1 the U is inverted.
const DRIFT_AGE_FLIP: f64 = 2.0;
/// Relative weakening of the PAY_0 effect on the target.
const DRIFT_PAY0_FADE: f64 = 0.8;
/// Relative growth of unobserved risk in the target.
const DRIFT_HIDDEN_RISE: f64 = 1.5;

// ---------------------------------------------------------------------------------------------
// Target model (log-odds of default).
// ---------------------------------------------------------------------------------------------

/// Intercept, calibrated so that about 22.1 % of rows default at drift 0.
const LOGIT_INTERCEPT: f64 = -3.91;
/// Step effect of PAY_0, indexed like [`PAY_CODES`]: a delay of two months or more is the
/// strongest single signal, as in the UCI data. Revolving credit gets the lowest direct effect
/// because its clients carry larger balances, which the utilisation terms already price.
const PAY0_EFFECT: [f64; 11] = [0.2, 0.35, -0.35, 0.5, 1.2, 1.4, 1.3, 1.3, 1.3, 1.3, 1.3];
/// Added when PAY_2 shows a delay of two months or more (persistent delinquency).
const PAY2_DELAY_EFFECT: f64 = 0.4;
/// Height of the utilisation ramp: zero up to 55 % utilisation, rising quadratically to this
/// value at 90 % and above.
const UTIL_EFFECT: f64 = 2.8;
/// Height of the U-shape in AGE: `AGE_EFFECT * min(((age - 38) / 13)^2, 2.2)`.
const AGE_EFFECT: f64 = 1.4;
/// Added when the September payment covered less than 2 % of a September bill above 1 000.
const LOW_PAYMENT_EFFECT: f64 = 1.4;
/// Interaction: young (under 30) and highly utilised (over 70 %).
const YOUNG_HIGH_UTIL_EFFECT: f64 = 0.8;
/// Per unit of `ln(LIMIT_BAL / 140 000)`.
const LIMIT_EFFECT: f64 = -0.25;
/// Weight of unobserved risk (standard normal), which bounds the achievable AUC.
const HIDDEN_EFFECT: f64 = 1.05;

/// All random inputs of one row, drawn up front in a fixed order.
///
/// Every draw happens whatever the values turn out to be, so the number of draws never depends
/// on the drift and a given (seed, row) always sees the same randomness. Changing the order or
/// number of draws changes every generated data set.
struct RowDraws {
    sex: f64,
    age: f64,
    marriage: f64,
    education: f64,
    limit_noise: f64,
    stress: f64,
    util_level: f64,
    pay_noise: [f64; MONTHS],
    util_noise: [f64; MONTHS],
    inactive_zero: [f64; MONTHS],
    negative_bill: [f64; MONTHS],
    negative_size: [f64; MONTHS],
    pay_zero: [f64; MONTHS],
    pay_fraction: [f64; MONTHS],
    pay_extra: [f64; MONTHS],
    pay_extra_size: [f64; MONTHS],
    hidden: f64,
    outcome: f64,
}

impl RowDraws {
    fn draw(rng: &mut Rng) -> Self {
        let sex = rng.uniform();
        let age = rng.uniform();
        let marriage = rng.uniform();
        let education = rng.uniform();
        let limit_noise = rng.normal();
        let stress = rng.normal();
        let util_level = rng.normal();
        let mut pay_noise = [0.0; MONTHS];
        let mut inactive_zero = [0.0; MONTHS];
        let mut util_noise = [0.0; MONTHS];
        let mut negative_bill = [0.0; MONTHS];
        let mut negative_size = [0.0; MONTHS];
        let mut pay_zero = [0.0; MONTHS];
        let mut pay_fraction = [0.0; MONTHS];
        let mut pay_extra = [0.0; MONTHS];
        let mut pay_extra_size = [0.0; MONTHS];
        for m in 0..MONTHS {
            pay_noise[m] = rng.normal();
            inactive_zero[m] = rng.uniform();
            util_noise[m] = rng.normal();
            negative_bill[m] = rng.uniform();
            negative_size[m] = rng.normal();
            pay_zero[m] = rng.uniform();
            pay_fraction[m] = rng.normal();
            pay_extra[m] = rng.uniform();
            pay_extra_size[m] = rng.normal();
        }
        let hidden = rng.normal();
        let outcome = rng.uniform();
        RowDraws {
            sex,
            age,
            marriage,
            education,
            limit_noise,
            stress,
            util_level,
            pay_noise,
            util_noise,
            inactive_zero,
            negative_bill,
            negative_size,
            pay_zero,
            pay_fraction,
            pay_extra,
            pay_extra_size,
            hidden,
            outcome,
        }
    }

    /// Turns the draws into one row of values in [`CREDIT_COLUMNS`] order.
    fn row(&self, drift: f64) -> [i64; 24] {
        // Age comes first because marriage and the credit limit depend on it.
        let sex: i64 = if self.sex < FEMALE_SHARE { 2 } else { 1 };
        let age = (interpolate(&AGE_QUANTILES, self.age) + DRIFT_AGE_YEARS * drift)
            .floor()
            .clamp(21.0, 79.0);
        let marriage = marriage_code(age, self.marriage);
        let education = pick(&EDUCATION_SHARES, self.education);
        let (limit, limit_latent) = self.limit(education, age, drift);
        let pay = self.repayment_statuses(drift);
        let bills = self.bills(limit, limit_latent, &pay, drift);
        let payments = self.payments(&bills, &pay, drift);
        let client = Client {
            sex,
            education,
            marriage,
            age,
            limit,
            pay,
            bills,
            payments,
        };
        let default = self.default(&client, drift);

        let mut out = [0i64; 24];
        // All floats below are whole numbers well inside the i64 range.
        out[LIMIT_BAL] = limit as i64;
        out[SEX] = sex;
        out[EDUCATION] = education as i64;
        out[MARRIAGE] = marriage;
        out[AGE] = age as i64;
        for m in 0..MONTHS {
            out[PAY_FIRST + m] = PAY_CODES[pay[m]];
            out[BILL_FIRST + m] = bills[m] as i64;
            out[PAY_AMT_FIRST + m] = payments[m] as i64;
        }
        out[TARGET] = i64::from(default);
        out
    }

    /// Credit limit (a multiple of 10 000) and its latent standard-normal score.
    ///
    /// A Gaussian copula: graduate-school clients, older clients and unstressed clients get
    /// higher limits; the score is mapped through the UCI quantiles.
    fn limit(&self, education: usize, age: f64, drift: f64) -> (f64, f64) {
        let education_score = match education {
            1 => 1.0,
            2 => -0.35,
            3 => -0.8,
            _ => 0.3,
        };
        // Standardised with the mean and sd of the score under EDUCATION_SHARES.
        let education_std = (education_score - 0.0625) / 0.716;
        // Limits grow with age until about 50.
        let age_std = (age.min(50.0) - 35.0) / 8.5;
        let latent = 0.30 * education_std + 0.15 * age_std - 0.40 * self.stress + 0.85 * self.limit_noise;
        let raw = interpolate(&LIMIT_QUANTILES, normal_cdf(latent)) * (1.0 - DRIFT_LIMIT_CUT * drift);
        ((raw / 10_000.0).round().max(1.0) * 10_000.0, latent)
    }

    /// Repayment status per month, as indices into [`PAY_CODES`] (September first).
    ///
    /// Per-client stress plus an AR(1) component running forward from April to September, cut
    /// at the UCI shares of each month.
    fn repayment_statuses(&self, drift: f64) -> [usize; MONTHS] {
        let mut pay = [PAY_REVOLVING; MONTHS];
        let mut ar = 0.0;
        for m in (0..MONTHS).rev() {
            ar = if m == MONTHS - 1 {
                self.pay_noise[m]
            } else {
                PAY_AR * ar + (1.0 - PAY_AR * PAY_AR).sqrt() * self.pay_noise[m]
            };
            let mut latent =
                PAY_STRESS_WEIGHT * self.stress + (1.0 - PAY_STRESS_WEIGHT * PAY_STRESS_WEIGHT).sqrt() * ar;
            if let Some(shift) = DRIFT_PAY_SHIFT.get(m) {
                latent += shift * drift;
            }
            pay[m] = pick(&PAY_SHARES[m], normal_cdf(latent));
        }
        pay
    }

    /// Bill statements per month (September first), whole NT dollars.
    fn bills(&self, limit: f64, limit_latent: f64, pay: &[usize; MONTHS], drift: f64) -> [f64; MONTHS] {
        // Client utilisation level: higher with stress and with a low limit.
        let level_latent = 0.5 * self.stress - 0.15 * limit_latent + 0.8 * self.util_level;
        let level = logistic(-0.3 + 2.4 * level_latent);
        let mut bills = [0.0; MONTHS];
        let mut ar = 0.0;
        for m in (0..MONTHS).rev() {
            ar = if m == MONTHS - 1 {
                self.util_noise[m]
            } else {
                UTIL_AR * ar + (1.0 - UTIL_AR * UTIL_AR).sqrt() * self.util_noise[m]
            };
            let code = PAY_CODES[pay[m]];
            let status_factor = match code {
                // Clients who pay in full mostly carry small balances.
                -1 => 0.25,
                // Late clients accrue interest and fees on top of the balance.
                2.. => 1.1,
                _ => 1.0,
            };
            let util = (level
                * BILL_MONTH_SCALE[m]
                * (UTIL_MONTH_SD * ar).exp()
                * status_factor
                * (1.0 + DRIFT_UTIL_RISE * drift))
                .min(UTIL_CAP);
            let mut bill = limit * util;
            if code == -2 {
                // No consumption: most such months have no bill at all, the rest a small one.
                bill = if self.inactive_zero[m] < 0.7 {
                    0.0
                } else {
                    bill * 0.15
                };
            } else if code <= 0 && self.negative_bill[m] < 0.03 {
                // Occasional credit balance after an overpayment or a refund.
                bill = -(6.4 + 1.3 * self.negative_size[m]).exp().min(0.2 * limit);
            }
            bills[m] = bill.round();
        }
        bills
    }

    /// Payments per month (September first), whole NT dollars.
    ///
    /// The payment in month `m` settles part of the previous statement (month `m + 1`; for
    /// April, a statement slightly below the April bill is assumed), depending on the status.
    fn payments(&self, bills: &[f64; MONTHS], pay: &[usize; MONTHS], drift: f64) -> [f64; MONTHS] {
        let mut payments = [0.0; MONTHS];
        for m in 0..MONTHS {
            let previous = bills.get(m + 1).copied().unwrap_or(bills[m] * 0.97).max(0.0);
            let noise = self.pay_fraction[m];
            let mut amount = match PAY_CODES[pay[m]] {
                // No consumption: often nothing, otherwise the old balance and a bit more.
                -2 => {
                    if self.pay_zero[m] < 0.4 {
                        0.0
                    } else {
                        previous * (0.1 * noise).exp().min(1.2) + (7.2 + noise).exp()
                    }
                }
                // Paid in full; after a revolving or late month that clears only part of the
                // larger balance left over.
                -1 => {
                    let after_revolving = pay.get(m + 1).is_some_and(|&p| PAY_CODES[p] >= 0);
                    let fraction = if after_revolving {
                        (0.25f64.ln() + 0.6 * noise).exp().min(1.0)
                    } else {
                        (0.15 * noise).exp().min(1.3)
                    };
                    previous * fraction
                }
                // Revolving: a minimum payment plus a small share of the balance.
                0 => (previous * 0.04 * (0.6 * noise).exp() + 1_000.0 * (0.4 * noise).exp()).min(previous),
                // One month late: often nothing, otherwise a little.
                1 => {
                    if self.pay_zero[m] < 0.3 {
                        0.0
                    } else {
                        previous * (0.04f64.ln() + 0.8 * noise).exp().min(1.0)
                    }
                }
                // Two or more months late: mostly nothing.
                _ => {
                    if self.pay_zero[m] < 0.5 {
                        0.0
                    } else {
                        previous * (0.035f64.ln() + 0.8 * noise).exp().min(1.0)
                    }
                }
            };
            if self.pay_extra[m] < 0.025 {
                // Rare large repayments give the heavy right tail of the UCI amounts.
                amount += (15_000f64.ln() + 1.2 * self.pay_extra_size[m]).exp();
            }
            payments[m] = (amount * (1.0 - DRIFT_PAYMENT_CUT * drift)).round();
        }
        payments
    }

    /// Draws the target from the (non-linear) log-odds described in the module docs.
    fn default(&self, client: &Client, drift: f64) -> bool {
        let Client {
            sex,
            education,
            marriage,
            age,
            limit,
            pay,
            bills,
            payments,
        } = client;
        let (age, limit) = (*age, *limit);
        let utilisation = bills[0] / limit;
        let mut logit = LOGIT_INTERCEPT + PAY0_EFFECT[pay[0]] * (1.0 - DRIFT_PAY0_FADE * drift);
        if PAY_CODES[pay[1]] >= 2 {
            logit += PAY2_DELAY_EFFECT;
        }
        let ramp = ((utilisation - 0.55) / 0.35).clamp(0.0, 1.0);
        logit += UTIL_EFFECT * ramp * ramp * (1.0 + DRIFT_UTIL_EFFECT_RISE * drift);
        let age_u = ((age - 38.0) / 13.0).powi(2).min(2.2);
        logit += AGE_EFFECT * age_u * (1.0 - DRIFT_AGE_FLIP * drift);
        if bills[0] > 1_000.0 && payments[0] < 0.02 * bills[0] {
            logit += LOW_PAYMENT_EFFECT;
        }
        if age < 30.0 && utilisation > 0.7 {
            logit += YOUNG_HIGH_UTIL_EFFECT;
        }
        logit += LIMIT_EFFECT * (limit / 140_000.0).ln();
        if *sex == 1 {
            logit += 0.1;
        }
        logit += match education {
            1 => -0.1,
            2 | 3 => 0.05,
            _ => -1.0,
        };
        logit += match marriage {
            1 => 0.1,
            3 => 0.2,
            _ => 0.0,
        };
        logit += HIDDEN_EFFECT * (1.0 + DRIFT_HIDDEN_RISE * drift) * self.hidden;
        self.outcome < logistic(logit)
    }
}

/// The observed values of one row, before conversion to integers.
struct Client {
    sex: i64,
    education: usize,
    marriage: i64,
    age: f64,
    limit: f64,
    pay: [usize; MONTHS],
    bills: [f64; MONTHS],
    payments: [f64; MONTHS],
}

/// MARRIAGE code for a client of this age: 1 married, 2 single, 3 others, 0 unknown.
///
/// The married share rises with age (UCI: under 10 % in the early twenties, about 70 % past
/// 40) and "others" (divorced, widowed) are older still.
fn marriage_code(age: f64, u: f64) -> i64 {
    let p_unknown = 0.002;
    let p_other = 0.009 * (0.06 * (age - 35.5)).exp();
    let p_married = 0.72 * logistic((age - 31.0) / 3.5);
    if u < p_unknown {
        0
    } else if u < p_unknown + p_other {
        3
    } else if u < p_unknown + p_other + p_married {
        1
    } else {
        2
    }
}

/// Inverse CDF of a categorical distribution: the index whose cell of the cumulative `shares`
/// contains `u * sum(shares)` (`u` in `[0, 1)`). Zero shares are never picked.
fn pick(shares: &[f64], u: f64) -> usize {
    let target = u * shares.iter().sum::<f64>();
    let mut cumulative = 0.0;
    let mut last = 0;
    for (i, share) in shares.iter().enumerate() {
        if *share > 0.0 {
            cumulative += share;
            last = i;
            if target < cumulative {
                return i;
            }
        }
    }
    // Rounding in the running sum can leave `target` just above the last cell.
    last
}

/// Piecewise-linear interpolation through `(x, y)` knots sorted by `x`, constant beyond the
/// first and last knot.
fn interpolate(knots: &[(f64, f64)], x: f64) -> f64 {
    let Some((&first, rest)) = knots.split_first() else {
        return 0.0;
    };
    if x <= first.0 {
        return first.1;
    }
    let mut previous = first;
    for &knot in rest {
        if x <= knot.0 {
            let t = (x - previous.0) / (knot.0 - previous.0);
            return previous.1 + t * (knot.1 - previous.1);
        }
        previous = knot;
    }
    previous.1
}

/// The logistic function `1 / (1 + e^-x)`.
fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Standard normal CDF, via the error-function approximation 7.1.26 of Abramowitz and Stegun
/// (absolute error below 1.5e-7), ample for mapping latents to quantiles and shares.
fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate(rows: usize, seed: u64, drift: f64) -> CreditDefaultData {
        credit_default(&CreditDefaultConfig { rows, seed, drift }).expect("valid config")
    }

    fn csv(data: &CreditDefaultData) -> String {
        let mut bytes = Vec::new();
        data.write_csv(&mut bytes).expect("writing to a Vec cannot fail");
        String::from_utf8(bytes).expect("the CSV is ASCII")
    }

    fn col<'a>(data: &'a CreditDefaultData, name: &str) -> &'a [i64] {
        data.column(name).expect("known column")
    }

    fn mean(values: &[i64]) -> f64 {
        values.iter().map(|v| *v as f64).sum::<f64>() / values.len() as f64
    }

    fn share(values: &[i64], predicate: impl Fn(i64) -> bool) -> f64 {
        values.iter().filter(|v| predicate(**v)).count() as f64 / values.len() as f64
    }

    fn median(values: &[i64]) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        sorted[sorted.len() / 2] as f64
    }

    fn correlation(a: &[i64], b: &[i64]) -> f64 {
        let (ma, mb) = (mean(a), mean(b));
        let mut sab = 0.0;
        let mut saa = 0.0;
        let mut sbb = 0.0;
        for (x, y) in a.iter().zip(b) {
            let (dx, dy) = (*x as f64 - ma, *y as f64 - mb);
            sab += dx * dy;
            saa += dx * dx;
            sbb += dy * dy;
        }
        sab / (saa * sbb).sqrt()
    }

    fn assert_near(what: &str, got: f64, want: f64, tolerance: f64) {
        assert!(
            (got - want).abs() <= tolerance,
            "{what}: got {got}, want {want} +- {tolerance}"
        );
    }

    #[test]
    fn same_config_gives_identical_data_and_bytes() {
        let a = generate(2_000, 11, 0.3);
        let b = generate(2_000, 11, 0.3);
        assert_eq!(a, b);
        assert_eq!(csv(&a), csv(&b));
    }

    #[test]
    fn different_seeds_give_different_data() {
        let a = generate(2_000, 11, 0.0);
        let b = generate(2_000, 12, 0.0);
        assert_ne!(col(&a, "LIMIT_BAL"), col(&b, "LIMIT_BAL"));
        assert_ne!(a.target(), b.target());
    }

    #[test]
    fn rows_are_a_prefix_of_longer_runs() {
        // Each row has its own stream, so asking for more rows only appends.
        let short = generate(100, 5, 0.4);
        let long = generate(300, 5, 0.4);
        for name in CREDIT_COLUMNS {
            assert_eq!(col(&short, name), &col(&long, name)[..100], "{name}");
        }
    }

    #[test]
    fn zero_drift_is_the_default_population() {
        let config = CreditDefaultConfig {
            rows: 3_000,
            seed: 9,
            ..CreditDefaultConfig::default()
        };
        assert_eq!(config.drift, 0.0);
        let default = credit_default(&config).expect("valid config");
        assert_eq!(default, generate(3_000, 9, 0.0));
        assert_eq!(default, generate(3_000, 9, -0.0));
    }

    #[test]
    fn default_config() {
        let config = CreditDefaultConfig::default();
        assert_eq!((config.rows, config.seed, config.drift), (10_000, 0, 0.0));
    }

    #[test]
    fn drift_keeps_the_drift_free_columns_of_each_client() {
        // Same seed: the same clients, only shifted. SEX and EDUCATION do not drift at all.
        let base = generate(2_000, 3, 0.0);
        let drifted = generate(2_000, 3, 1.0);
        assert_eq!(col(&base, "SEX"), col(&drifted, "SEX"));
        assert_eq!(col(&base, "EDUCATION"), col(&drifted, "EDUCATION"));
        let older = col(&base, "AGE")
            .iter()
            .zip(col(&drifted, "AGE"))
            .all(|(a, b)| *b == (*a + 4).min(79));
        assert!(older, "drift 1 adds exactly 4 years (capped at 79)");
    }

    #[test]
    fn drift_out_of_range_is_rejected() {
        for drift in [-0.01, 1.01, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = credit_default(&CreditDefaultConfig {
                rows: 10,
                seed: 0,
                drift,
            })
            .expect_err("must fail");
            assert!(
                matches!(&err, Error::InvalidParameter { name, .. } if name == "drift"),
                "{err:?}"
            );
        }
        assert!(
            credit_default(&CreditDefaultConfig {
                rows: 10,
                seed: 0,
                drift: 1.0
            })
            .is_ok()
        );
    }

    #[test]
    fn row_count_out_of_range_is_rejected() {
        for rows in [0, CREDIT_MAX_ROWS + 1] {
            let err = credit_default(&CreditDefaultConfig {
                rows,
                ..CreditDefaultConfig::default()
            })
            .expect_err("must fail");
            assert!(
                matches!(&err, Error::InvalidParameter { name, .. } if name == "rows"),
                "{err:?}"
            );
        }
        assert_eq!(generate(1, 0, 0.0).n_rows(), 1);
    }

    #[test]
    fn columns_are_in_uci_order_and_partitioned() {
        let data = generate(10, 0, 0.0);
        assert_eq!(data.column_names(), CREDIT_COLUMNS.as_slice());
        assert_eq!(CreditDefaultData::COLUMN_NAMES, CREDIT_COLUMNS);
        assert_eq!(data.n_rows(), 10);
        let mut grouped: Vec<&str> = CREDIT_NUMERIC_COLUMNS
            .iter()
            .chain(&CREDIT_CATEGORICAL_COLUMNS)
            .copied()
            .chain([CREDIT_TARGET_COLUMN])
            .collect();
        let mut all = CREDIT_COLUMNS.to_vec();
        grouped.sort_unstable();
        all.sort_unstable();
        assert_eq!(grouped, all);
        assert_eq!(CREDIT_COLUMNS.last(), Some(&CREDIT_TARGET_COLUMN));
        assert_eq!(data.column("default"), Some(data.target()));
        assert_eq!(data.column("ID"), None);
        for name in CREDIT_COLUMNS {
            assert_eq!(col(&data, name).len(), 10, "{name}");
        }
    }

    #[test]
    fn csv_has_header_integers_and_unix_line_endings() {
        let text = csv(&generate(50, 1, 0.5));
        let mut lines = text.split('\n');
        assert_eq!(
            lines.next(),
            Some(
                "LIMIT_BAL,SEX,EDUCATION,MARRIAGE,AGE,PAY_0,PAY_2,PAY_3,PAY_4,PAY_5,PAY_6,\
                 BILL_AMT1,BILL_AMT2,BILL_AMT3,BILL_AMT4,BILL_AMT5,BILL_AMT6,\
                 PAY_AMT1,PAY_AMT2,PAY_AMT3,PAY_AMT4,PAY_AMT5,PAY_AMT6,default"
            )
        );
        assert!(text.ends_with('\n') && !text.contains('\r'));
        let rows: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
        assert_eq!(rows.len(), 50);
        for row in rows {
            let fields: Vec<&str> = row.split(',').collect();
            assert_eq!(fields.len(), 24, "{row}");
            assert!(fields.iter().all(|f| f.parse::<i64>().is_ok()), "{row}");
        }
    }

    #[test]
    fn first_rows_are_pinned() {
        // Recorded output: a change here changes every data set (and the reference numbers
        // recorded from them). Update only on purpose.
        let expected = "\
LIMIT_BAL,SEX,EDUCATION,MARRIAGE,AGE,PAY_0,PAY_2,PAY_3,PAY_4,PAY_5,PAY_6,BILL_AMT1,BILL_AMT2,BILL_AMT3,BILL_AMT4,BILL_AMT5,BILL_AMT6,PAY_AMT1,PAY_AMT2,PAY_AMT3,PAY_AMT4,PAY_AMT5,PAY_AMT6,default
50000,2,2,2,24,0,0,3,2,0,0,39925,43511,45170,49691,43733,40302,1850,3170,0,2631,2717,2221,0
70000,2,1,1,37,2,2,2,2,0,0,27716,25936,25166,21772,23536,22407,436,0,1060,0,2909,3887,0
230000,2,1,2,23,-1,-1,-1,0,0,0,18704,20172,21141,86250,82135,69713,18441,22581,23895,3416,40954,2961,0
";
        assert_eq!(csv(&generate(3, 42, 0.0)), expected);
    }

    #[test]
    fn column_sums_are_pinned() {
        // Covers every row and the drift path; recorded like the rows above.
        let data = generate(2_000, 42, 0.7);
        let sums: Vec<i64> = CREDIT_COLUMNS
            .iter()
            .map(|name| col(&data, name).iter().sum())
            .collect();
        let expected: [i64; 24] = [
            300_800_000,
            3_234,
            3_730,
            2_992,
            76_858,
            591,
            29,
            -410,
            -499,
            -621,
            -585,
            114_558_140,
            107_298_426,
            94_059_534,
            86_889_934,
            82_611_809,
            80_463_790,
            7_827_328,
            8_730_463,
            9_952_220,
            9_274_866,
            9_595_566,
            8_479_372,
            530,
        ];
        assert_eq!(sums, expected);
    }

    #[test]
    fn values_are_in_the_uci_ranges() {
        for drift in [0.0, 1.0] {
            let data = generate(20_000, 2, drift);
            let limit = col(&data, "LIMIT_BAL");
            assert!(
                limit
                    .iter()
                    .all(|v| (10_000..=1_000_000).contains(v) && v % 10_000 == 0)
            );
            assert!(col(&data, "SEX").iter().all(|v| [1, 2].contains(v)));
            assert!(col(&data, "EDUCATION").iter().all(|v| (0..=6).contains(v)));
            assert!(col(&data, "MARRIAGE").iter().all(|v| (0..=3).contains(v)));
            assert!(col(&data, "AGE").iter().all(|v| (21..=79).contains(v)));
            for name in ["PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6"] {
                assert!(col(&data, name).iter().all(|v| (-2..=8).contains(v)), "{name}");
            }
            for m in 1..=6 {
                let payments = col(&data, &format!("PAY_AMT{m}"));
                assert!(payments.iter().all(|v| *v >= 0), "PAY_AMT{m}");
                let bills = col(&data, &format!("BILL_AMT{m}"));
                // Bills stay near or under the limit (UCI bills exceed it only modestly).
                let capped = bills.iter().zip(limit).all(|(b, l)| *b as f64 <= 1.2 * *l as f64);
                assert!(capped, "BILL_AMT{m}");
            }
            assert!(data.target().iter().all(|v| [0, 1].contains(v)));
        }
    }

    #[test]
    fn marginals_match_the_targets_in_the_module_docs() {
        let data = generate(50_000, 7, 0.0);
        assert_near(
            "LIMIT_BAL mean",
            mean(col(&data, "LIMIT_BAL")),
            167_484.0,
            5_000.0,
        );
        assert_near(
            "LIMIT_BAL median",
            median(col(&data, "LIMIT_BAL")),
            140_000.0,
            10_000.0,
        );
        assert_near("AGE mean", mean(col(&data, "AGE")), 35.5, 0.4);
        assert_near("AGE median", median(col(&data, "AGE")), 34.0, 1.0);
        assert_near("default rate", mean(data.target()), 0.221, 0.012);
        assert_near("SEX = 2", share(col(&data, "SEX"), |v| v == 2), 0.604, 0.01);
        let education = col(&data, "EDUCATION");
        assert_near("EDUCATION = 1", share(education, |v| v == 1), 0.353, 0.012);
        assert_near("EDUCATION = 2", share(education, |v| v == 2), 0.468, 0.012);
        let marriage = col(&data, "MARRIAGE");
        assert_near("MARRIAGE = 1", share(marriage, |v| v == 1), 0.455, 0.015);
        assert_near("MARRIAGE = 2", share(marriage, |v| v == 2), 0.532, 0.015);
        let pay0 = col(&data, "PAY_0");
        assert_near("PAY_0 = 0", share(pay0, |v| v == 0), 0.491, 0.012);
        assert_near("PAY_0 = -1", share(pay0, |v| v == -1), 0.190, 0.01);
        assert_near("PAY_0 = 1", share(pay0, |v| v == 1), 0.123, 0.01);
        assert_near("PAY_0 = 2", share(pay0, |v| v == 2), 0.089, 0.01);
        assert!(
            share(col(&data, "PAY_2"), |v| v == 1) < 0.005,
            "PAY_2 rarely uses code 1"
        );
        let bill1 = col(&data, "BILL_AMT1");
        assert_near("BILL_AMT1 mean", mean(bill1), 51_223.0, 4_000.0);
        assert_near("BILL_AMT1 median", median(bill1), 22_382.0, 3_000.0);
        assert_near("BILL_AMT1 < 0", share(bill1, |v| v < 0), 0.02, 0.01);
        assert_near("BILL_AMT6 mean", mean(col(&data, "BILL_AMT6")), 38_872.0, 4_000.0);
        let pay_amt1 = col(&data, "PAY_AMT1");
        assert_near("PAY_AMT1 mean", mean(pay_amt1), 5_664.0, 1_000.0);
        assert_near("PAY_AMT1 median", median(pay_amt1), 2_100.0, 400.0);
        // Dependence: bills of neighbouring months move together, statuses are sticky, and
        // the limit follows education.
        assert!(correlation(bill1, col(&data, "BILL_AMT2")) > 0.8);
        let pay_corr = correlation(pay0, col(&data, "PAY_2"));
        assert!((0.6..0.85).contains(&pay_corr), "corr(PAY_0, PAY_2) = {pay_corr}");
        assert!(correlation(col(&data, "LIMIT_BAL"), data.target()) < -0.1);
        let limit_by_education = |code: i64| {
            let values: Vec<i64> = col(&data, "LIMIT_BAL")
                .iter()
                .zip(education)
                .filter(|(_, e)| **e == code)
                .map(|(l, _)| *l)
                .collect();
            mean(&values)
        };
        assert!(limit_by_education(1) > limit_by_education(2) + 40_000.0);
        assert!(limit_by_education(2) > limit_by_education(3));
    }

    #[test]
    fn married_share_rises_with_age() {
        let data = generate(20_000, 4, 0.0);
        let married_share = |range: std::ops::RangeInclusive<i64>| {
            let in_range: Vec<i64> = col(&data, "MARRIAGE")
                .iter()
                .zip(col(&data, "AGE"))
                .filter(|(_, a)| range.contains(a))
                .map(|(m, _)| *m)
                .collect();
            share(&in_range, |m| m == 1)
        };
        assert!(married_share(21..=25) < 0.15);
        assert!(married_share(40..=79) > 0.6);
    }

    #[test]
    fn drift_shifts_the_documented_means() {
        let base = generate(50_000, 7, 0.0);
        let half = generate(50_000, 7, 0.5);
        let full = generate(50_000, 7, 1.0);
        let ratio = |name: &str, data: &CreditDefaultData| mean(col(data, name)) / mean(col(&base, name));
        // LIMIT_BAL down about 16 % (20 % before rounding, partly offset by older clients).
        assert_near("LIMIT_BAL ratio", ratio("LIMIT_BAL", &full), 0.84, 0.03);
        assert_near(
            "AGE shift",
            mean(col(&full, "AGE")) - mean(col(&base, "AGE")),
            4.0,
            0.1,
        );
        // Bills up about 15 %, payments down about 45 %.
        assert_near("BILL_AMT1 ratio", ratio("BILL_AMT1", &full), 1.15, 0.05);
        assert_near("PAY_AMT1 ratio", ratio("PAY_AMT1", &full), 0.56, 0.06);
        // More late September statuses and more defaults.
        let late = |data: &CreditDefaultData| share(col(data, "PAY_0"), |v| v >= 1);
        assert_near("PAY_0 late share", late(&full) - late(&base), 0.155, 0.02);
        assert_near(
            "default rate rise",
            mean(full.target()) - mean(base.target()),
            0.055,
            0.02,
        );
        // Half drift lands in between.
        for name in ["LIMIT_BAL", "AGE", "BILL_AMT1", "PAY_AMT1", "PAY_0"] {
            let (b, h, f) = (
                mean(col(&base, name)),
                mean(col(&half, name)),
                mean(col(&full, name)),
            );
            assert!((b.min(f)..=b.max(f)).contains(&h), "{name}: {b} {h} {f}");
        }
    }

    #[test]
    fn drift_turns_the_age_effect_around() {
        let rate = |data: &CreditDefaultData, range: std::ops::RangeInclusive<i64>| {
            let in_range: Vec<i64> = data
                .target()
                .iter()
                .zip(col(data, "AGE"))
                .filter(|(_, a)| range.contains(a))
                .map(|(t, _)| *t)
                .collect();
            mean(&in_range)
        };
        let base = generate(50_000, 8, 0.0);
        let full = generate(50_000, 8, 1.0);
        // Drift 0: the oldest clients default more than the middle-aged; drift 1: less.
        assert!(rate(&base, 55..=79) > rate(&base, 33..=43) + 0.1);
        assert!(rate(&full, 55..=79) < rate(&full, 33..=43) - 0.05);
    }

    #[test]
    fn normal_cdf_is_accurate() {
        assert_near("cdf(0)", normal_cdf(0.0), 0.5, 1e-9);
        assert_near("cdf(1.96)", normal_cdf(1.959_963_985), 0.975, 2e-7);
        assert_near("cdf(-1)", normal_cdf(-1.0), 0.158_655_254, 2e-7);
        assert_near("cdf(-3)", normal_cdf(-3.0), 0.001_349_898, 2e-7);
        assert_eq!(normal_cdf(f64::INFINITY), 1.0);
        assert_eq!(normal_cdf(f64::NEG_INFINITY), 0.0);
    }

    #[test]
    fn interpolate_and_pick_edges() {
        assert_eq!(interpolate(&LIMIT_QUANTILES, -1.0), 10_000.0);
        assert_eq!(interpolate(&LIMIT_QUANTILES, 0.5), 140_000.0);
        assert_eq!(interpolate(&LIMIT_QUANTILES, 0.375), 95_000.0);
        assert_eq!(interpolate(&LIMIT_QUANTILES, 2.0), 1_000_000.0);
        assert_eq!(pick(&[0.5, 0.0, 0.5], 0.0), 0);
        assert_eq!(pick(&[0.5, 0.0, 0.5], 0.5), 2);
        assert_eq!(pick(&[0.5, 0.0, 0.5], 0.999_999_999), 2);
    }
}
