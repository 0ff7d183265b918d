//! Statistics against scipy: inputs and expected values recorded by
//! `scripts/reference/scipy_drift.py` in `tests/reference/scipy_drift.json`.

use ml_drift::stats::{
    self, KsMethod, chi2_contingency, chisquare, jensen_shannon, kolmogn_sf, ks_2samp_sorted,
    wasserstein_sorted,
};
use serde_json::Value;

fn reference() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/scipy_drift.json"
    ))
    .expect("reference file");
    serde_json::from_str(&text).expect("reference JSON")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn sorted(v: &Value) -> Vec<f64> {
    let mut x = floats(v);
    x.sort_by(f64::total_cmp);
    x
}

fn assert_rel(got: f64, want: f64, rel: f64, what: &str) {
    let err = if want == 0.0 {
        got.abs()
    } else {
        ((got - want) / want).abs()
    };
    assert!(
        err <= rel || (got - want).abs() < 1e-300,
        "{what}: got {got:e}, scipy {want:e} (rel err {err:e})"
    );
}

#[test]
fn ks_2samp_matches_scipy_exact_and_asymp() {
    let r = reference();
    let cases = r["ks_2samp"].as_array().unwrap();
    assert!(cases.len() >= 15);
    for (i, c) in cases.iter().enumerate() {
        let (a, b) = (sorted(&c["a"]), sorted(&c["b"]));
        let method = match c["method"].as_str().unwrap() {
            "exact" => KsMethod::Exact,
            _ => KsMethod::Asymp,
        };
        let res = ks_2samp_sorted(&a, &b, method);
        let d = c["statistic"].as_f64().unwrap();
        assert!(
            (res.statistic - d).abs() <= 1e-12,
            "case {i}: D {} vs {d}",
            res.statistic
        );
        assert_rel(
            res.p_value,
            c["p_value"].as_f64().unwrap(),
            1e-6,
            &format!("case {i} ({}x{}, {:?}) p", a.len(), b.len(), method),
        );
    }
}

#[test]
fn kstwo_sf_matches_scipy_on_every_branch() {
    let r = reference();
    for c in r["kstwo_sf"].as_array().unwrap() {
        let (n, x) = (c["n"].as_u64().unwrap(), c["x"].as_f64().unwrap());
        assert_rel(
            kolmogn_sf(n, x),
            c["sf"].as_f64().unwrap(),
            1e-6,
            &format!("kstwo.sf({x}, {n})"),
        );
    }
}

#[test]
fn smirnov_matches_scipy() {
    let r = reference();
    for c in r["smirnov"].as_array().unwrap() {
        let (n, x) = (c["n"].as_u64().unwrap(), c["x"].as_f64().unwrap());
        assert_rel(
            stats::ks::smirnov_sf(n, x),
            c["sf"].as_f64().unwrap(),
            1e-6,
            &format!("smirnov({n}, {x})"),
        );
    }
}

#[test]
fn chisquare_matches_scipy() {
    let r = reference();
    for c in r["chisquare"].as_array().unwrap() {
        let (s, p) = chisquare(&floats(&c["observed"]), &floats(&c["expected"]));
        assert_rel(s, c["statistic"].as_f64().unwrap(), 1e-9, "chisquare statistic");
        assert_rel(p, c["p_value"].as_f64().unwrap(), 1e-6, "chisquare p");
    }
    for c in r["chi2_contingency"].as_array().unwrap() {
        let (s, p, dof) = chi2_contingency(&floats(&c["reference"]), &floats(&c["current"]));
        assert_eq!(dof as u64, c["dof"].as_u64().unwrap());
        assert_rel(
            s,
            c["statistic"].as_f64().unwrap(),
            1e-9,
            "chi2_contingency statistic",
        );
        assert_rel(p, c["p_value"].as_f64().unwrap(), 1e-6, "chi2_contingency p");
    }
}

#[test]
fn distances_match_scipy() {
    let r = reference();
    for c in r["wasserstein"].as_array().unwrap() {
        let d = wasserstein_sorted(&sorted(&c["u"]), &sorted(&c["v"]));
        let want = c["distance"].as_f64().unwrap();
        assert!((d - want).abs() <= 1e-9, "wasserstein {d} vs {want}");
    }
    for c in r["jensenshannon"].as_array().unwrap() {
        let d = jensen_shannon(&floats(&c["p"]), &floats(&c["q"]));
        let want = c["distance"].as_f64().unwrap();
        assert!((d - want).abs() <= 1e-9, "jensenshannon {d} vs {want}");
    }
}
