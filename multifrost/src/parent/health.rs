//! Health of a worker: the circuit breaker and the metrics, both shared by every handle and
//! surviving restarts.
//!
//! Both sit on the call path, so their common case is lock-free: a closed breaker admits a call
//! with one atomic load, and recording a call's latency is a few atomic operations into a ring.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls flow.
    Closed,
    /// Too many consecutive failures: calls fail fast with `Error::CircuitOpen`.
    Open,
    /// The cool-down has passed: one probe call is let through; its success closes the circuit.
    HalfOpen,
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

fn state_from(value: u8) -> CircuitState {
    match value {
        CLOSED => CircuitState::Closed,
        OPEN => CircuitState::Open,
        _ => CircuitState::HalfOpen,
    }
}

/// How a call was let through the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Normal,
    Probe,
}

/// Opens after `threshold` consecutive worker failures (timeouts, exits, disconnects, heartbeat
/// exhaustion; remote errors are answers and do not count), lets one probe through after
/// `cooldown`, and closes when a probe or a heartbeat succeeds.
pub(crate) struct CircuitBreaker {
    worker: std::sync::Arc<str>,
    state: AtomicU8,
    consecutive_failures: AtomicU32,
    trips: AtomicU64,
    opened_at: Mutex<Instant>,
    threshold: u32,
    cooldown: Duration,
}

impl CircuitBreaker {
    pub fn new(worker: std::sync::Arc<str>, threshold: u32, cooldown: Duration) -> Self {
        CircuitBreaker {
            worker,
            state: AtomicU8::new(CLOSED),
            consecutive_failures: AtomicU32::new(0),
            trips: AtomicU64::new(0),
            opened_at: Mutex::new(Instant::now()),
            threshold: threshold.max(1),
            cooldown,
        }
    }

    pub fn state(&self) -> CircuitState {
        state_from(self.state.load(Ordering::Acquire))
    }

    pub fn trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }

    fn cooled_down(&self) -> bool {
        self.opened_at.lock().expect("breaker lock").elapsed() >= self.cooldown
    }

    /// Lets a call through, or refuses it while the circuit is open.
    pub fn admit(&self) -> Option<Admission> {
        match self.state.load(Ordering::Acquire) {
            CLOSED => Some(Admission::Normal),
            OPEN if self.cooled_down() => self
                .state
                .compare_exchange(OPEN, HALF_OPEN, Ordering::AcqRel, Ordering::Acquire)
                .ok()
                .map(|_| Admission::Probe),
            _ => None,
        }
    }

    /// The call got an answer (a result or a remote error).
    pub fn on_success(&self, admission: Admission) {
        if admission == Admission::Probe || self.state.load(Ordering::Acquire) != CLOSED {
            self.close();
        } else if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// The call failed in a way that says the worker is unhealthy.
    pub fn on_failure(&self, admission: Admission) {
        if admission == Admission::Probe {
            self.reopen();
            return;
        }
        let failures = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
        if failures >= self.threshold {
            self.trip();
        }
    }

    /// Opens the circuit now (heartbeats exhausted, or too many failures).
    pub fn trip(&self) {
        if self
            .state
            .compare_exchange(CLOSED, OPEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            *self.opened_at.lock().expect("breaker lock") = Instant::now();
            self.trips.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(worker = %self.worker, "circuit opened");
        }
    }

    fn reopen(&self) {
        *self.opened_at.lock().expect("breaker lock") = Instant::now();
        self.state.store(OPEN, Ordering::Release);
    }

    /// A heartbeat came back: after the cool-down, that is a successful probe.
    pub fn on_heartbeat(&self) {
        if self.state.load(Ordering::Acquire) != CLOSED && self.cooled_down() {
            self.close();
        }
    }

    /// Closes the circuit (a probe succeeded, or a restarted worker answered).
    pub fn close(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        if self.state.swap(CLOSED, Ordering::AcqRel) != CLOSED {
            tracing::info!(worker = %self.worker, "circuit closed");
        }
    }
}

/// How many recent call latencies the percentiles are computed over.
const LATENCY_WINDOW: usize = 1024;

/// Counters and recent latencies of one worker.
pub(crate) struct Metrics {
    /// Every ended call is one of these two (the total is their sum: one atomic add per call
    /// fewer).
    requests_success: AtomicU64,
    requests_failed: AtomicU64,
    requests_dropped: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Recent latencies in microseconds; `u64::MAX` marks an unused slot.
    latencies_us: Box<[AtomicU64]>,
    next_latency: AtomicUsize,
    heartbeat_last_us: AtomicU64,
    heartbeat_total_us: AtomicU64,
    heartbeat_count: AtomicU64,
    heartbeat_misses: AtomicU64,
    pub restarts: AtomicU64,
    /// Heartbeats went unanswered and nothing else came from the worker meanwhile.
    unresponsive: AtomicBool,
    /// Spawn mode: the process is stopped (SIGSTOP, `T` in /proc).
    process_stopped: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests_success: AtomicU64::new(0),
            requests_failed: AtomicU64::new(0),
            requests_dropped: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            latencies_us: (0..LATENCY_WINDOW)
                .map(|_| AtomicU64::new(u64::MAX))
                .collect(),
            next_latency: AtomicUsize::new(0),
            heartbeat_last_us: AtomicU64::new(0),
            heartbeat_total_us: AtomicU64::new(0),
            heartbeat_count: AtomicU64::new(0),
            heartbeat_misses: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            unresponsive: AtomicBool::new(false),
            process_stopped: AtomicBool::new(false),
        }
    }
}

/// Counts a call in flight until dropped.
pub(crate) struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn call_started(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        // Read first: a new maximum is rare, and a read costs no locked instruction.
        if now > self.max_in_flight.load(Ordering::Relaxed) {
            self.max_in_flight.fetch_max(now, Ordering::Relaxed);
        }
        InFlight(self)
    }

    pub fn call_finished(&self, latency: Duration, success: bool) {
        if success {
            self.requests_success.fetch_add(1, Ordering::Relaxed);
        } else {
            self.requests_failed.fetch_add(1, Ordering::Relaxed);
        }
        let slot = self.next_latency.fetch_add(1, Ordering::Relaxed) % LATENCY_WINDOW;
        self.latencies_us[slot].store(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// A call whose future was dropped before it ended: it counts as failed, and as dropped.
    pub fn call_dropped(&self, latency: Duration) {
        self.requests_dropped.fetch_add(1, Ordering::Relaxed);
        self.call_finished(latency, false);
    }

    /// Successful automatic restarts.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    pub fn heartbeat_answered(&self, rtt: Duration) {
        let us = rtt.as_micros() as u64;
        self.heartbeat_last_us.store(us, Ordering::Relaxed);
        self.heartbeat_total_us.fetch_add(us, Ordering::Relaxed);
        self.heartbeat_count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn heartbeat_missed(&self) {
        self.heartbeat_misses.fetch_add(1, Ordering::Relaxed);
    }

    /// Records whether the worker answers: `false` after the allowed heartbeat misses with no
    /// other sign of life. Returns the previous value.
    pub fn set_responsive(&self, responsive: bool) -> bool {
        !self.unresponsive.swap(!responsive, Ordering::Relaxed)
    }

    /// Records whether the worker's process is stopped. Returns the previous value.
    pub fn set_process_stopped(&self, stopped: bool) -> bool {
        self.process_stopped.swap(stopped, Ordering::Relaxed)
    }

    /// True unless heartbeats are exhausted or the process is stopped.
    pub fn looks_alive(&self) -> bool {
        !self.unresponsive.load(Ordering::Relaxed) && !self.process_stopped.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self, breaker: &CircuitBreaker) -> MetricsSnapshot {
        let mut recent: Vec<u64> = self
            .latencies_us
            .iter()
            .map(|slot| slot.load(Ordering::Relaxed))
            .filter(|&us| us != u64::MAX)
            .collect();
        recent.sort_unstable();
        let ms = |us: u64| us as f64 / 1000.0;
        let percentile = |p: f64| -> f64 {
            if recent.is_empty() {
                return 0.0;
            }
            let rank = ((p / 100.0) * recent.len() as f64).ceil() as usize;
            ms(recent[rank.clamp(1, recent.len()) - 1])
        };
        let heartbeats = self.heartbeat_count.load(Ordering::Relaxed);
        let (success, failed) = (
            self.requests_success.load(Ordering::Relaxed),
            self.requests_failed.load(Ordering::Relaxed),
        );
        MetricsSnapshot {
            requests_total: success + failed,
            requests_success: success,
            requests_failed: failed,
            requests_dropped: self.requests_dropped.load(Ordering::Relaxed),
            latency_avg_ms: if recent.is_empty() {
                0.0
            } else {
                ms(recent.iter().sum::<u64>()) / recent.len() as f64
            },
            latency_p50_ms: percentile(50.0),
            latency_p95_ms: percentile(95.0),
            latency_p99_ms: percentile(99.0),
            latency_min_ms: recent.first().copied().map_or(0.0, ms),
            latency_max_ms: recent.last().copied().map_or(0.0, ms),
            latency_window: recent.len(),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            max_in_flight: self.max_in_flight.load(Ordering::Relaxed),
            circuit_state: breaker.state(),
            circuit_breaker_trips: breaker.trips(),
            heartbeat_rtt_last_ms: ms(self.heartbeat_last_us.load(Ordering::Relaxed)),
            heartbeat_rtt_avg_ms: if heartbeats == 0 {
                0.0
            } else {
                ms(self.heartbeat_total_us.load(Ordering::Relaxed)) / heartbeats as f64
            },
            heartbeat_misses: self.heartbeat_misses.load(Ordering::Relaxed),
            restarts: self.restarts(),
            unresponsive: self.unresponsive.load(Ordering::Relaxed),
            process_stopped: self.process_stopped.load(Ordering::Relaxed),
        }
    }
}

/// A point-in-time copy of a worker's metrics (the fields users of the Python implementation
/// know). Latencies are over the most recent calls (up to 1,024), in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    /// Calls made, whatever their outcome.
    pub requests_total: u64,
    /// Calls that got a result.
    pub requests_success: u64,
    /// Calls that ended in any error, remote errors included, and calls whose future was
    /// dropped.
    pub requests_failed: u64,
    /// Calls whose future was dropped before they ended (an outer timeout, a `select!` that
    /// took another branch). The worker was told to cancel them.
    pub requests_dropped: u64,
    /// Mean latency of the recent calls, in milliseconds.
    pub latency_avg_ms: f64,
    /// Median latency of the recent calls, in milliseconds.
    pub latency_p50_ms: f64,
    /// 95th percentile latency of the recent calls, in milliseconds.
    pub latency_p95_ms: f64,
    /// 99th percentile latency of the recent calls, in milliseconds.
    pub latency_p99_ms: f64,
    /// Fastest recent call, in milliseconds.
    pub latency_min_ms: f64,
    /// Slowest recent call, in milliseconds.
    pub latency_max_ms: f64,
    /// How many recent calls the latency figures cover.
    pub latency_window: usize,
    /// Calls in flight now.
    pub in_flight: usize,
    /// The most calls ever in flight at once.
    pub max_in_flight: usize,
    /// The circuit breaker's state now.
    pub circuit_state: CircuitState,
    /// How many times the circuit opened.
    pub circuit_breaker_trips: u64,
    /// Round-trip time of the last answered heartbeat, in milliseconds.
    pub heartbeat_rtt_last_ms: f64,
    /// Mean round-trip time of the answered heartbeats, in milliseconds.
    pub heartbeat_rtt_avg_ms: f64,
    /// Heartbeats that got no answer within the heartbeat timeout.
    pub heartbeat_misses: u64,
    /// Successful automatic restarts.
    pub restarts: u64,
    /// The allowed heartbeat misses ran out with no other sign of life from the worker. Calls
    /// in flight keep waiting for their reply or their own deadline: a busy worker that runs
    /// one call at a time (the Python, Node and Go ones) answers no heartbeat meanwhile.
    pub unresponsive: bool,
    /// Spawn mode: the worker's process is stopped (SIGSTOP, state `T`), not just busy.
    pub process_stopped: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_after_the_threshold_and_a_probe_closes_it() {
        let breaker = CircuitBreaker::new("w".into(), 3, Duration::ZERO);
        for _ in 0..3 {
            let admission = breaker.admit().unwrap();
            breaker.on_failure(admission);
        }
        assert_eq!(breaker.state(), CircuitState::Open);
        assert_eq!(breaker.trips(), 1);
        let probe = breaker.admit().expect("cool-down of zero admits a probe");
        assert_eq!(probe, Admission::Probe);
        assert!(breaker.admit().is_none(), "only one probe at a time");
        breaker.on_success(probe);
        assert_eq!(breaker.state(), CircuitState::Closed);
    }

    #[test]
    fn a_failed_probe_reopens_the_circuit() {
        let breaker = CircuitBreaker::new("w".into(), 1, Duration::from_secs(60));
        breaker.on_failure(Admission::Normal);
        assert!(breaker.admit().is_none(), "open and cooling down");
        let breaker = CircuitBreaker::new("w".into(), 1, Duration::ZERO);
        breaker.on_failure(Admission::Normal);
        let probe = breaker.admit().unwrap();
        breaker.on_failure(probe);
        assert_eq!(breaker.state(), CircuitState::Open);
    }

    #[test]
    fn a_success_resets_the_failure_streak() {
        let breaker = CircuitBreaker::new("w".into(), 2, Duration::ZERO);
        breaker.on_failure(Admission::Normal);
        breaker.on_success(Admission::Normal);
        breaker.on_failure(Admission::Normal);
        assert_eq!(breaker.state(), CircuitState::Closed);
    }

    #[test]
    fn percentiles_come_from_the_recent_window() {
        let metrics = Metrics::default();
        for ms in 1..=100u64 {
            metrics.call_finished(Duration::from_millis(ms), true);
        }
        let snapshot = metrics.snapshot(&CircuitBreaker::new("w".into(), 1, Duration::ZERO));
        assert_eq!(snapshot.requests_total, 100);
        assert_eq!(snapshot.latency_p50_ms, 50.0);
        assert_eq!(snapshot.latency_p99_ms, 99.0);
        assert_eq!(snapshot.latency_min_ms, 1.0);
        assert_eq!(snapshot.latency_max_ms, 100.0);
    }
}
