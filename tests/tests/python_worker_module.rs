//! A Rust parent calling a worker written with our Python module (`python/`, installed in the
//! test venv by scripts/python-env.sh): tests/python/module_worker.py. Also runs the module's
//! own unit tests (python/tests) and the Python parent's suite against that worker.

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use multifrost::{Error, OutputStream, ParentWorker, Value};
use serde_bytes::ByteBuf;
use support::TempHome;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn module_worker_script() -> PathBuf {
    support::repo().join("tests/python/module_worker.py")
}

/// The module worker in spawn mode.
fn module_worker() -> ParentWorker {
    ParentWorker::spawn(module_worker_script())
        .executable(support::python())
        .name("py-module")
        .default_timeout(Duration::from_secs(60))
}

async fn started(worker: &ParentWorker) -> multifrost::Handle {
    let handle = worker.handle();
    handle.start().await.expect("the module worker starts");
    handle
}

fn remote_message(err: Error) -> String {
    match err {
        Error::Remote { message, .. } => message,
        other => panic!("expected a remote error, got {other:?}"),
    }
}

#[test]
fn the_python_module_unit_tests_pass() {
    let output = std::process::Command::new(support::python())
        .args(["-m", "unittest", "discover", "-v", "python/tests"])
        .current_dir(support::repo())
        .env_remove("COMLINK_ZMQ_PORT")
        .output()
        .expect("running python -m unittest");
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "python/tests failed:\n{report}");
    assert!(report.contains("\nOK"), "{report}");
}

#[tokio::test]
async fn typed_results_round_trip() {
    let worker = module_worker();
    let handle = started(&worker).await;
    assert_eq!(handle.call_dyn::<i64>("add", (1, 2)).await.unwrap(), 3);
    assert_eq!(
        handle.call_dyn::<f64>("divide", (10, 4)).await.unwrap(),
        2.5
    );
    assert_eq!(
        handle.call_dyn::<u64>("fibonacci", (50,)).await.unwrap(),
        12_586_269_025
    );
    for n in [i64::MIN, i64::MAX] {
        assert_eq!(handle.call_dyn::<i64>("echo", (n,)).await.unwrap(), n);
    }
    assert_eq!(
        handle
            .call_dyn::<String>("echo", ("héllo ✓",))
            .await
            .unwrap(),
        "héllo ✓"
    );
    let bytes = ByteBuf::from(vec![0u8, 255, 1]);
    let echoed: Value = handle.call_dyn("echo", (&bytes,)).await.unwrap();
    assert_eq!(echoed, Value::Binary(vec![0, 255, 1]), "bin stays bin");
    assert_eq!(
        handle.call_dyn::<i64>("async_add", (2, 3)).await.unwrap(),
        5
    );
    let info: HashMap<String, Value> = handle.call_dyn("get_info", ()).await.unwrap();
    assert_eq!(info["language"].as_str(), Some("python"));
    assert_eq!(info["pid"].as_u64(), handle.pid().map(u64::from));
    let unit: () = handle.call_dyn("print_line", ("quiet",)).await.unwrap();
    assert_eq!(unit, ());
    handle.stop().await;
}

#[tokio::test]
async fn remote_errors_carry_the_python_wording_and_traceback() {
    let worker = module_worker();
    let handle = started(&worker).await;
    match handle.call_dyn::<f64>("divide", (1, 0)).await {
        Err(Error::Remote {
            message, traceback, ..
        }) => {
            assert_eq!(message, "ValueError: Cannot divide by zero");
            let traceback = traceback.expect("a traceback");
            assert!(traceback.contains("Traceback"), "{traceback}");
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    let unknown = handle.call_dyn::<Value>("nope", ()).await.unwrap_err();
    assert_eq!(
        remote_message(unknown),
        "AttributeError: Function 'nope' not found"
    );
    let arity = handle.call_dyn::<i64>("add", (1,)).await.unwrap_err();
    assert!(
        remote_message(arity).contains("add() missing 1 required positional argument: 'b'"),
        "the error names the function and the argument"
    );
    assert_eq!(
        handle.call_dyn::<i64>("add", (1, 1)).await.unwrap(),
        2,
        "still serving"
    );
    handle.stop().await;
}

#[tokio::test]
async fn private_and_base_class_methods_are_refused() {
    let worker = module_worker();
    let handle = started(&worker).await;
    let cases = [
        (
            "_secret",
            "AttributeError: Cannot call private method '_secret'",
        ),
        ("_nothing", "AttributeError: Function '_nothing' not found"),
        ("run", "AttributeError: Function 'run' not found"),
    ];
    for (function, expected) in cases {
        let err = handle.call_dyn::<Value>(function, ()).await.unwrap_err();
        assert_eq!(remote_message(err), expected);
    }
    let names: Vec<String> = handle.call_dyn("list_functions", ()).await.unwrap();
    assert!(names.contains(&"add".to_owned()), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with('_') || n == "run"),
        "{names:?}"
    );
    handle.stop().await;
}

#[tokio::test]
async fn every_line_of_a_print_burst_reaches_on_output_in_order_before_the_reply() {
    let lines: Arc<Mutex<Vec<(OutputStream, String, bool)>>> = Arc::default();
    let seen = lines.clone();
    let worker = module_worker().on_output(move |event| {
        seen.lock()
            .unwrap()
            .push((event.stream, event.text.to_owned(), event.from_message));
    });
    let handle = started(&worker).await;
    let count: u32 = handle.call_dyn("print_burst", (2000,)).await.unwrap();
    assert_eq!(count, 2000);
    // No waiting: a call's output is sent before its reply, and read in order.
    let stdout: Vec<String> = lines
        .lock()
        .unwrap()
        .iter()
        .filter(|(stream, text, from_message)| {
            *stream == OutputStream::Stdout && *from_message && text.starts_with("burst ")
        })
        .map(|(_, text, _)| text.clone())
        .collect();
    let expected: Vec<String> = (0..2000).map(|i| format!("burst {i}")).collect();
    assert_eq!(stdout, expected);
    assert!(lines
        .lock()
        .unwrap()
        .iter()
        .any(|(stream, text, from_message)| {
            *stream == OutputStream::Stderr && text == "burst done" && *from_message
        }));
    handle.stop().await;
    let from_pipes: Vec<_> = lines
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, from_message)| !from_message)
        .cloned()
        .collect();
    assert!(
        from_pipes.is_empty(),
        "a spawned worker writes nothing to its inherited stdout/stderr: {from_pipes:?}"
    );
}

#[tokio::test]
async fn a_six_second_call_keeps_the_worker_healthy_under_fast_heartbeats() {
    // Three missed heartbeats would fail the call as unresponsive: the worker must answer them
    // while the call runs (upstream Python answers none until the call is over).
    let worker = module_worker()
        .heartbeat_interval(Duration::from_millis(500))
        .heartbeat_timeout(Duration::from_millis(300));
    let handle = started(&worker).await;
    let started_at = Instant::now();
    let slept: f64 = handle.call_dyn("sleep", (6.0,)).await.unwrap();
    assert_eq!(slept, 6.0);
    assert!(started_at.elapsed() >= Duration::from_secs(6));
    assert!(handle.is_healthy(), "{:?}", handle.metrics());
    let metrics = handle.metrics();
    assert!(metrics.heartbeat_rtt_last_ms > 0.0, "{metrics:?}");
    assert!(metrics.heartbeat_misses < 3, "{metrics:?}");
    handle.stop().await;
}

#[tokio::test]
async fn calls_run_concurrently_when_the_worker_allows_it() {
    let worker = module_worker().env("MODULE_WORKER_CONCURRENCY", "4");
    let handle = started(&worker).await;
    // Each call returns only once four of them are inside the worker at the same time.
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let handle = handle.clone();
            tokio::spawn(async move { handle.call_dyn::<bool>("rendezvous", (4, 20.0)).await })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap().unwrap());
    }
    handle.stop().await;
}

#[tokio::test]
async fn integers_above_i64_are_refused_not_clamped() {
    let worker = module_worker();
    let handle = started(&worker).await;
    let err = handle.call_dyn::<u64>("big", ()).await.unwrap_err();
    let message = remote_message(err);
    assert!(message.starts_with("OverflowError: "), "{message}");
    assert!(
        message.contains("18446744073709551615") && message.contains("i64"),
        "{message}"
    );
    // The parent refuses such an argument unless told the peer takes it: say so, to see what
    // the module does with it.
    let wide = multifrost::CallOptions::new().wide_integers();
    let echoed = handle
        .call_dyn_with::<Value>("echo", (u64::MAX,), &wide)
        .await;
    assert!(
        matches!(echoed, Err(Error::Remote { .. })),
        "the peer imitating upstream clamps this to i64::MAX; the module refuses: {echoed:?}"
    );
    handle.stop().await;
}

#[tokio::test]
async fn connect_mode_serves_by_service_id_and_unregisters_on_sigterm() {
    let home = TempHome::new("pymod");
    let mut service = Command::new(support::python())
        .arg(module_worker_script())
        .args(["--service", "py-module"])
        .env("HOME", &home.0)
        .env_remove("COMLINK_ZMQ_PORT")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(service.stdout.take().unwrap()).lines();
    let ready = lines.next_line().await.unwrap().expect("a ready line");
    assert!(
        ready.starts_with("Service 'py-module' ready on port "),
        "{ready}"
    );
    let entry = home
        .registry()
        .lookup("py-module")
        .await
        .unwrap()
        .expect("registered");
    assert_eq!(entry.pid, service.id().unwrap());

    let handle = ParentWorker::connect("py-module")
        .registry(home.registry())
        .handle();
    handle.start().await.unwrap();
    assert_eq!(
        handle.call_dyn::<i64>("multiply", (6, 7)).await.unwrap(),
        42
    );
    handle.stop().await;

    support::signal(service.id().unwrap(), libc::SIGTERM);
    let status = service.wait().await.unwrap();
    assert_eq!(status.code(), Some(0), "a clean stop on SIGTERM");
    assert_eq!(home.registry().lookup("py-module").await.unwrap(), None);
}

#[tokio::test]
async fn the_python_parent_suite_passes_against_a_module_worker() {
    let python = support::python();
    let script = module_worker_script();
    let args = [
        std::ffi::OsStr::new("parent-suite"),
        python.as_os_str(),
        script.as_os_str(),
    ];
    let report = support::run_python_suite(args, &[]).await;
    for line in [
        "ok print_line (output forwarded as a stdout message)",
        "ok namespace_mismatch (error reply)",
        "ok heartbeat_during_sleep",
    ] {
        assert!(report.contains(line), "{line} missing:\n{report}");
    }
}
