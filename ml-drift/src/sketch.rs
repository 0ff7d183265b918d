//! A mergeable quantile sketch with a relative-error guarantee (DDSketch, Masson et al., VLDB 2019).
//!
//! Values are counted in logarithmic buckets: bucket `i` holds the positive values in
//! `(γ^(i-1), γ^i]` with `γ = (1 + α) / (1 - α)`; negative values mirror this in their own store
//! and values with `|x| ≤` [`MIN_INDEXABLE`] count as zero. Any quantile is answered with a value
//! within relative error `α` of the true one. Buckets are plain counts, so merging two sketches
//! (adding counts) gives **exactly** the sketch of the concatenated data, in any order — the
//! property reference profiles need to be mergeable and deterministic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Values closer to zero than this are counted in the zero bucket.
pub const MIN_INDEXABLE: f64 = 1e-9;

/// A DDSketch over `f64` values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DdSketch {
    /// The relative accuracy `α` (0 < α < 1).
    relative_accuracy: f64,
    /// Bucket index → count, positive values.
    #[serde(with = "pairs")]
    positive: BTreeMap<i32, u64>,
    /// Bucket index → count, for the absolute values of negative values.
    #[serde(with = "pairs")]
    negative: BTreeMap<i32, u64>,
    /// Count of values with `|x| ≤ MIN_INDEXABLE`.
    zero: u64,
    /// Total count.
    count: u64,
}

impl DdSketch {
    /// An empty sketch with relative accuracy `alpha` (clamped to `[1e-6, 0.5]`).
    pub fn new(alpha: f64) -> Self {
        let alpha = if alpha.is_finite() {
            alpha.clamp(1e-6, 0.5)
        } else {
            0.01
        };
        DdSketch {
            relative_accuracy: alpha,
            positive: BTreeMap::new(),
            negative: BTreeMap::new(),
            zero: 0,
            count: 0,
        }
    }

    /// The relative accuracy `α`.
    pub fn relative_accuracy(&self) -> f64 {
        self.relative_accuracy
    }

    fn gamma(&self) -> f64 {
        (1.0 + self.relative_accuracy) / (1.0 - self.relative_accuracy)
    }

    fn index(&self, x: f64) -> i32 {
        (x.ln() / self.gamma().ln()).ceil() as i32
    }

    /// The value that stands for bucket `i`: within relative error `α` of every value in it.
    fn representative(&self, i: i32) -> f64 {
        let g = self.gamma();
        2.0 * g.powi(i) / (g + 1.0)
    }

    /// Adds one finite value (non-finite values are ignored: frames never hold them).
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.count += 1;
        if x > MIN_INDEXABLE {
            *self.positive.entry(self.index(x)).or_insert(0) += 1;
        } else if x < -MIN_INDEXABLE {
            *self.negative.entry(self.index(-x)).or_insert(0) += 1;
        } else {
            self.zero += 1;
        }
    }

    /// Number of values added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Adds the counts of `other`; both must have the same relative accuracy.
    pub fn merge(&mut self, other: &DdSketch) -> bool {
        if self.relative_accuracy.to_bits() != other.relative_accuracy.to_bits() {
            return false;
        }
        for (k, v) in &other.positive {
            *self.positive.entry(*k).or_insert(0) += v;
        }
        for (k, v) in &other.negative {
            *self.negative.entry(*k).or_insert(0) += v;
        }
        self.zero += other.zero;
        self.count += other.count;
        true
    }

    /// `(representative value, count)` for every bucket, in increasing value order.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        let mut out = Vec::with_capacity(self.negative.len() + self.positive.len() + 1);
        for (&i, &c) in self.negative.iter().rev() {
            out.push((-self.representative(i), c));
        }
        if self.zero > 0 {
            out.push((0.0, self.zero));
        }
        for (&i, &c) in &self.positive {
            out.push((self.representative(i), c));
        }
        out
    }

    /// The `q`-quantile (`0 ≤ q ≤ 1`, lower rank `⌊q·(n−1)⌋`), or `None` for an empty sketch.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (self.count - 1) as f64).floor() as u64;
        let mut seen = 0u64;
        let buckets = self.buckets();
        for &(v, c) in &buckets {
            seen += c;
            if seen > rank {
                return Some(v);
            }
        }
        buckets.last().map(|b| b.0)
    }
}

/// Stores as `[[index, count], ...]`: integer map keys do not survive JSON inside tagged enums.
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(m: &BTreeMap<i32, u64>, s: S) -> Result<S::Ok, S::Error> {
        m.iter().map(|(&k, &v)| (k, v)).collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<i32, u64>, D::Error> {
        Ok(Vec::<(i32, u64)>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_relative_accuracy() {
        let mut s = DdSketch::new(0.01);
        let data: Vec<f64> = (1..=10_000).map(|i| i as f64 * 0.37 - 500.0).collect();
        for &x in &data {
            s.add(x);
        }
        for q in [0.0, 0.1, 0.25, 0.5, 0.9, 0.99, 1.0] {
            let exact = data[(q * 9999.0_f64).floor() as usize];
            let got = s.quantile(q).unwrap();
            assert!(
                (got - exact).abs() <= 0.01 * exact.abs() + 1e-9,
                "q={q}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn merge_equals_whole() {
        let mut a = DdSketch::new(0.01);
        let mut b = DdSketch::new(0.01);
        let mut whole = DdSketch::new(0.01);
        for i in 0..1000 {
            let x = (i as f64).sin() * 100.0;
            whole.add(x);
            if i % 3 == 0 { a.add(x) } else { b.add(x) }
        }
        assert!(a.merge(&b));
        assert_eq!(a, whole);
        assert!(!a.merge(&DdSketch::new(0.02)));
    }
}
