//! A Rust parent calling the Node test peer, which behaves like the upstream Node
//! implementation, quirks included (PROTOCOL.md): integers outside 32 bits come back as
//! float64, errors carry the message only, heartbeats are echoed without `hb_response`, and
//! the child runs one call at a time.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use multifrost::{CallOptions, Error, OutputStream, Value};
use serde_bytes::ByteBuf;

async fn started() -> (multifrost::ParentWorker, multifrost::Handle) {
    started_with(support::node_worker()).await
}

async fn started_with(
    worker: multifrost::ParentWorker,
) -> (multifrost::ParentWorker, multifrost::Handle) {
    let handle = worker.handle();
    handle.start().await.expect("node worker starts");
    (worker, handle)
}

#[tokio::test]
async fn small_integers_and_floats_round_trip() {
    let (_worker, handle) = started().await;
    assert_eq!(handle.call_dyn::<i64>("add", (1, 2)).await.unwrap(), 3);
    assert_eq!(handle.call_dyn::<i64>("add", (-5, 2)).await.unwrap(), -3);
    assert_eq!(
        handle.call_dyn::<f64>("divide", (10, 4)).await.unwrap(),
        2.5
    );
    assert_eq!(
        handle.call_dyn::<i64>("factorial", (10,)).await.unwrap(),
        3_628_800
    );
    handle.stop().await;
}

#[tokio::test]
async fn an_integer_result_above_2_32_arrives_as_float64_and_decodes_as_i64() {
    let (_worker, handle) = started().await;
    // A JS number outside 32 bits is packed by msgpackr as a float64.
    let raw: Value = handle.call_dyn("fibonacci", (50,)).await.unwrap();
    assert_eq!(raw, Value::F64(12_586_269_025.0), "msgpackr's float64");
    assert_eq!(
        handle.call_dyn::<i64>("fibonacci", (50,)).await.unwrap(),
        12_586_269_025
    );
    assert_eq!(
        handle
            .call_dyn::<i64>("multiply", (100_000, -100_000))
            .await
            .unwrap(),
        -10_000_000_000
    );
    handle.stop().await;
}

#[tokio::test]
async fn an_i64_argument_above_2_32_comes_back_as_float64() {
    // The Rust parent sends msgpack int64; msgpackr decodes it as a BigInt, and the Node
    // sanitiser turns a BigInt into a number, which goes back as a float64.
    let (_worker, handle) = started().await;
    let big = 1i64 << 40;
    let raw: Value = handle.call_dyn("echo", (big,)).await.unwrap();
    assert_eq!(raw, Value::F64(big as f64));
    assert_eq!(handle.call_dyn::<i64>("echo", (big,)).await.unwrap(), big);
    assert_eq!(handle.call_dyn::<i64>("echo", (-big,)).await.unwrap(), -big);
    handle.stop().await;
}

#[tokio::test]
async fn integers_beyond_2_53_lose_precision_through_node_and_i64_max_does_not_fit() {
    let (_worker, handle) = started().await;
    let beyond = (1i64 << 53) + 1;
    assert_eq!(
        handle.call_dyn::<i64>("echo", (beyond,)).await.unwrap(),
        1i64 << 53,
        "a float64 cannot hold 2^53 + 1"
    );
    // i64::MAX becomes the float 2^63, one past i64::MAX: an error, never a clamp.
    let err = handle
        .call_dyn::<i64>("echo", (i64::MAX,))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    handle.stop().await;
}

#[tokio::test]
async fn a_node_child_cannot_mix_a_bigint_and_a_number() {
    // 2^40 arrives as a BigInt, 1 as a number: JavaScript refuses `+`, and the error reply
    // carries the TypeError's message only.
    let (_worker, handle) = started().await;
    match handle.call_dyn::<i64>("add", (1i64 << 40, 1)).await {
        Err(Error::Remote {
            message, traceback, ..
        }) => {
            assert!(message.contains("Cannot mix BigInt"), "{message}");
            assert_eq!(traceback, None);
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
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
            Value::Array(vec![Value::from("x"), Value::Nil, Value::Boolean(true)]),
        ]),
    )]);
    assert_eq!(
        handle.call_dyn::<Value>("echo", (&nested,)).await.unwrap(),
        nested
    );
    handle.stop().await;
}

#[tokio::test]
async fn a_method_that_returns_nothing_gives_nil() {
    // The Node sanitiser leaves undefined out: the response has no `result` key.
    let (_worker, handle) = started().await;
    let result: Value = handle.call_dyn("print_line", ("quiet",)).await.unwrap();
    assert_eq!(result, Value::Nil);
    let unit: () = handle.call_dyn("print_line", ("again",)).await.unwrap();
    assert_eq!(unit, ());
    handle.stop().await;
}

#[tokio::test]
async fn remote_errors_carry_the_message_only() {
    let (_worker, handle) = started().await;
    match handle.call_dyn::<f64>("divide", (1, 0)).await {
        Err(Error::Remote {
            message,
            traceback,
            function,
            ..
        }) => {
            assert_eq!(function, "divide");
            assert_eq!(message, "Cannot divide by zero");
            assert_eq!(traceback, None, "Node sends no exception type, no stack");
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    let thrown = handle
        .call_dyn::<Value>("throw_error", ("boom",))
        .await
        .unwrap_err();
    assert!(
        matches!(&thrown, Error::Remote { message, .. } if message == "boom"),
        "{thrown:?}"
    );
    handle.stop().await;
}

#[tokio::test]
async fn unknown_and_private_functions_are_rejected_in_node_wording() {
    let (_worker, handle) = started().await;
    let unknown = handle.call_dyn::<Value>("nope", ()).await.unwrap_err();
    assert!(
        unknown.to_string().contains("Function 'nope' not found"),
        "{unknown}"
    );
    // Unlike Python, Node refuses any `_` name as private, defined or not.
    for name in ["_secret", "_nothing"] {
        let private = handle.call_dyn::<Value>(name, ()).await.unwrap_err();
        assert!(
            private
                .to_string()
                .contains(&format!("Cannot call private method '{name}'")),
            "{private}"
        );
    }
    let not_callable = handle.call_dyn::<Value>("namespace", ()).await.unwrap_err();
    assert!(
        not_callable
            .to_string()
            .contains("'namespace' is not callable"),
        "{not_callable}"
    );
    // Inherited JavaScript members are not methods of the worker.
    let inherited = handle.call_dyn::<Value>("toString", ()).await.unwrap_err();
    assert!(
        inherited
            .to_string()
            .contains("Function 'toString' not found"),
        "{inherited}"
    );
    handle.stop().await;
}

#[tokio::test]
async fn start_and_heartbeat_accept_an_echo_without_hb_response() {
    // start() returns only once the child echoed a heartbeat; the Node child echoes the
    // metadata unchanged, without hb_response.
    let (_worker, handle) = started().await;
    let rtt = handle.heartbeat().await.expect("heartbeat echoed");
    assert!(rtt < Duration::from_secs(3), "rtt {rtt:?}");
    assert!(handle.is_healthy());
    assert_eq!(handle.call_dyn::<i64>("add", (2, 2)).await.unwrap(), 4);
    handle.stop().await;
}

#[tokio::test]
async fn frequent_heartbeats_between_calls_keep_the_node_child_healthy() {
    let worker = support::node_worker()
        .heartbeat_interval(Duration::from_millis(100))
        .heartbeat_timeout(Duration::from_secs(3));
    let (_worker, handle) = started_with(worker).await;
    let answered = support::eventually(Duration::from_secs(10), || {
        handle.metrics().heartbeat_rtt_last_ms > 0.0
    })
    .await;
    let metrics = handle.metrics();
    assert!(answered, "no periodic heartbeat answered: {metrics:?}");
    assert_eq!(metrics.heartbeat_misses, 0, "{metrics:?}");
    assert!(handle.is_healthy());
    assert_eq!(handle.call_dyn::<i64>("add", (1, 1)).await.unwrap(), 2);
    handle.stop().await;
}

#[tokio::test]
async fn per_call_metadata_reaches_the_node_child() {
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
    handle.stop().await;
}

#[tokio::test]
async fn console_output_of_the_node_child_arrives_as_stdout_messages() {
    let seen: Arc<Mutex<Vec<(OutputStream, String, bool)>>> = Arc::default();
    let sink = seen.clone();
    let worker = support::node_worker().on_output(move |event| {
        sink.lock()
            .unwrap()
            .push((event.stream, event.text.to_owned(), event.from_message));
    });
    let (_worker, handle) = started_with(worker).await;
    let marker = format!("node-print-{}", std::process::id());
    let () = handle.call_dyn("print_line", (&marker,)).await.unwrap();
    let arrived = support::eventually(Duration::from_secs(5), || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|(stream, text, from_message)| {
                *stream == OutputStream::Stdout && *from_message && text.contains(&marker)
            })
    })
    .await;
    assert!(arrived, "output seen: {:?}", seen.lock().unwrap());
    handle.stop().await;
}

#[tokio::test]
async fn a_node_child_ignores_another_namespace_so_the_timeout_fires() {
    let (_worker, handle) = started().await;
    let options = CallOptions::new()
        .namespace("other")
        .timeout(Duration::from_millis(500));
    let err = handle
        .call_dyn_with::<i64>("add", (1, 2), &options)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(handle.call_dyn::<i64>("add", (2, 2)).await.unwrap(), 4);
    handle.stop().await;
}

#[tokio::test]
async fn concurrent_calls_to_the_one_at_a_time_child_each_get_their_own_reply() {
    let (_worker, handle) = started().await;
    let calls = (0..500i64).map(|i| {
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
async fn a_call_of_a_few_seconds_succeeds_with_default_supervision() {
    let (_worker, handle) = started().await;
    let started_at = Instant::now();
    let slept: f64 = handle.call_dyn("sleep", (3.0,)).await.unwrap();
    assert_eq!(slept, 3.0);
    assert!(started_at.elapsed() >= Duration::from_secs(3));
    assert!(handle.is_healthy());
    handle.stop().await;
}

#[tokio::test]
async fn a_call_of_a_few_seconds_survives_heartbeats_the_busy_child_cannot_answer() {
    // The Node child answers no heartbeat while a call runs (PROTOCOL.md section 2): the
    // misses during the call must not fail it.
    let worker = support::node_worker()
        .heartbeat_interval(Duration::from_millis(200))
        .heartbeat_timeout(Duration::from_millis(200))
        .heartbeat_max_misses(2);
    let (_worker, handle) = started_with(worker).await;
    let slept: f64 = handle.call_dyn("sleep", (3.0,)).await.unwrap();
    assert_eq!(slept, 3.0);
    assert_eq!(handle.call_dyn::<i64>("add", (1, 2)).await.unwrap(), 3);
    handle.stop().await;
}

#[tokio::test]
async fn killing_the_node_child_fails_the_pending_call_at_once() {
    let (_worker, handle) = started().await;
    let pid = handle.pid().expect("spawned child has a pid");
    let sleeper = {
        let handle = handle.clone();
        tokio::spawn(async move { handle.call_dyn::<f64>("sleep", (30.0,)).await })
    };
    while handle.pending_calls() == 0 {
        tokio::task::yield_now().await;
    }
    let killed_at = Instant::now();
    support::signal(pid, libc::SIGKILL);
    let err = sleeper.await.unwrap().unwrap_err();
    assert!(
        killed_at.elapsed() < Duration::from_secs(10),
        "failed promptly, not at a timeout"
    );
    match err {
        Error::ChildExited { status, .. } => assert_eq!(status.signal, Some(libc::SIGKILL)),
        other => panic!("expected ChildExited, got {other:?}"),
    }
}

#[tokio::test]
async fn stop_sends_shutdown_and_the_node_child_exits_cleanly() {
    let (_worker, handle) = started().await;
    let pid = handle.pid().expect("spawned child has a pid");
    let status = handle.stop().await.expect("an exit status");
    assert_eq!(status.code, Some(0), "{status:?}");
    assert!(support::wait_until_gone(pid, Duration::from_secs(5)).await);
}
