//! Drift reports: per-feature and dataset results, as JSON and as one self-contained HTML file.
//!
//! Field names follow the reference pipeline that sends them to Azure Monitor: per feature
//! `feature_name, feature_type, stattest_name, drift_score, p_value, threshold, drift_detected`;
//! for the dataset `n_features, n_drifted_features, share_drifted_features, dataset_drift`.

use serde::{Deserialize, Serialize};

use crate::detect::ScoreKind;
use crate::error::{Error, Result};
use crate::stats::Correction;

/// Reference and current bucket proportions of one feature (what the HTML plots).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Bucket labels (bin ranges or categories).
    pub labels: Vec<String>,
    /// Reference proportions.
    pub reference: Vec<f64>,
    /// Current proportions.
    pub current: Vec<f64>,
}

/// The drift result of one feature (or model output).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureDrift {
    /// Column name.
    pub feature_name: String,
    /// `num` or `cat`.
    pub feature_type: String,
    /// The test used.
    pub stattest_name: String,
    /// The p-value for p-value tests, the distance for distance tests.
    pub drift_score: f64,
    /// The p-value (p-value tests only).
    pub p_value: Option<f64>,
    /// The p-value after multiple-testing correction, when a correction is configured.
    pub adjusted_p_value: Option<f64>,
    /// The threshold compared with.
    pub threshold: f64,
    /// Whether this feature drifted.
    pub drift_detected: bool,
    /// How `drift_score` compares with `threshold`.
    pub score_kind: ScoreKind,
    /// Whether this is a model output (prediction drift).
    pub is_output: bool,
    /// Proportions per bucket.
    pub histogram: Histogram,
}

impl FeatureDrift {
    /// How far past its threshold the feature is (> 1 drifted): distance / threshold, or
    /// threshold / p-value. Used to sort the summary; finite for every input.
    pub fn severity(&self) -> f64 {
        let p = self.adjusted_p_value.or(self.p_value).unwrap_or(self.drift_score);
        let s = match self.score_kind {
            ScoreKind::Distance => self.drift_score / self.threshold.max(1e-300),
            ScoreKind::PValue => self.threshold / p.max(1e-300),
        };
        if s.is_finite() { s } else { f64::MAX }
    }
}

/// Dataset-level drift (the reference pipeline's dataset metrics).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetDrift {
    /// Features tested.
    pub n_features: usize,
    /// Features that drifted.
    pub n_drifted_features: usize,
    /// `n_drifted_features / n_features`.
    pub share_drifted_features: f64,
    /// Whether the share reached the configured threshold.
    pub dataset_drift: bool,
}

/// A whole drift report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// Dataset metrics (flattened into the top level of the JSON).
    #[serde(flatten)]
    pub dataset: DatasetDrift,
    /// Share of drifted features that makes dataset drift.
    pub drift_share_threshold: f64,
    /// Multiple-testing correction applied.
    pub correction: Correction,
    /// `exact` or `profile`.
    pub reference_mode: String,
    /// Rows in the reference.
    pub n_reference_rows: u64,
    /// Rows in the current data.
    pub n_current_rows: u64,
    /// Per input feature, in reference order.
    pub features: Vec<FeatureDrift>,
    /// Per model output (prediction drift); empty without predictions.
    pub prediction: Vec<FeatureDrift>,
}

impl DriftReport {
    /// Pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| Error::Parse {
            what: "drift report".into(),
            reason: e.to_string(),
        })
    }

    /// Features and outputs, most drifted first.
    pub fn sorted_by_severity(&self) -> Vec<&FeatureDrift> {
        let mut all: Vec<&FeatureDrift> = self.features.iter().chain(&self.prediction).collect();
        all.sort_by(|a, b| {
            b.severity()
                .total_cmp(&a.severity())
                .then(a.feature_name.cmp(&b.feature_name))
        });
        all
    }

    /// One self-contained HTML page: no script, no external asset, no URL; an inline SVG
    /// histogram per feature; the summary table sorted by drift (most drifted first). Colours are
    /// a blue/orange pair that stays distinct in greyscale print, with hatching for "current".
    pub fn to_html(&self) -> String {
        let mut h = String::with_capacity(64 * 1024);
        h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Drift report</title>\n<style>\n");
        h.push_str(CSS);
        h.push_str("</style></head><body><div class=\"ss-drift\">\n<h1>Drift report</h1>\n");
        let d = &self.dataset;
        h.push_str(&format!(
            "<p class=\"verdict {}\"><strong>{}</strong>: {} of {} features drifted ({:.1}%; dataset drift at ≥ {:.0}%).</p>\n",
            if d.dataset_drift { "bad" } else { "ok" },
            if d.dataset_drift { "Dataset drift detected" } else { "No dataset drift" },
            d.n_drifted_features,
            d.n_features,
            d.share_drifted_features * 100.0,
            self.drift_share_threshold * 100.0
        ));
        h.push_str(&format!(
            "<p class=\"meta\">Reference: {} rows ({} mode). Current: {} rows. Multiple-testing correction: {}.</p>\n",
            self.n_reference_rows,
            esc(&self.reference_mode),
            self.n_current_rows,
            match self.correction {
                Correction::None => "none",
                Correction::Bonferroni => "Bonferroni",
                Correction::BenjaminiHochberg => "Benjamini–Hochberg",
            }
        ));
        h.push_str("<table><thead><tr><th>Feature</th><th>Type</th><th>Test</th><th>Drift score</th><th>p-value</th><th>Threshold</th><th>Drift</th></tr></thead><tbody>\n");
        for f in self.sorted_by_severity() {
            h.push_str(&format!(
                "<tr class=\"{}\"><td><a href=\"#f-{}\">{}</a>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                if f.drift_detected { "drift" } else { "" },
                anchor(&f.feature_name),
                esc(&f.feature_name),
                if f.is_output { " <small>(output)</small>" } else { "" },
                esc(&f.feature_type),
                esc(&f.stattest_name),
                num(f.drift_score),
                f.adjusted_p_value.or(f.p_value).map_or("–".into(), num),
                num(f.threshold),
                if f.drift_detected { "<b>yes</b>" } else { "no" }
            ));
        }
        h.push_str("</tbody></table>\n<div class=\"legend\">");
        h.push_str(&legend_svg());
        h.push_str("</div>\n");
        for f in self.sorted_by_severity() {
            h.push_str(&format!(
                "<section id=\"f-{}\"><h2>{} <small>{} · {} = {}{}</small></h2>\n",
                anchor(&f.feature_name),
                esc(&f.feature_name),
                esc(&f.feature_type),
                esc(&f.stattest_name),
                num(f.drift_score),
                if f.drift_detected { " · <b>drift</b>" } else { "" }
            ));
            h.push_str(&histogram_svg(&f.histogram));
            h.push_str("</section>\n");
        }
        h.push_str("</div></body></html>\n");
        h
    }
}

const CSS: &str = ".ss-drift{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#222;max-width:980px;margin:1.5em auto;padding:0 1em}
.ss-drift h1{font-size:1.6em;margin:.2em 0}.ss-drift h2{font-size:1.1em;margin:1.2em 0 .3em}.ss-drift h2 small{font-weight:normal;color:#555}
.ss-drift .verdict{padding:.5em .8em;border-left:6px solid #1f5fa8;background:#eef3fa}.ss-drift .verdict.bad{border-color:#c0392b;background:#fbeeec}
.ss-drift .meta{color:#555;font-size:.9em}
.ss-drift table{border-collapse:collapse;width:100%;font-size:.9em}.ss-drift th,.ss-drift td{border-bottom:1px solid #ccc;padding:.3em .5em;text-align:left}
.ss-drift td:nth-child(n+4){font-variant-numeric:tabular-nums}.ss-drift tr.drift td{background:#fdf1e6}
.ss-drift section{break-inside:avoid}.ss-drift svg{max-width:100%;height:auto}
@media print{.ss-drift a{color:inherit;text-decoration:none}}
";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn anchor(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn num(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.abs() < 1e-3 || x.abs() >= 1e5 {
        format!("{x:.3e}")
    } else {
        format!("{x:.4}")
    }
}

const REF_COLOUR: &str = "#1f5fa8";
const CUR_COLOUR: &str = "#e08214";

fn defs() -> String {
    // Diagonal hatching on "current" so the two series differ in black-and-white print too.
    format!(
        "<defs><pattern id=\"hatch\" width=\"5\" height=\"5\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect width=\"5\" height=\"5\" fill=\"{CUR_COLOUR}\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"5\" stroke=\"#7a4200\" stroke-width=\"2\"/></pattern></defs>"
    )
}

fn legend_svg() -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"260\" height=\"22\" role=\"img\" aria-label=\"legend\">{}<rect x=\"0\" y=\"5\" width=\"14\" height=\"12\" fill=\"{REF_COLOUR}\"/><text x=\"20\" y=\"16\" font-size=\"12\">reference</text><rect x=\"110\" y=\"5\" width=\"14\" height=\"12\" fill=\"url(#hatch)\"/><text x=\"130\" y=\"16\" font-size=\"12\">current</text></svg>",
        defs()
    )
}

/// The smallest of 1, 2, 2.5, 5 × 10^k that is at least `x` (`x > 0`).
fn nice_step(x: f64) -> f64 {
    let p = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&s| s >= x * (1.0 - 1e-12))
        .unwrap_or(10.0 * p)
}

fn histogram_svg(hist: &Histogram) -> String {
    let n = hist.labels.len().max(1);
    let (w, h, left, bottom, top) = (900.0, 220.0, 50.0, 60.0, 10.0);
    let plot_w = w - left - 10.0;
    let plot_h = h - bottom - top;
    let highest = hist
        .reference
        .iter()
        .chain(&hist.current)
        .copied()
        .filter(|x| x.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-12);
    // Round gridlines: the axis runs to four steps of 1, 2, 2.5 or 5 × 10^k percent.
    let step = nice_step(highest * 100.0 / 4.0) / 100.0;
    let max = step * 4.0;
    let tick_decimals = if step * 100.0 >= 1.0 && (step * 100.0).fract() == 0.0 {
        0
    } else {
        1
    };
    let group = plot_w / n as f64;
    let bar = (group * 0.4).max(1.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"reference vs current histogram\">{}",
        defs()
    );
    s.push_str(&format!(
        "<line x1=\"{left}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"#333\"/><line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{y}\" stroke=\"#333\"/>",
        y = top + plot_h,
        x2 = left + plot_w
    ));
    for t in 0..=4 {
        let v = max * t as f64 / 4.0;
        let y = top + plot_h - plot_h * t as f64 / 4.0;
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{:.tick_decimals$}%</text><line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>",
            left - 4.0,
            y + 3.0,
            v * 100.0,
            left + plot_w
        ));
    }
    for i in 0..hist.labels.len() {
        let x0 = left + group * i as f64 + group * 0.1;
        for (k, (vals, fill)) in [(&hist.reference, REF_COLOUR), (&hist.current, "url(#hatch)")]
            .into_iter()
            .enumerate()
        {
            let v = vals.get(i).copied().filter(|x| x.is_finite()).unwrap_or(0.0);
            let bh = plot_h * v / max;
            s.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{bh:.1}\" fill=\"{fill}\" stroke=\"#222\" stroke-width=\"0.5\"><title>{}: {:.2}%</title></rect>",
                x0 + bar * k as f64,
                top + plot_h - bh,
                if k == 0 { "reference" } else { "current" },
                v * 100.0
            ));
        }
        let label: String = hist.labels[i].chars().take(18).collect();
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\" transform=\"rotate(-35 {:.1} {:.1})\">{}</text>",
            x0 + bar,
            top + plot_h + 14.0,
            x0 + bar,
            top + plot_h + 14.0,
            esc(&label)
        ));
    }
    s.push_str("</svg>\n");
    s
}
