//! The forest kernel's unchecked reads (`FlatForest`, `get_unchecked`): random tree ensembles
//! (valid by construction, or any structure that `TreeEnsemble::validate` lets through), compiled
//! with every perfect-depth limit, score random rows; the answer must equal the plain walk's
//! bit for bit. Built with AddressSanitizer, so an out-of-bounds read is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ml_core::estimator::tree::{LEAF, TreeEnsemble};
use ml_core::kernel::{FlatForest, Kernel};
use ndarray::Array2;
use streamscore_fuzz::Bytes;

/// Builds an ensemble from the input: each node is a leaf or splits into two later nodes
/// (children follow their parent, as `validate` requires). Shapes are kept small (at most 64
/// trees of 2048 nodes) so each run takes microseconds.
fn ensemble(b: &mut Bytes<'_>) -> TreeEnsemble {
    let n_features = 1 + usize::from(b.byte() % 12);
    let n_outputs = 1 + usize::from(b.byte() % 4);
    let n_trees = 1 + usize::from(b.byte() % 64);
    let mut e = TreeEnsemble {
        n_features,
        n_outputs,
        roots: Vec::new(),
        feature: Vec::new(),
        threshold: Vec::new(),
        left: Vec::new(),
        right: Vec::new(),
        value_offset: Vec::new(),
        values: Vec::new(),
        feature_importances: vec![0.0; n_features],
    };
    for _ in 0..n_trees {
        let root = e.feature.len();
        e.roots.push(root as u32);
        // Grow the tree breadth-first: `open` nodes still need a kind.
        let mut open = vec![root];
        push_node(&mut e);
        while let Some(node) = open.pop() {
            let split = e.feature.len() < 2048 && !b.is_empty() && b.byte() % 3 != 0;
            if split {
                let l = e.feature.len();
                push_node(&mut e);
                push_node(&mut e);
                e.feature[node] = u32::from(b.byte()) % n_features as u32;
                e.threshold[node] = b.float();
                e.left[node] = l as u32;
                e.right[node] = l as u32 + 1;
                open.push(l + 1);
                open.push(l);
            } else {
                e.value_offset[node] = e.values.len() as u32;
                for _ in 0..n_outputs {
                    let v = b.float();
                    e.values.push(v);
                }
            }
        }
    }
    e
}

fn push_node(e: &mut TreeEnsemble) {
    e.feature.push(0);
    e.threshold.push(0.0);
    e.left.push(LEAF);
    e.right.push(LEAF);
    e.value_offset.push(0);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut b = Bytes(rest);
    let e = if mode & 1 == 0 {
        ensemble(&mut b)
    } else {
        // Any structure serde accepts, as a loaded model file would hold it.
        let text_len = usize::from(b.byte()) * 16;
        let all = b.0;
        let (text, rows) = all.split_at(text_len.min(all.len()));
        b.0 = rows;
        let Ok(e) = serde_json::from_slice::<TreeEnsemble>(text) else {
            return;
        };
        e
    };
    if e.validate().is_err() {
        assert_eq!(mode & 1, 1, "an ensemble built by construction is valid");
        return;
    }
    let n = 1 + usize::from(b.byte() % 67);
    let d = e.n_features;
    let x = Array2::from_shape_fn((n, d), |_| b.float());
    let plain = e
        .predict(x.view())
        .expect("the plain walk predicts a matching matrix");
    let depth_limit = usize::from(mode >> 1) % 14;
    let kernel = Kernel::Forest(FlatForest::with_max_perfect_depth(&e, depth_limit));
    let threads = 1 + usize::from(mode >> 5 & 1);
    let fast = kernel
        .predict_matrix(x.view(), threads)
        .expect("the kernel predicts a matching matrix");
    assert_eq!(fast.dim(), plain.dim());
    for (a, p) in fast.iter().zip(plain.iter()) {
        assert!(
            a.to_bits() == p.to_bits() || (a.is_nan() && p.is_nan()),
            "kernel {a} != plain walk {p}"
        );
    }
});
