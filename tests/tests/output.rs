//! A Rust child's output over real processes: nothing lost under load, what a call printed
//! arrives before its reply, `stop()` collects what is left, fatal errors stay visible.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use multifrost::{CallOptions, OutputStream, ParentWorker};

/// The output lines a worker sent, with the stream each came on.
type Lines = Arc<Mutex<Vec<(OutputStream, String)>>>;

/// A worker whose output lines are collected.
fn collecting(worker: ParentWorker) -> (ParentWorker, Lines) {
    let lines: Lines = Arc::default();
    let sink = lines.clone();
    let worker = worker.on_output(move |event| {
        sink.lock()
            .unwrap()
            .push((event.stream, event.text.to_owned()));
    });
    (worker, lines)
}

/// Checks that `lines` holds exactly `count` numbered lines, in order.
fn assert_numbered(lines: &[(OutputStream, String)], count: usize, stream: OutputStream) {
    let numbered: Vec<&str> = lines
        .iter()
        .filter(|(s, text)| *s == stream && text.starts_with("line "))
        .map(|(_, text)| text.as_str())
        .collect();
    assert_eq!(numbered.len(), count, "lines delivered");
    for (i, text) in numbered.iter().enumerate() {
        assert!(
            text.starts_with(&format!("line {i:06} ")),
            "line {i} out of order or damaged: {text:?}"
        );
    }
}

#[tokio::test]
async fn a_hundred_thousand_lines_all_arrive_before_the_reply() {
    let (worker, lines) = collecting(support::rust_worker());
    let handle = worker.handle();
    handle.start().await.unwrap();
    let options = CallOptions::new().timeout(Duration::from_secs(300));
    let printed: u64 = handle
        .call_dyn_with("print_lines", (100_000,), &options)
        .await
        .unwrap();
    assert_eq!(printed, 100_000);
    // No waiting: what the call printed came before its reply.
    assert_numbered(&lines.lock().unwrap(), 100_000, OutputStream::Stdout);
    handle.stop().await;
}

#[tokio::test]
async fn stderr_lines_arrive_before_the_reply_too() {
    let (worker, lines) = collecting(support::rust_worker());
    let handle = worker.handle();
    handle.start().await.unwrap();
    let printed: u64 = handle
        .call_dyn("print_lines", (5_000, "stderr"))
        .await
        .unwrap();
    assert_eq!(printed, 5_000);
    assert_numbered(&lines.lock().unwrap(), 5_000, OutputStream::Stderr);
    handle.stop().await;
}

#[tokio::test]
async fn stop_right_after_a_printing_call_loses_no_line() {
    for _ in 0..5 {
        let (worker, lines) = collecting(support::rust_worker());
        let handle = worker.handle();
        handle.start().await.unwrap();
        let printed: u64 = handle.call_dyn("print_lines", (500,)).await.unwrap();
        assert_eq!(printed, 500);
        handle.stop().await;
        assert_numbered(&lines.lock().unwrap(), 500, OutputStream::Stdout);
    }
}

#[tokio::test]
async fn a_fatal_error_after_output_capture_reaches_the_original_stderr() {
    // A port nothing listens on: the child captures its output, then cannot reach the parent.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let output = tokio::process::Command::new(support::hand_worker())
        .env("COMLINK_ZMQ_PORT", port.to_string())
        .stdin(std::process::Stdio::null())
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("the child exits")
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("multifrost worker: fatal:"),
        "the fatal message is visible: {stderr:?}"
    );
}

#[tokio::test]
async fn without_a_tracing_subscriber_the_output_shows_on_the_parents_stderr() {
    let parent = tokio::process::Command::new(env!("CARGO_BIN_EXE_printing_parent"))
        .arg(support::hand_worker())
        .stdin(std::process::Stdio::null())
        .output();
    let parent = tokio::time::timeout(Duration::from_secs(60), parent)
        .await
        .expect("the parent ends")
        .unwrap();
    assert!(parent.status.success(), "{parent:?}");
    let stderr = String::from_utf8_lossy(&parent.stderr);
    assert!(
        stderr.contains("[hand_worker STDOUT]: visible line"),
        "the worker's line is visible: {stderr:?}"
    );
}

#[tokio::test]
async fn a_python_parent_gets_every_line_of_a_burst_before_the_reply() {
    let burst = tokio::process::Command::new(support::python())
        .arg(support::peer_script())
        .args(["parent-burst"])
        .arg(support::hand_worker())
        .arg("5000")
        .stdin(std::process::Stdio::null())
        .output();
    let burst = tokio::time::timeout(Duration::from_secs(300), burst)
        .await
        .expect("the Python parent ends")
        .unwrap();
    let report = String::from_utf8_lossy(&burst.stdout);
    assert!(
        burst.status.success(),
        "{report} {}",
        String::from_utf8_lossy(&burst.stderr)
    );
    assert!(
        report.contains("BURST printed=5000 received=5000 in_order=True"),
        "{report}"
    );
}
