//! Streaming change detectors (`ADWIN`, `PageHinkley`, `KSWIN`, `DDM`): ml-drift's detectors,
//! which follow river's arithmetic and defaults, so change points agree with river's one for
//! one. `update_many` runs over a whole numpy array without the GIL.

use ml_drift::ChangeDetector;
use ml_drift::stream::{Adwin, Ddm, Kswin, PageHinkley, PhMode};
use numpy::{PyArray1, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// `values` as a contiguous float64 array (converted by numpy when it is not one).
fn float_array<'py>(values: &Bound<'py, PyAny>) -> PyResult<PyReadonlyArray1<'py, f64>> {
    if let Ok(a) = values.extract::<PyReadonlyArray1<'py, f64>>()
        && a.is_contiguous()
    {
        return Ok(a);
    }
    let py = values.py();
    let kwargs = PyDict::new(py);
    kwargs.set_item("dtype", "float64")?;
    let converted = py
        .import("numpy")?
        .call_method("ascontiguousarray", (values,), Some(&kwargs))?;
    converted.extract::<PyReadonlyArray1<'py, f64>>().map_err(|_| {
        PyValueError::new_err("update_many expects a 1-D array of numbers (numpy.ndarray, list, ...)")
    })
}

/// Feeds `values` to `detector` without the GIL; the positions (in `values`) of the changes.
/// Also sets `drift` to whether the last value fed was a change, as `update` does.
fn run_many<'py, D: ChangeDetector>(
    py: Python<'py>,
    detector: &mut D,
    seen: &mut u64,
    drift: &mut bool,
    values: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let array = float_array(values)?;
    let xs = array.as_slice()?;
    let start = *seen;
    let changes = py.detach(|| detector.update_many(xs));
    *seen += xs.len() as u64;
    if !xs.is_empty() {
        *drift = changes.last().is_some_and(|c| c.index + 1 == *seen);
    }
    let positions: Vec<i64> = changes.iter().map(|c| (c.index - start) as i64).collect();
    Ok(PyArray1::from_vec(py, positions))
}

fn check(ok: bool, message: &str) -> PyResult<()> {
    if ok {
        Ok(())
    } else {
        Err(PyValueError::new_err(message.to_string()))
    }
}

/// The `#[pymethods]` block of a detector class: `update`, `update_many`, `drift_detected`,
/// `n_seen`, then the class's own methods (one block per class: pyo3 without
/// `multiple-pymethods`).
macro_rules! detector_class {
    ($ty:ident { $($extra:tt)* }) => {
        #[pymethods]
        impl $ty {
            $($extra)*

            /// Feeds one value; `True` when a change is detected at it (the next value starts
            /// the detector afresh, as in river).
            fn update(&mut self, x: f64) -> bool {
                self.seen += 1;
                self.drift = self.inner.update(x).is_some();
                self.drift
            }

            /// Feeds every value of a 1-D array (any numeric dtype; float64 is read in place)
            /// and returns the positions in `values` where changes were detected, as int64.
            fn update_many<'py>(
                &mut self,
                py: Python<'py>,
                values: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyArray1<i64>>> {
                run_many(py, &mut self.inner, &mut self.seen, &mut self.drift, values)
            }

            /// Whether the last value fed was a change (river's `drift_detected`).
            #[getter]
            fn drift_detected(&self) -> bool {
                self.drift
            }

            /// Values fed so far.
            #[getter]
            fn n_seen(&self) -> u64 {
                self.seen
            }
        }
    };
}

/// ADWIN: adaptive windowing (river's defaults).
#[pyclass(name = "ADWIN", module = "streamscore._native")]
pub struct PyAdwin {
    inner: Adwin,
    seen: u64,
    drift: bool,
}

detector_class!(PyAdwin {
    #[new]
    #[pyo3(signature = (delta = 0.002, clock = 32, max_buckets = 5, min_window_length = 5, grace_period = 10))]
    fn new(delta: f64, clock: u64, max_buckets: usize, min_window_length: u32, grace_period: u32) -> PyResult<Self> {
        check(delta > 0.0 && delta < 1.0, "ADWIN: delta must be between 0 and 1")?;
        check(clock >= 1 && max_buckets >= 1, "ADWIN: clock and max_buckets must be at least 1")?;
        Ok(PyAdwin {
            inner: Adwin::new(delta, clock, max_buckets, min_window_length, grace_period),
            seen: 0,
            drift: false,
        })
    }

    /// Values in the current window.
    #[getter]
    fn width(&self) -> f64 {
        self.inner.width()
    }

    /// Mean of the current window.
    #[getter]
    fn estimation(&self) -> f64 {
        self.inner.estimation()
    }
});

/// Page-Hinkley test (river's defaults).
#[pyclass(name = "PageHinkley", module = "streamscore._native")]
pub struct PyPageHinkley {
    inner: PageHinkley,
    seen: u64,
    drift: bool,
}

detector_class!(PyPageHinkley {
    #[new]
    #[pyo3(signature = (min_instances = 30, delta = 0.005, threshold = 50.0, alpha = 0.9999, mode = "both"))]
    fn new(min_instances: u64, delta: f64, threshold: f64, alpha: f64, mode: &str) -> PyResult<Self> {
        let mode = match mode {
            "up" => PhMode::Up,
            "down" => PhMode::Down,
            "both" => PhMode::Both,
            other => {
                return Err(PyValueError::new_err(format!(
                    "PageHinkley: unknown mode {other:?}; use \"up\", \"down\" or \"both\""
                )));
            }
        };
        check(threshold > 0.0, "PageHinkley: threshold must be positive")?;
        check(alpha > 0.0 && alpha <= 1.0, "PageHinkley: alpha must be in (0, 1]")?;
        Ok(PyPageHinkley {
            inner: PageHinkley::new(min_instances, delta, threshold, alpha, mode),
            seen: 0,
            drift: false,
        })
    }
});

/// KSWIN: Kolmogorov–Smirnov windowing (river's defaults; `seed` makes the sampling
/// repeatable and equal to river's `KSWIN(seed=...)`).
#[pyclass(name = "KSWIN", module = "streamscore._native")]
pub struct PyKswin {
    inner: Kswin,
    seen: u64,
    drift: bool,
}

detector_class!(PyKswin {
    #[new]
    #[pyo3(signature = (alpha = 0.005, window_size = 100, stat_size = 30, seed = 0))]
    fn new(alpha: f64, window_size: usize, stat_size: usize, seed: u64) -> PyResult<Self> {
        check(alpha > 0.0 && alpha < 1.0, "KSWIN: alpha must be between 0 and 1")?;
        check(
            stat_size >= 1 && stat_size * 2 <= window_size,
            "KSWIN: stat_size must be at least 1 and at most half of window_size",
        )?;
        Ok(PyKswin {
            inner: Kswin::new(alpha, window_size, stat_size, seed),
            seen: 0,
            drift: false,
        })
    }

    /// The p-value of the last test.
    #[getter]
    fn p_value(&self) -> f64 {
        self.inner.p_value
    }
});

/// DDM: drift detection on a stream of errors (1) and successes (0) (river's defaults).
#[pyclass(name = "DDM", module = "streamscore._native")]
pub struct PyDdm {
    inner: Ddm,
    seen: u64,
    drift: bool,
}

detector_class!(PyDdm {
    #[new]
    #[pyo3(signature = (warm_start = 30, warning_threshold = 2.0, drift_threshold = 3.0))]
    fn new(warm_start: u64, warning_threshold: f64, drift_threshold: f64) -> PyResult<Self> {
        check(
            warning_threshold > 0.0 && drift_threshold >= warning_threshold,
            "DDM: thresholds must be positive, drift_threshold at least warning_threshold",
        )?;
        Ok(PyDdm {
            inner: Ddm::new(warm_start, warning_threshold, drift_threshold),
            seen: 0,
            drift: false,
        })
    }

    /// Whether the last value was in the warning zone.
    #[getter]
    fn warning_detected(&self) -> bool {
        self.inner.warning_detected()
    }
});
