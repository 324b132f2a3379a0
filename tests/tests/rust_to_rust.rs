//! A Rust parent calling a Rust child over real processes and sockets: lifecycle, errors,
//! concurrency and failure detection.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use multifrost::{CallOptions, Error, OutputStream, ParentWorker, Value};

async fn started() -> (ParentWorker, multifrost::Handle) {
    let worker = support::rust_worker();
    let handle = worker.handle();
    handle.start().await.expect("rust worker starts");
    (worker, handle)
}

fn kill(pid: u32, signal: i32) {
    // SAFETY: plain kill(2) on a process this test started.
    unsafe { libc::kill(pid as i32, signal) };
}

#[tokio::test]
async fn calls_before_start_fail_with_not_started() {
    let worker = support::rust_worker();
    let err = worker
        .handle()
        .call_dyn::<i64>("add", (1, 2))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotStarted { .. }), "{err:?}");
}

#[tokio::test]
async fn every_handle_of_a_worker_shares_one_child() {
    let (worker, handle) = started().await;
    let other = worker.handle();
    assert_eq!(other.pid(), handle.pid());
    other
        .start()
        .await
        .expect("start on a running worker does nothing");
    assert_eq!(other.pid(), handle.pid());
    assert_eq!(other.call_dyn::<i64>("add", (40, 2)).await.unwrap(), 42);
    handle.stop().await;
}

#[tokio::test]
async fn stop_shuts_the_child_down_cleanly_and_later_calls_fail() {
    let (_worker, handle) = started().await;
    let pid = handle.pid().unwrap();
    let status = handle.stop().await.expect("an exit status");
    assert_eq!(status.code, Some(0), "shutdown is a clean exit: {status}");
    assert!(!support::process_alive(pid));
    let err = handle.call_dyn::<i64>("add", (1, 2)).await.unwrap_err();
    assert!(matches!(err, Error::Stopped { .. }), "{err:?}");
}

#[tokio::test]
async fn dropping_the_last_handle_kills_the_child() {
    let (worker, handle) = started().await;
    let pid = handle.pid().unwrap();
    drop(handle);
    drop(worker);
    assert!(
        support::wait_until_gone(pid, Duration::from_secs(10)).await,
        "child {pid} outlived its parent's handles"
    );
}

#[tokio::test]
async fn the_child_dies_when_the_parent_process_is_killed() {
    let mut parent = tokio::process::Command::new(support::orphan_parent())
        .arg(support::hand_worker())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let stdout = parent.stdout.take().unwrap();
    tokio::io::AsyncBufReadExt::read_line(&mut tokio::io::BufReader::new(stdout), &mut line)
        .await
        .unwrap();
    let child_pid: u32 = line
        .trim()
        .parse()
        .expect("the parent prints its child's pid");
    assert!(support::process_alive(child_pid));
    parent.start_kill().unwrap();
    parent.wait().await.unwrap();
    assert!(
        support::wait_until_gone(child_pid, Duration::from_secs(10)).await,
        "orphaned child {child_pid} still runs"
    );
}

#[tokio::test]
async fn a_remote_error_is_returned_and_the_child_keeps_serving() {
    let (_worker, handle) = started().await;
    let err = handle
        .call_dyn::<Value>("throw_error", ("boom",))
        .await
        .unwrap_err();
    match err {
        Error::Remote {
            message, function, ..
        } => {
            assert_eq!(message, "boom");
            assert_eq!(function, "throw_error");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(handle.call_dyn::<i64>("add", (1, 1)).await.unwrap(), 2);
    handle.stop().await;
}

#[tokio::test]
async fn a_panicking_method_becomes_an_error_reply_and_the_child_keeps_serving() {
    let (_worker, handle) = started().await;
    let err = handle
        .call_dyn::<Value>("panic", ("oops",))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("panicked: deliberate panic: oops"),
        "{err}"
    );
    assert_eq!(handle.call_dyn::<i64>("add", (1, 1)).await.unwrap(), 2);
    handle.stop().await;
}

#[tokio::test]
async fn unknown_private_and_missing_function_names_get_the_usual_wording() {
    let (_worker, handle) = started().await;
    let unknown = handle.call_dyn::<Value>("nope", ()).await.unwrap_err();
    assert!(
        unknown.to_string().ends_with("Function 'nope' not found"),
        "{unknown}"
    );
    let private = handle.call_dyn::<Value>("_hidden", ()).await.unwrap_err();
    assert!(
        private
            .to_string()
            .ends_with("Cannot call private method '_hidden'"),
        "{private}"
    );
    handle.stop().await;
}

#[tokio::test]
async fn a_rust_child_answers_another_namespace_with_an_error_naming_both() {
    let (_worker, handle) = started().await;
    let options = CallOptions::new()
        .namespace("billing")
        .timeout(Duration::from_secs(10));
    let err = handle
        .call_dyn_with::<i64>("add", (1, 2), &options)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, Error::Remote { .. }),
        "an error reply, not a timeout: {err:?}"
    );
    assert!(
        text.contains("'billing'") && text.contains("'default'"),
        "{text}"
    );
    handle.stop().await;
}

#[tokio::test]
async fn a_wrong_argument_type_names_the_argument() {
    let (_worker, handle) = started().await;
    let err = handle
        .call_dyn::<Value>("fibonacci", ("ten",))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("fibonacci: argument 1 (n): expected u64, got str \"ten\""),
        "{err}"
    );
    handle.stop().await;
}

#[tokio::test]
async fn a_result_of_the_wrong_type_is_a_decode_error() {
    let (_worker, handle) = started().await;
    let err = handle.call_dyn::<String>("add", (1, 2)).await.unwrap_err();
    match err {
        Error::Decode { function, source } => {
            assert_eq!(function, "add");
            assert_eq!(source.to_string(), "expected String, got int 3");
        }
        other => panic!("{other:?}"),
    }
    handle.stop().await;
}

#[tokio::test]
async fn a_timed_out_call_leaves_nothing_pending_and_the_late_reply_is_dropped() {
    let (_worker, handle) = started().await;
    let options = CallOptions::new().timeout(Duration::from_millis(200));
    let err = handle
        .call_dyn_with::<f64>("sleep", (1.0,), &options)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(handle.pending_calls(), 0);
    // The late reply arrives while another call waits: it must not be confused with it.
    assert_eq!(handle.call_dyn::<f64>("sleep", (1.5,)).await.unwrap(), 1.5);
    handle.stop().await;
}

#[tokio::test]
async fn the_default_timeout_applies_when_a_call_sets_none() {
    let worker = support::rust_worker().default_timeout(Duration::from_millis(200));
    let handle = worker.handle();
    handle.start().await.unwrap();
    let err = handle.call_dyn::<f64>("sleep", (5.0,)).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    let waited = handle
        .call_dyn_with::<f64>("sleep", (0.5,), &CallOptions::new().no_timeout())
        .await
        .unwrap();
    assert_eq!(waited, 0.5);
    handle.stop().await;
}

#[tokio::test]
async fn a_slow_call_does_not_block_others_or_heartbeats() {
    let (_worker, handle) = started().await;
    let slow = {
        let handle = handle.clone();
        tokio::spawn(async move { handle.call_dyn::<f64>("sleep", (2.0,)).await })
    };
    while handle.pending_calls() == 0 {
        tokio::task::yield_now().await;
    }
    let started = Instant::now();
    assert_eq!(handle.call_dyn::<i64>("add", (1, 2)).await.unwrap(), 3);
    handle.heartbeat().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered while the slow call ran"
    );
    assert!(!slow.is_finished());
    assert_eq!(slow.await.unwrap().unwrap(), 2.0);
    handle.stop().await;
}

#[tokio::test]
async fn a_thousand_concurrent_calls_from_many_tasks_are_correlated() {
    let (_worker, handle) = started().await;
    let calls: Vec<_> = (0..1000i64)
        .map(|i| {
            let handle = handle.clone();
            tokio::spawn(async move {
                // Mixed durations, so replies come back out of order.
                let sleep = if i % 10 == 0 { 0.05 } else { 0.0 };
                let slept: f64 = handle.call_dyn("sleep", (sleep,)).await?;
                let sum: i64 = handle.call_dyn("add", (i, i)).await?;
                Ok::<_, Error>((i, slept, sum))
            })
        })
        .collect();
    for call in calls {
        let (i, slept, sum) = call.await.unwrap().unwrap();
        assert_eq!(sum, 2 * i);
        assert_eq!(slept, if i % 10 == 0 { 0.05 } else { 0.0 });
    }
    assert_eq!(handle.pending_calls(), 0);
    handle.stop().await;
}

#[tokio::test]
async fn killing_the_child_fails_every_pending_call_at_once() {
    let (_worker, handle) = started().await;
    let pid = handle.pid().unwrap();
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let handle = handle.clone();
            tokio::spawn(async move { handle.call_dyn::<f64>("sleep", (60.0,)).await })
        })
        .collect();
    while handle.pending_calls() < 100 {
        tokio::task::yield_now().await;
    }
    let killed_at = Instant::now();
    kill(pid, libc::SIGKILL);
    for call in calls {
        let err = call.await.unwrap().unwrap_err();
        assert!(matches!(err, Error::ChildExited { .. }), "{err:?}");
    }
    assert!(killed_at.elapsed() < Duration::from_secs(10));
    assert_eq!(handle.pending_calls(), 0);
}

#[tokio::test]
async fn a_child_that_exits_mid_call_reports_its_exit_status() {
    let (_worker, handle) = started().await;
    let err = handle.call_dyn::<Value>("exit", (3,)).await.unwrap_err();
    match err {
        Error::ChildExited { status, .. } => assert_eq!(status.code, Some(3)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_missing_program_fails_to_start_with_a_clear_error() {
    let worker = ParentWorker::spawn("/nonexistent/worker-binary");
    let err = worker.handle().start().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::StartFailed { .. }), "{err:?}");
    assert!(text.contains("/nonexistent/worker-binary"), "{text}");
    assert!(
        text.contains("cannot run /nonexistent/worker-binary: "),
        "no stray space: {text}"
    );
}

#[tokio::test]
async fn a_program_that_exits_at_once_fails_start_with_its_status() {
    let worker = ParentWorker::spawn("/bin/sh").args(["-c", "exit 7"]);
    let err = worker.handle().start().await.unwrap_err();
    assert!(err.to_string().contains("exit status 7"), "{err}");
}

#[tokio::test]
async fn the_child_output_reaches_the_parent_as_messages() {
    let lines: Arc<Mutex<Vec<(OutputStream, String, bool)>>> = Arc::default();
    let seen = lines.clone();
    let worker = support::rust_worker().on_output(move |event| {
        seen.lock()
            .unwrap()
            .push((event.stream, event.text.to_owned(), event.from_message));
    });
    let handle = worker.handle();
    handle.start().await.unwrap();
    handle
        .call_dyn::<()>("print_line", ("hello from the child",))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = lines
            .lock()
            .unwrap()
            .iter()
            .any(|(stream, text, from_message)| {
                *stream == OutputStream::Stdout && text == "hello from the child" && *from_message
            });
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "output never arrived: {:?}",
            lines.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.stop().await;
}

#[tokio::test]
async fn a_rust_worker_without_a_parent_port_exits_with_status_1() {
    for port in ["80", "70000", "not-a-port"] {
        let output = tokio::process::Command::new(support::hand_worker())
            .env("COMLINK_ZMQ_PORT", port)
            .output()
            .await
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "port {port}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("COMLINK_ZMQ_PORT") && stderr.contains("1024..=65535"),
            "{stderr}"
        );
    }
    let output = tokio::process::Command::new(support::hand_worker())
        .env_remove("COMLINK_ZMQ_PORT")
        .arg("--worker")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
}

#[tokio::test]
async fn heartbeat_returns_a_round_trip_time() {
    let (_worker, handle) = started().await;
    let rtt = handle.heartbeat().await.unwrap();
    assert!(
        rtt > Duration::ZERO && rtt < Duration::from_secs(3),
        "{rtt:?}"
    );
    handle.stop().await;
}

#[tokio::test]
async fn a_shared_token_set_on_both_sides_lets_calls_through() {
    let worker = support::rust_worker().auth_token("open-sesame");
    let handle = worker.handle();
    handle.start().await.unwrap();
    assert_eq!(handle.call_dyn::<i64>("add", (1, 2)).await.unwrap(), 3);
    handle.stop().await;
}

#[tokio::test]
async fn a_child_with_a_token_rejects_calls_without_it() {
    let worker = support::rust_worker().env("MULTIFROST_AUTH_TOKEN", "open-sesame");
    let handle = worker.handle();
    handle.start().await.unwrap();
    let err = handle.call_dyn::<i64>("add", (1, 2)).await.unwrap_err();
    assert!(matches!(err, Error::Remote { .. }), "{err:?}");
    assert!(err.to_string().contains("Unauthorized"), "{err}");
    let wrong = CallOptions::new().metadata("auth_token", "guess");
    let err = handle
        .call_dyn_with::<i64>("add", (1, 2), &wrong)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Unauthorized"), "{err}");
    // Heartbeats still work: the token guards calls only.
    handle.heartbeat().await.unwrap();
    handle.stop().await;
}
