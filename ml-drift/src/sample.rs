//! A bounded exact sample that does not depend on row order and merges exactly.
//!
//! Each value gets a priority `splitmix64(bits(x) ^ seed)`; the sample is every row whose
//! priority is below the `(capacity + 1)`-th smallest priority of the whole column. Every row has
//! the same chance to be kept (a uniform-inclusion sample, so the sample's ECDF estimates the
//! column's ECDF without bias), the result depends only on the multiset of values — not on row
//! order or on how the data was split — and two samples merge into exactly the sample of the
//! concatenation. Equal values share a priority and are kept or dropped together; for columns
//! with few distinct values the profile keeps exact value counts instead (see
//! [`crate::profile::NumericProfile::distinct`]).

use ml_core::rng::splitmix64;
use serde::{Deserialize, Serialize};

/// The bounded, order-independent sample of one numeric column.
///
/// Serialized as its settings and the sampled values only (priorities are recomputed from the
/// values), which keeps `profile.json` small.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "SampleRepr", from = "SampleRepr")]
pub struct HashSample {
    capacity: usize,
    seed: u64,
    /// Rows with priority `>= threshold` are never in the sample (`None`: no bound yet).
    threshold: Option<u64>,
    /// `(priority, value)` pairs, sorted by value once [`HashSample::finish`] ran.
    entries: Vec<(u64, f64)>,
}

#[derive(Serialize, Deserialize)]
struct SampleRepr {
    capacity: usize,
    seed: u64,
    threshold: Option<u64>,
    values: Vec<f64>,
}

impl From<HashSample> for SampleRepr {
    fn from(s: HashSample) -> Self {
        SampleRepr {
            capacity: s.capacity,
            seed: s.seed,
            threshold: s.threshold,
            values: s.entries.iter().map(|e| e.1).collect(),
        }
    }
}

impl From<SampleRepr> for HashSample {
    fn from(r: SampleRepr) -> Self {
        HashSample {
            capacity: r.capacity,
            seed: r.seed,
            threshold: r.threshold,
            entries: r.values.iter().map(|&x| (priority(x, r.seed), x)).collect(),
        }
    }
}

fn priority(x: f64, seed: u64) -> u64 {
    // -0.0 and 0.0 are the same value.
    let x = if x == 0.0 { 0.0 } else { x };
    splitmix64(x.to_bits() ^ seed)
}

impl HashSample {
    /// An empty sample keeping at most `capacity` rows.
    pub fn new(capacity: usize, seed: u64) -> Self {
        HashSample {
            capacity,
            seed,
            threshold: None,
            entries: Vec::new(),
        }
    }

    /// Offers one value.
    pub fn add(&mut self, x: f64) {
        let p = priority(x, self.seed);
        if self.threshold.is_some_and(|t| p >= t) {
            return;
        }
        self.entries.push((p, x));
        if self.entries.len() > 2 * self.capacity.max(1) {
            self.compact();
        }
    }

    /// Drops every row whose priority is not among the `capacity` smallest (ties kept or
    /// dropped together) and tightens the threshold.
    fn compact(&mut self) {
        if self.entries.len() <= self.capacity {
            return;
        }
        self.entries
            .sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let t = self.entries[self.capacity].0;
        self.entries.retain(|e| e.0 < t);
        self.threshold = Some(self.threshold.map_or(t, |old| old.min(t)));
    }

    /// Compacts and sorts the sample by value; call before reading [`HashSample::values`].
    pub fn finish(&mut self) {
        self.compact();
        self.entries
            .sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    }

    /// Merges `other` (same capacity and seed) into this sample.
    pub fn merge(&mut self, other: &HashSample) -> bool {
        if self.capacity != other.capacity || self.seed != other.seed {
            return false;
        }
        let t = match (self.threshold, other.threshold) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.entries.extend_from_slice(&other.entries);
        if let Some(t) = t {
            self.entries.retain(|e| e.0 < t);
        }
        self.threshold = t;
        self.finish();
        true
    }

    /// The sampled values, sorted ascending (after [`HashSample::finish`]).
    pub fn values(&self) -> Vec<f64> {
        self.entries.iter().map(|e| e.1).collect()
    }

    /// Number of sampled rows.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing was sampled.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_order_free_and_mergeable() {
        let data: Vec<f64> = (0..5000).map(|i| ((i * 7919) % 5003) as f64 / 3.0).collect();
        let mut whole = HashSample::new(300, 9);
        data.iter().for_each(|&x| whole.add(x));
        whole.finish();
        assert!(whole.len() <= 300 && whole.len() > 250);
        let mut rev = HashSample::new(300, 9);
        data.iter().rev().for_each(|&x| rev.add(x));
        rev.finish();
        assert_eq!(whole.values(), rev.values());
        let (l, r) = data.split_at(1234);
        let mut a = HashSample::new(300, 9);
        l.iter().for_each(|&x| a.add(x));
        a.finish();
        let mut b = HashSample::new(300, 9);
        r.iter().for_each(|&x| b.add(x));
        b.finish();
        assert!(a.merge(&b));
        assert_eq!(a.values(), whole.values());
    }
}
