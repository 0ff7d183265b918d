//! Cooperative cancellation of long work (training, sweeps).
//!
//! A caller that can be interrupted (a Python call on Ctrl-C, a service shutting down) runs the
//! work inside [`CancelToken::scope`] and calls [`CancelToken::cancel`] from anywhere; the work
//! checks the token between steps (a tree, an optimizer iteration, a sweep trial, a fold) and
//! returns [`Error::Cancelled`] at the next check. Work started outside any scope is never
//! cancelled. The scope is the calling thread's: work spread over other threads (a forest's
//! trees on rayon) takes the token with it when it starts.
//!
//! ```
//! use ml_core::cancel::{self, CancelToken};
//! let token = CancelToken::new();
//! token.cancel();
//! let result = token.scope(|| cancel::check());
//! assert!(matches!(result, Err(ml_core::Error::Cancelled)));
//! assert!(cancel::check().is_ok(), "outside the scope nothing is cancelled");
//! ```

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

/// A flag shared by the work and whoever may cancel it; clones share it.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token not cancelled yet.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Asks the work to stop at its next check (idempotent, from any thread).
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// [`Error::Cancelled`] once cancelled.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Runs `f` with this token as the calling thread's current token (the previous one is
    /// restored afterwards, also when `f` panics).
    pub fn scope<T>(&self, f: impl FnOnce() -> T) -> T {
        struct Restore(Option<CancelToken>);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|c| *c.borrow_mut() = self.0.take());
            }
        }
        let previous = CURRENT.with(|c| c.borrow_mut().replace(self.clone()));
        let _restore = Restore(previous);
        f()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<CancelToken>> = const { RefCell::new(None) };
}

/// The calling thread's current token (inside a [`CancelToken::scope`]).
pub fn current() -> Option<CancelToken> {
    CURRENT.with(|c| c.borrow().clone())
}

/// [`Error::Cancelled`] when the calling thread's current token was cancelled.
pub fn check() -> Result<()> {
    CURRENT.with(|c| c.borrow().as_ref().map_or(Ok(()), CancelToken::check))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest_and_restore() {
        let outer = CancelToken::new();
        let inner = CancelToken::new();
        outer.scope(|| {
            inner.cancel();
            assert!(matches!(inner.scope(check), Err(Error::Cancelled)));
            assert!(check().is_ok(), "the outer token is current again");
            outer.cancel();
            assert!(matches!(check(), Err(Error::Cancelled)));
        });
        assert!(current().is_none());
    }
}
