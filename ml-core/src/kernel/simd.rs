//! Run-time choice of the instruction set the kernels use.
//!
//! The kernels are written once, as plain arithmetic over fixed groups of [`LANES`] rows that the
//! compiler vectorizes, and compiled twice: for the build target's baseline (SSE2 on x86-64) and,
//! inside `#[target_feature(enable = "avx2")]` functions, for AVX2. [`Simd::Auto`] picks AVX2 when
//! the CPU reports it (`is_x86_feature_detected!`, checked once per process and cached).
//!
//! Both versions perform the same IEEE operations in the same order on every row: no fused
//! multiply-add (Rust never contracts `a * b + c` on its own, and the kernels do not ask for
//! it), no reassociation, and a batch's last rows go through the same group code, padded.
//! Predictions are therefore bit-identical whichever level runs, which the tests check.

/// Which instruction set the prediction kernels may use ([`crate::PredictOptions::simd`]).
/// Predictions do not depend on it: every level computes the same bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Simd {
    /// The best level the CPU supports, detected at run time.
    #[default]
    Auto,
    /// The build target's baseline instruction set only (SSE2 on x86-64).
    Portable,
    /// AVX2 (x86-64). On a CPU without it, the portable code runs.
    Avx2,
}

impl Simd {
    /// Whether this CPU runs `self` as asked (`Auto` and `Portable` always do).
    pub fn is_supported(self) -> bool {
        match self {
            Simd::Auto | Simd::Portable => true,
            Simd::Avx2 => avx2_detected(),
        }
    }

    /// The concrete levels this CPU runs, baseline first: what a test should compare.
    pub fn available() -> Vec<Simd> {
        [Simd::Portable, Simd::Avx2]
            .into_iter()
            .filter(|s| s.is_supported())
            .collect()
    }

    /// The level that runs for this request on this CPU.
    pub(crate) fn level(self) -> Level {
        match self {
            Simd::Auto | Simd::Avx2 if avx2_detected() => Level(LevelKind::Avx2),
            _ => Level(LevelKind::Portable),
        }
    }
}

/// A level checked against the CPU: only [`Simd::level`] makes one, so holding
/// `Level(LevelKind::Avx2)` proves that the CPU has AVX2 (the safety argument of every
/// dispatch to an AVX2 function).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Level(LevelKind);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LevelKind {
    Portable,
    Avx2,
}

impl Level {
    /// True when the AVX2 versions may run.
    #[inline(always)]
    pub(crate) fn avx2(self) -> bool {
        self.0 == LevelKind::Avx2
    }
}

fn avx2_detected() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Rows computed together: 8 `f64` are two AVX2 registers (four SSE2 ones), enough independent
/// work per instruction to hide the latency of the multiply-add chains.
pub const LANES: usize = 8;

/// Defines `pub(crate) fn $name(level: Level, args...)` that runs `$body(args...)` compiled for
/// AVX2 when `level` allows it, else as compiled for the baseline. `$body` must be
/// `#[inline(always)]` so that it is compiled into each version.
macro_rules! dispatch {
    ($(#[$doc:meta])* fn $name:ident => $body:ident($($arg:ident: $ty:ty),* $(,)?);) => {
        $(#[$doc])*
        pub(crate) fn $name(level: $crate::kernel::simd::Level, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            fn avx2($($arg: $ty),*) {
                $body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if level.avx2() {
                // SAFETY: a `Level` allowing AVX2 is only made by `Simd::level` after
                // `is_x86_feature_detected!("avx2")` returned true, so the CPU runs `avx2`.
                unsafe { avx2($($arg),*) };
                return;
            }
            let _ = level;
            $body($($arg),*)
        }
    };
}
pub(crate) use dispatch;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_is_always_available_and_requests_resolve_to_what_the_cpu_has() {
        let levels = Simd::available();
        assert_eq!(levels[0], Simd::Portable);
        assert!(!Simd::Portable.level().avx2());
        assert_eq!(Simd::Auto.level().avx2(), avx2_detected());
        assert_eq!(Simd::Avx2.level().avx2(), avx2_detected());
        assert_eq!(levels.contains(&Simd::Avx2), avx2_detected());
    }
}
