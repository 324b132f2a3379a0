//! A Rust parent calling the Python test peer, which behaves like the Python implementation,
//! quirks included (PROTOCOL.md).

mod support;

use std::time::{Duration, Instant};

use multifrost::{CallOptions, Error, Value};
use serde_bytes::ByteBuf;

async fn started() -> (multifrost::ParentWorker, multifrost::Handle) {
    let worker = support::python_worker();
    let handle = worker.handle();
    handle.start().await.expect("python worker starts");
    (worker, handle)
}

#[tokio::test]
async fn integers_and_floats_round_trip() {
    let (_worker, handle) = started().await;
    assert_eq!(handle.call_dyn::<i64>("add", (1, 2)).await.unwrap(), 3);
    assert_eq!(
        handle.call_dyn::<f64>("divide", (10, 4)).await.unwrap(),
        2.5
    );
    assert_eq!(
        handle.call_dyn::<i64>("echo", (i64::MIN,)).await.unwrap(),
        i64::MIN
    );
    assert_eq!(
        handle.call_dyn::<i64>("echo", (i64::MAX,)).await.unwrap(),
        i64::MAX
    );
    assert_eq!(
        handle.call_dyn::<u64>("fibonacci", (50,)).await.unwrap(),
        12_586_269_025
    );
    handle.stop().await;
}

#[tokio::test]
async fn python_clamps_integers_above_i64_in_replies() {
    // PROTOCOL.md section 3: Python replies clamp integers outside i64 without saying so. The
    // parent refuses to send such an integer unless told the worker takes it: told so here,
    // to watch the quirk.
    let (_worker, handle) = started().await;
    let wide = CallOptions::new().wide_integers();
    let echoed: i64 = handle
        .call_dyn_with("echo", (u64::MAX,), &wide)
        .await
        .unwrap();
    assert_eq!(echoed, i64::MAX);
    handle.stop().await;
}

#[tokio::test]
async fn nan_and_infinity_are_sent_as_nil() {
    let (_worker, handle) = started().await;
    let echoed: Vec<Option<f64>> = handle
        .call_dyn("echo", (vec![1.5, f64::NAN, f64::INFINITY],))
        .await
        .unwrap();
    assert_eq!(echoed, vec![Some(1.5), None, None]);
    handle.stop().await;
}

#[tokio::test]
async fn strings_bytes_nil_and_nested_values_round_trip() {
    let (_worker, handle) = started().await;
    assert_eq!(
        handle
            .call_dyn::<String>("echo", ("héllo ✓",))
            .await
            .unwrap(),
        "héllo ✓"
    );
    let bytes = ByteBuf::from(vec![0u8, 255, 1, 2]);
    let echoed: Value = handle.call_dyn("echo", (&bytes,)).await.unwrap();
    assert_eq!(
        echoed,
        Value::Binary(vec![0, 255, 1, 2]),
        "bin must stay bin"
    );
    assert_eq!(
        handle
            .call_dyn::<Option<i64>>("echo", (None::<i64>,))
            .await
            .unwrap(),
        None
    );
    let nested = Value::Map(vec![(
        Value::from("a"),
        Value::Array(vec![
            Value::from(1),
            Value::Array(vec![Value::from("x"), Value::Nil]),
        ]),
    )]);
    assert_eq!(
        handle.call_dyn::<Value>("echo", (&nested,)).await.unwrap(),
        nested
    );
    handle.stop().await;
}

#[tokio::test]
async fn a_none_result_without_result_key_decodes_as_nil() {
    // Python leaves `result` out of the response when the result is None.
    let (_worker, handle) = started().await;
    let result: Value = handle.call_dyn("print_line", ("quiet",)).await.unwrap();
    assert_eq!(result, Value::Nil);
    let unit: () = handle.call_dyn("print_line", ("again",)).await.unwrap();
    assert_eq!(unit, ());
    handle.stop().await;
}

#[tokio::test]
async fn remote_errors_carry_message_and_traceback() {
    let (_worker, handle) = started().await;
    match handle.call_dyn::<f64>("divide", (1, 0)).await {
        Err(Error::Remote {
            message,
            traceback,
            function,
            ..
        }) => {
            assert_eq!(function, "divide");
            assert_eq!(message, "ValueError: Cannot divide by zero");
            let traceback = traceback.expect("a Python traceback");
            assert!(traceback.contains("Traceback"), "{traceback}");
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    handle.stop().await;
}

#[tokio::test]
async fn unknown_and_private_functions_are_rejected_by_the_python_child() {
    let (_worker, handle) = started().await;
    let unknown = handle.call_dyn::<Value>("nope", ()).await.unwrap_err();
    assert!(
        unknown.to_string().contains("Function 'nope' not found"),
        "{unknown}"
    );
    let private = handle.call_dyn::<Value>("_secret", ()).await.unwrap_err();
    assert!(
        private
            .to_string()
            .contains("Cannot call private method '_secret'"),
        "{private}"
    );
    let undefined_private = handle.call_dyn::<Value>("_nothing", ()).await.unwrap_err();
    assert!(
        undefined_private
            .to_string()
            .contains("Function '_nothing' not found"),
        "{undefined_private}"
    );
    handle.stop().await;
}

#[tokio::test]
async fn a_python_child_ignores_another_namespace_so_the_timeout_fires() {
    let (_worker, handle) = started().await;
    let options = CallOptions::new()
        .namespace("other")
        .timeout(Duration::from_millis(500));
    let err = handle
        .call_dyn_with::<i64>("add", (1, 2), &options)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(
        handle.pending_calls(),
        0,
        "a timed-out call leaves nothing behind"
    );
    // The worker still serves the right namespace.
    assert_eq!(handle.call_dyn::<i64>("add", (2, 2)).await.unwrap(), 4);
    handle.stop().await;
}

#[tokio::test]
async fn a_thousand_concurrent_calls_each_get_their_own_reply() {
    let (_worker, handle) = started().await;
    let calls = (0..1000i64).map(|i| {
        let handle = handle.clone();
        tokio::spawn(async move { (i, handle.call_dyn::<i64>("add", (i, 1000)).await) })
    });
    for call in calls {
        let (i, result) = call.await.unwrap();
        assert_eq!(result.unwrap(), i + 1000);
    }
    assert_eq!(handle.pending_calls(), 0);
    handle.stop().await;
}

#[tokio::test]
async fn killing_the_python_child_fails_the_pending_call_at_once() {
    let (_worker, handle) = started().await;
    let pid = handle.pid().expect("spawned child has a pid");
    let sleeper = {
        let handle = handle.clone();
        tokio::spawn(async move { handle.call_dyn::<f64>("sleep", (30.0,)).await })
    };
    // Wait until the call is in flight, then kill the child.
    while handle.pending_calls() == 0 {
        tokio::task::yield_now().await;
    }
    let killed_at = Instant::now();
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let err = sleeper.await.unwrap().unwrap_err();
    assert!(
        killed_at.elapsed() < Duration::from_secs(10),
        "failed promptly, not at a timeout"
    );
    match err {
        Error::ChildExited { status, .. } => assert_eq!(status.signal, Some(libc::SIGKILL)),
        other => panic!("expected ChildExited, got {other:?}"),
    }
    let after = handle.call_dyn::<i64>("add", (1, 2)).await.unwrap_err();
    assert!(matches!(after, Error::ChildExited { .. }), "{after:?}");
}

#[tokio::test]
async fn per_call_metadata_and_client_name_reach_the_python_child() {
    let (_worker, handle) = started().await;
    let options = CallOptions::new()
        .metadata("token", "s3cret")
        .correlation_id("corr-1");
    let metadata: Value = handle
        .call_dyn_with("get_metadata", (), &options)
        .await
        .unwrap();
    let get = |key: &str| {
        metadata
            .as_map()
            .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some(key)))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("token"), Some(Value::from("s3cret")));
    assert_eq!(get("correlation_id"), Some(Value::from("corr-1")));
    assert!(get("timestamp_sent").and_then(|v| v.as_f64()).is_some());
    handle.stop().await;
}

#[tokio::test]
async fn a_long_call_to_the_serial_python_worker_succeeds_though_it_answers_no_heartbeat() {
    // The Python worker runs one message at a time: no heartbeat is answered while `sleep`
    // runs. Three misses in a row are allowed here, and the call lasts ten heartbeats.
    let worker = support::python_worker()
        .env("PEER_SERIAL", "1")
        .heartbeat_interval(Duration::from_millis(200))
        .heartbeat_timeout(Duration::from_millis(200))
        .heartbeat_max_misses(3);
    let handle = worker.handle();
    handle.start().await.expect("python worker starts");
    let options = CallOptions::new().timeout(Duration::from_secs(120));
    let slept: f64 = handle
        .call_dyn_with("sleep", (3.0,), &options)
        .await
        .expect("a call within its deadline is not failed by missed heartbeats");
    assert_eq!(slept, 3.0);
    let metrics = handle.metrics();
    assert!(
        metrics.heartbeat_misses >= 3,
        "heartbeats were missed: {metrics:?}"
    );
    assert_eq!(metrics.circuit_breaker_trips, 0);
    assert_eq!(handle.circuit_state(), multifrost::CircuitState::Closed);
    assert_eq!(handle.call_dyn::<i64>("add", (1, 2)).await.unwrap(), 3);
    handle.stop().await;
}
