//! A rate-limited wrapper: replays another source at a target number of events per second,
//! for load tests.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::traits::{Checkpoint, Event, StreamSource};

/// Delivers the events of an inner source no faster than `rate` per second (on average since
/// the start; bursts are bounded by the batch size).
#[derive(Debug)]
pub struct ReplaySource {
    inner: Box<dyn StreamSource>,
    rate: f64,
    started: Option<Instant>,
    delivered: u64,
}

impl ReplaySource {
    /// Wraps `inner`; `rate` must be a positive number of events per second.
    pub fn new(inner: Box<dyn StreamSource>, rate: f64) -> Result<ReplaySource> {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(Error::InvalidSetting {
                name: "rate",
                reason: format!("must be a positive number of events per second, got {rate}"),
            });
        }
        Ok(ReplaySource {
            inner,
            rate,
            started: None,
            delivered: 0,
        })
    }
}

#[async_trait]
impl StreamSource for ReplaySource {
    async fn next_batch(&mut self, max: usize, deadline: Instant) -> Result<Vec<Event>> {
        let started = *self.started.get_or_insert_with(Instant::now);
        // How many events the schedule allows by the deadline.
        let allowed_by = |t: Instant| (t.saturating_duration_since(started).as_secs_f64() * self.rate) as u64;
        let mut budget = allowed_by(deadline).saturating_sub(self.delivered);
        if budget == 0 {
            // Sleep until the next event is due (or the deadline).
            let due = started + Duration::from_secs_f64((self.delivered + 1) as f64 / self.rate);
            tokio::time::sleep_until(due.min(deadline).into()).await;
            budget = allowed_by(Instant::now()).saturating_sub(self.delivered);
            if budget == 0 {
                return Ok(Vec::new());
            }
        }
        let want = max.min(budget as usize);
        let events = self.inner.next_batch(want, deadline).await?;
        self.delivered += events.len() as u64;
        // Hold the batch until its last event is due, so the average rate is kept.
        let due = started + Duration::from_secs_f64(self.delivered as f64 / self.rate);
        tokio::time::sleep_until(due.into()).await;
        Ok(events)
    }

    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        self.inner.commit(checkpoint).await
    }

    fn is_exhausted(&self) -> bool {
        self.inner.is_exhausted()
    }

    fn describe(&self) -> String {
        format!("{} at {} events/s", self.inner.describe(), self.rate)
    }
}
