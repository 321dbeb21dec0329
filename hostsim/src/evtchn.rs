//! Event channels: a notify counter with a wait.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Inner {
    pending: Mutex<u64>,
    cv: Condvar,
}

/// One direction of an event channel (the receiving end's pending state).
#[derive(Clone, Default)]
pub struct EventChannel(Arc<Inner>);

impl EventChannel {
    /// A new channel with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends a notification.
    pub fn notify(&self) {
        let mut p = self.0.pending.lock().unwrap();
        *p += 1;
        self.0.cv.notify_all();
    }

    /// Waits up to `timeout` for a notification; returns how many were
    /// pending (0 on timeout) and clears them.
    pub fn wait(&self, timeout: Duration) -> u64 {
        let p = self.0.pending.lock().unwrap();
        let (mut p, _) = self
            .0
            .cv
            .wait_timeout_while(p, timeout, |p| *p == 0)
            .unwrap();
        std::mem::take(&mut *p)
    }

    /// Pending notifications, without clearing.
    pub fn pending(&self) -> u64 {
        *self.0.pending.lock().unwrap()
    }
}
