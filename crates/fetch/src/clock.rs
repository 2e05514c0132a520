//! Time, injectable, so cache expiry is tested without sleeping.
//!
//! [`SystemClock`] is wall-clock time that never jumps: it reads the system
//! time once and then advances by the monotonic clock, so a clock step on
//! the host neither expires the whole cache nor keeps entries for days.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// The fetcher's notion of "now".
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

/// The system time at construction, advanced monotonically.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    wall: SystemTime,
    start: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        Self {
            wall: SystemTime::now(),
            start: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        self.wall + self.start.elapsed()
    }
}

/// A clock that moves only when told to; clones share the time. For tests.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<SystemTime>>);

impl ManualClock {
    pub fn new(start: SystemTime) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
