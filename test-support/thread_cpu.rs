//! A criterion measurement of the benchmarking thread's on-CPU time, for benchmarks run on a
//! machine shared with other work (wall-clock time there also counts the time the thread waited
//! for a core). Include it with `#[path = "../../test-support/thread_cpu.rs"] mod thread_cpu;`
//! (the crate needs `rustix` with its `time` feature as a Unix dev-dependency) and pick it when
//! `BENCH_CLOCK=thread-cpu`.

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use rustix::time::{ClockId, clock_gettime};

/// Time on the CPU of the benchmarking thread.
pub struct ThreadCpu;

/// Whether `BENCH_CLOCK=thread-cpu` asks for [`ThreadCpu`].
pub fn wanted() -> bool {
    std::env::var("BENCH_CLOCK").as_deref() == Ok("thread-cpu")
}

fn now() -> Duration {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

impl Measurement for ThreadCpu {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        now()
    }
    fn end(&self, start: Duration) -> Duration {
        now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds, as wall-clock time: the same units and throughput formatting.
        static WALL: WallTime = WallTime;
        WALL.formatter()
    }
}
