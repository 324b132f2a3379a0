//! The parent's `tracing` events, captured with a minimal subscriber: lifecycle, calls with their
//! function, namespace, duration and correlation id, heartbeats missed, circuit open and close.

mod support;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use multifrost::{CallOptions, CircuitState};
use support::{eventually, signal};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records every event as one line: `message field=value ...`.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line(format!("{} ", event.metadata().level()));
        event.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Capture {
    fn has(&self, parts: &[&str]) -> bool {
        self.0
            .lock()
            .unwrap()
            .iter()
            .any(|line| parts.iter().all(|part| line.contains(part)))
    }
}

// A current-thread runtime, so that every task runs where the subscriber is set.
#[tokio::test(flavor = "current_thread")]
async fn lifecycle_calls_heartbeats_and_the_circuit_are_traced() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());

    let worker = support::rust_worker()
        .heartbeat_interval(Duration::from_millis(100))
        .heartbeat_timeout(Duration::from_millis(300))
        .heartbeat_max_misses(2)
        .circuit_threshold(2)
        .circuit_cooldown(Duration::from_millis(100));
    let handle = worker.handle();
    handle.start().await.unwrap();
    assert!(capture.has(&["worker started", "worker=hand-worker"]));

    let options = CallOptions::new().correlation_id("corr-42");
    handle
        .call_dyn_with::<i64>("add", (1, 2), &options)
        .await
        .unwrap();
    assert!(capture.has(&[
        "call start",
        "function=\"add\"",
        "namespace=\"default\"",
        "correlation_id=\"corr-42\""
    ]));
    assert!(capture.has(&[
        "call ok",
        "function=\"add\"",
        "duration_ms=",
        "correlation_id=\"corr-42\""
    ]));
    handle
        .call_dyn::<()>("throw_error", ("no",))
        .await
        .unwrap_err();
    assert!(capture.has(&["call returned an error", "function=\"throw_error\""]));

    let pid = handle.pid().unwrap();
    signal(pid, libc::SIGSTOP);
    assert!(
        eventually(Duration::from_secs(20), || {
            let metrics = handle.metrics();
            metrics.unresponsive && metrics.process_stopped
        })
        .await
    );
    assert!(capture.has(&["heartbeat missed", "misses=1"]));
    assert!(capture.has(&["worker unresponsive", "worker=hand-worker"]));
    assert!(capture.has(&["worker process is stopped", "worker=hand-worker"]));
    // Missed heartbeats leave the circuit alone; timeouts open it.
    assert_eq!(handle.circuit_state(), CircuitState::Closed);
    let short = CallOptions::new().timeout(Duration::from_millis(100));
    for _ in 0..2 {
        let err = handle
            .call_dyn_with::<i64>("add", (1, 2), &short)
            .await
            .unwrap_err();
        assert!(err.is_worker_failure(), "{err:?}");
    }
    assert_eq!(handle.circuit_state(), CircuitState::Open);
    assert!(capture.has(&["circuit opened", "worker=hand-worker"]));
    signal(pid, libc::SIGCONT);
    assert!(
        eventually(Duration::from_secs(10), || handle.circuit_state()
            == CircuitState::Closed)
        .await
    );
    assert!(capture.has(&["circuit closed"]));
    assert!(eventually(Duration::from_secs(10), || handle.is_healthy()).await);
    assert!(capture.has(&["worker responsive again"]));
    assert!(capture.has(&["worker process runs again"]));

    let before_stop = capture.0.lock().unwrap().len();
    handle.stop().await;
    assert!(capture.has(&["worker stopped"]));
    let at_stop: Vec<String> = capture.0.lock().unwrap()[before_stop..]
        .iter()
        .filter(|line| line.starts_with("INFO ") || line.starts_with("WARN "))
        .cloned()
        .collect();
    assert_eq!(at_stop.len(), 1, "a stop logs one info line: {at_stop:?}");
    assert!(capture.has(&["worker process exited"]));
}
