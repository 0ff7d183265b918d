//! An in-process channel source, for embedding streamscore in an application.

use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::traits::{Event, StreamSource};

/// The sending half of [`channel`]: payloads sent here become events with consecutive offsets
/// on partition 0.
#[derive(Debug, Clone)]
pub struct ChannelSender {
    tx: mpsc::Sender<Vec<u8>>,
}

impl ChannelSender {
    /// Sends one payload, waiting while the channel is full (backpressure).
    pub async fn send(&self, payload: impl Into<Vec<u8>>) -> Result<()> {
        self.tx
            .send(payload.into())
            .await
            .map_err(|_| Error::SourceFailed {
                source_name: "channel".into(),
                reason: "the pipeline has stopped reading".into(),
            })
    }
}

/// A source fed from Rust code through a bounded channel; exhausted once every sender is
/// dropped and the channel is drained. It cannot resume after a restart (nothing is persisted).
#[derive(Debug)]
pub struct ChannelSource {
    rx: mpsc::Receiver<Vec<u8>>,
    next_offset: u64,
    closed: bool,
}

/// A bounded channel of `capacity` payloads and the source reading it.
pub fn channel(capacity: usize) -> (ChannelSender, ChannelSource) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (
        ChannelSender { tx },
        ChannelSource {
            rx,
            next_offset: 0,
            closed: false,
        },
    )
}

#[async_trait]
impl StreamSource for ChannelSource {
    async fn next_batch(&mut self, max: usize, deadline: Instant) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        while events.len() < max {
            let next = match self.rx.try_recv() {
                Ok(p) => Some(p),
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.closed = true;
                    None
                }
                Err(mpsc::error::TryRecvError::Empty) if !events.is_empty() => None,
                Err(mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout_at(deadline.into(), self.rx.recv()).await {
                        Ok(Some(p)) => Some(p),
                        Ok(None) => {
                            self.closed = true;
                            None
                        }
                        Err(_) => None,
                    }
                }
            };
            let Some(payload) = next else { break };
            events.push(Event::new(payload, 0, self.next_offset));
            self.next_offset += 1;
        }
        Ok(events)
    }

    fn is_exhausted(&self) -> bool {
        self.closed
    }

    fn describe(&self) -> String {
        "channel".into()
    }
}
