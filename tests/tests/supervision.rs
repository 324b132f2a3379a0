//! Supervision over real processes with fault injection: heartbeats, circuit breaker,
//! auto-restart, in-flight bound and metrics.

mod support;

use std::time::{Duration, Instant};

use multifrost::{CallOptions, CircuitState, Error, ParentWorker};
use support::{eventually, signal};

/// Short heartbeat settings so that failures are detected quickly in tests.
fn fast_heartbeats(worker: ParentWorker) -> ParentWorker {
    worker
        .heartbeat_interval(Duration::from_millis(100))
        .heartbeat_timeout(Duration::from_millis(300))
        .heartbeat_max_misses(2)
}

#[tokio::test]
async fn a_killed_child_fails_500_calls_promptly_and_auto_restart_serves_the_next_on_a_new_pid() {
    let worker = support::rust_worker().auto_restart(true);
    let handle = worker.handle();
    handle.start().await.unwrap();
    let first_pid = handle.pid().unwrap();
    let calls: Vec<_> = (0..500)
        .map(|_| {
            let handle = handle.clone();
            tokio::spawn(async move { handle.call_dyn::<f64>("sleep", (60.0,)).await })
        })
        .collect();
    assert!(eventually(Duration::from_secs(30), || handle.pending_calls() == 500).await);
    let killed_at = Instant::now();
    signal(first_pid, libc::SIGKILL);
    for call in calls {
        let err = call.await.unwrap().unwrap_err();
        assert!(matches!(err, Error::ChildExited { .. }), "{err:?}");
    }
    assert!(
        killed_at.elapsed() < Duration::from_secs(10),
        "failed at once, not at a timeout"
    );
    // The next call waits for the restart and succeeds on the new child.
    assert_eq!(handle.call_dyn::<i64>("add", (1, 2)).await.unwrap(), 3);
    let second_pid = handle.pid().unwrap();
    assert_ne!(first_pid, second_pid);
    assert_eq!(handle.restart_count(), 1);
    assert_eq!(handle.circuit_state(), CircuitState::Closed);
    handle.stop().await;
}

#[tokio::test]
async fn a_stopped_child_is_reported_while_its_call_waits_and_the_circuit_stays_closed() {
    // Auto-restart is on: missed heartbeats alone must still not replace the child.
    let worker = fast_heartbeats(support::rust_worker()).auto_restart(true);
    let handle = worker.handle();
    handle.start().await.unwrap();
    let pid = handle.pid().unwrap();
    let in_flight = {
        let handle = handle.clone();
        let options = CallOptions::new().timeout(Duration::from_secs(120));
        tokio::spawn(async move { handle.call_dyn_with::<f64>("sleep", (0.5,), &options).await })
    };
    assert!(eventually(Duration::from_secs(10), || handle.pending_calls() == 1).await);
    signal(pid, libc::SIGSTOP);
    assert!(
        eventually(Duration::from_secs(20), || {
            let metrics = handle.metrics();
            metrics.process_stopped && metrics.unresponsive
        })
        .await,
        "the stop is reported: {:?}",
        handle.metrics()
    );
    assert!(!handle.is_healthy());
    assert_eq!(handle.circuit_state(), CircuitState::Closed);
    assert!(!in_flight.is_finished(), "the call waits for its reply");

    signal(pid, libc::SIGCONT);
    assert_eq!(in_flight.await.unwrap().unwrap(), 0.5);
    assert!(
        eventually(Duration::from_secs(10), || handle.is_healthy()).await,
        "healthy again once it answers: {:?}",
        handle.metrics()
    );
    assert_eq!(handle.call_dyn::<i64>("add", (1, 2)).await.unwrap(), 3);
    assert_eq!(
        handle.pid(),
        Some(pid),
        "missed heartbeats never replace a child"
    );
    let metrics = handle.metrics();
    assert!(metrics.heartbeat_misses >= 2);
    assert_eq!(metrics.circuit_breaker_trips, 0);
    assert_eq!(metrics.restarts, 0);
    handle.stop().await;
}

#[tokio::test]
async fn a_silent_child_is_replaced_when_restart_on_unresponsive_is_set() {
    let worker =
        fast_heartbeats(support::rust_worker()).restart_on_unresponsive(Duration::from_secs(1));
    let handle = worker.handle();
    handle.start().await.unwrap();
    let pid = handle.pid().unwrap();
    let in_flight = {
        let handle = handle.clone();
        tokio::spawn(async move { handle.call_dyn::<f64>("sleep", (60.0,)).await })
    };
    assert!(eventually(Duration::from_secs(10), || handle.pending_calls() == 1).await);
    signal(pid, libc::SIGSTOP);
    let err = in_flight.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Unresponsive { .. }), "{err:?}");
    assert!(eventually(Duration::from_secs(20), || handle.restart_count() == 1).await);
    assert!(
        support::wait_until_gone(pid, Duration::from_secs(10)).await,
        "the silent child is killed"
    );
    assert_eq!(handle.call_dyn::<i64>("add", (2, 2)).await.unwrap(), 4);
    assert_ne!(handle.pid(), Some(pid));
    handle.stop().await;
}

#[tokio::test]
async fn a_child_that_crashes_on_start_is_retried_with_backoff_then_given_up() {
    let dir = std::env::temp_dir().join(format!("multifrost-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("starts");
    let _ = std::fs::remove_file(&log);
    let worker = ParentWorker::spawn("/bin/sh")
        .args(["-c", "echo start >> \"$START_LOG\"; exit 1"])
        .env("START_LOG", &log)
        .auto_restart(true)
        .max_restart_attempts(3);
    let handle = worker.handle();
    let started = Instant::now();
    let err = handle.start().await.unwrap_err();
    assert!(matches!(err, Error::StartFailed { .. }), "{err:?}");
    let starts = std::fs::read_to_string(&log).unwrap().lines().count();
    assert_eq!(
        starts, 4,
        "one start and three restart attempts, then no more"
    );
    // Backoff of 100 + 200 + 400 ms between attempts: no busy loop.
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert!(!handle.is_healthy());
    let call = handle.call_dyn::<i64>("add", (1, 2)).await.unwrap_err();
    assert!(matches!(call, Error::StartFailed { .. }), "{call:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn restarts_stop_after_max_attempts_when_the_child_keeps_dying() {
    let worker = support::rust_worker()
        .auto_restart(true)
        .max_restart_attempts(2);
    let handle = worker.handle();
    handle.start().await.unwrap();
    // Each child exits on its first call; each restart is a new child that will do the same.
    for _ in 0..3 {
        let _ = handle.call_dyn::<()>("exit", (1,)).await;
    }
    let err = handle.call_dyn::<i64>("add", (1, 2)).await.unwrap_err();
    assert!(
        matches!(&err, Error::StartFailed { reason, .. } if reason.contains("gave up after 2 restart attempts")),
        "{err:?}"
    );
    assert_eq!(handle.restart_count(), 2);
}

#[tokio::test]
async fn a_call_longer_than_the_heartbeat_timeout_causes_no_miss_and_no_restart() {
    let worker = fast_heartbeats(support::rust_worker()).auto_restart(true);
    let handle = worker.handle();
    handle.start().await.unwrap();
    let slept: f64 = handle.call_dyn("sleep", (1.5,)).await.unwrap();
    assert_eq!(slept, 1.5);
    let metrics = handle.metrics();
    assert_eq!(metrics.heartbeat_misses, 0);
    assert_eq!(metrics.restarts, 0);
    assert!(
        metrics.heartbeat_rtt_avg_ms > 0.0,
        "heartbeats flowed during the call: {metrics:?}"
    );
    handle.stop().await;
}

#[tokio::test]
async fn consecutive_timeouts_open_the_circuit_and_remote_errors_do_not() {
    let worker = support::rust_worker()
        .no_heartbeats()
        .circuit_threshold(3)
        .circuit_cooldown(Duration::from_secs(60));
    let handle = worker.handle();
    handle.start().await.unwrap();
    for _ in 0..5 {
        let _ = handle
            .call_dyn::<()>("throw_error", ("an answer, not a failure",))
            .await;
    }
    assert_eq!(handle.circuit_state(), CircuitState::Closed);
    let quick = CallOptions::new().timeout(Duration::from_millis(50));
    for _ in 0..3 {
        let err = handle
            .call_dyn_with::<f64>("sleep", (1.0,), &quick)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    }
    assert_eq!(handle.circuit_state(), CircuitState::Open);
    let err = handle.call_dyn::<i64>("add", (1, 2)).await.unwrap_err();
    assert!(matches!(err, Error::CircuitOpen { .. }), "{err:?}");
    handle.stop().await;
}

#[tokio::test]
async fn metrics_count_what_the_calls_did() {
    let worker = support::rust_worker();
    let handle = worker.handle();
    handle.start().await.unwrap();
    for i in 0..10 {
        handle.call_dyn::<i64>("add", (i, 1)).await.unwrap();
    }
    for _ in 0..3 {
        handle
            .call_dyn::<()>("throw_error", ("x",))
            .await
            .unwrap_err();
    }
    let quick = CallOptions::new().timeout(Duration::from_millis(50));
    handle
        .call_dyn_with::<f64>("sleep", (0.5,), &quick)
        .await
        .unwrap_err();
    let metrics = handle.metrics();
    assert_eq!(metrics.requests_total, 14);
    assert_eq!(metrics.requests_success, 10);
    assert_eq!(metrics.requests_failed, 4);
    assert_eq!(metrics.in_flight, 0);
    assert!(metrics.max_in_flight >= 1);
    assert!(metrics.latency_min_ms > 0.0);
    assert!(metrics.latency_min_ms <= metrics.latency_p50_ms);
    assert!(metrics.latency_p50_ms <= metrics.latency_p95_ms);
    assert!(metrics.latency_p95_ms <= metrics.latency_p99_ms);
    assert!(metrics.latency_p99_ms <= metrics.latency_max_ms);
    assert!(
        metrics.latency_max_ms >= 50.0,
        "the timed-out call counts its 50 ms"
    );
    handle.stop().await;
}

#[tokio::test]
async fn a_stalled_child_holds_at_most_max_in_flight_calls_and_every_call_ends() {
    let worker = support::rust_worker().no_heartbeats().max_in_flight(10);
    let handle = worker.handle();
    handle.start().await.unwrap();
    let pid = handle.pid().unwrap();
    signal(pid, libc::SIGSTOP);
    let options = CallOptions::new().timeout(Duration::from_secs(1));
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let (handle, options) = (handle.clone(), options.clone());
            tokio::spawn(async move { handle.call_dyn_with::<i64>("add", (i, 1), &options).await })
        })
        .collect();
    assert!(
        eventually(Duration::from_secs(10), || handle.metrics().in_flight
            == 200)
        .await
    );
    assert!(
        handle.pending_calls() <= 10,
        "only 10 calls are sent to a stalled child"
    );
    for call in calls {
        let err = call.await.unwrap().unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    }
    assert_eq!(handle.pending_calls(), 0);
    signal(pid, libc::SIGCONT);
    handle.stop().await;
}

/// A worker behind `/bin/sh` whose first start is quick and whose later starts hang in a
/// `sleep` (a grandchild of ours, whose pid goes to `<dir>/sleeper`) before serving.
fn slow_to_restart(dir: &std::path::Path) -> ParentWorker {
    std::fs::create_dir_all(dir).unwrap();
    let _ = std::fs::remove_file(dir.join("started"));
    let script =
        "if [ -f \"$DIR/started\" ]; then sleep 300 & echo $! > \"$DIR/sleeper\"; wait; fi; \
                  touch \"$DIR/started\"; exec \"$WORKER\"";
    ParentWorker::spawn("/bin/sh")
        .args(["-c", script])
        .env("DIR", dir)
        .env("WORKER", support::hand_worker())
        .auto_restart(true)
        .start_timeout(Duration::from_secs(60))
}

#[tokio::test]
async fn calls_during_a_slow_restart_end_by_their_own_deadline_and_stop_cancels_it() {
    let dir = std::env::temp_dir().join(format!("multifrost-slow-restart-{}", std::process::id()));
    let worker = slow_to_restart(&dir);
    let handle = worker.handle();
    handle.start().await.unwrap();
    signal(handle.pid().unwrap(), libc::SIGKILL);
    // The restart now hangs in its `sleep`: the restarted shell wrote the sleeper's pid.
    assert!(eventually(Duration::from_secs(30), || dir.join("sleeper").exists()).await);
    let sleeper: u32 = loop {
        if let Ok(pid) = std::fs::read_to_string(dir.join("sleeper"))
            .unwrap()
            .trim()
            .parse()
        {
            break pid;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let options = CallOptions::new().timeout(Duration::from_secs(1));
    for _ in 0..3 {
        let asked = Instant::now();
        let err = handle
            .call_dyn_with::<i64>("add", (1, 2), &options)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "a 1 s call waited {:?} for the restart",
            asked.elapsed()
        );
    }
    let stopping = Instant::now();
    handle.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "stop() waited {:?} for the restart",
        stopping.elapsed()
    );
    assert!(
        support::wait_until_gone(sleeper, Duration::from_secs(10)).await,
        "the cancelled attempt's whole process group is ended, the launcher's child included"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_start_that_times_out_ends_the_launchers_children_too() {
    let dir = std::env::temp_dir().join(format!("multifrost-no-connect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _ = std::fs::remove_file(dir.join("sleeper"));
    // Never connects: the shell waits on a sleeping child.
    let worker = ParentWorker::spawn("/bin/sh")
        .args(["-c", "sleep 300 & echo $! > \"$DIR/sleeper\"; wait"])
        .env("DIR", &dir)
        .start_timeout(Duration::from_secs(2));
    let err = worker.handle().start().await.unwrap_err();
    assert!(matches!(err, Error::StartFailed { .. }), "{err:?}");
    let sleeper: u32 = std::fs::read_to_string(dir.join("sleeper"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        support::wait_until_gone(sleeper, Duration::from_secs(10)).await,
        "the launcher's child is killed with it"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
