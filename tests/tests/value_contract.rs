//! The portable value contract (PROTOCOL.md section 3) and the limits, on the sending side,
//! over real processes: what a Rust parent refuses to send, what a Rust child refuses to answer
//! with, and what it answers instead of crashing or falling silent. And the shared token
//! guarding `shutdown`.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use multifrost::protocol::{
    encode_shutdown, new_id, EncodedValue, Limits, MessageKind, OutgoingCall, RawMessage,
};
use multifrost::{CallOptions, Error, ParentWorker, Value};
use support::TempHome;
use zeromq::{DealerSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

async fn started(worker: &ParentWorker) -> multifrost::Handle {
    let handle = worker.handle();
    handle.start().await.expect("the worker starts");
    handle
}

/// The reason of an [`Error::Encode`], or a panic naming what came instead.
fn encode_reason(result: multifrost::Result<Value>) -> String {
    match result {
        Err(Error::Encode { reason, .. }) => reason,
        other => panic!("expected Error::Encode, got {other:?}"),
    }
}

/// The message of an [`Error::Remote`], or a panic naming what came instead.
fn remote_message<T: std::fmt::Debug>(result: multifrost::Result<T>) -> String {
    match result {
        Err(Error::Remote { message, .. }) => message,
        other => panic!("expected a remote error, got {other:?}"),
    }
}

/// A dynamic value nested `levels` deep.
fn nested(levels: usize) -> Value {
    let mut value = Value::from(1);
    for _ in 0..levels {
        value = Value::Array(vec![value]);
    }
    value
}

/// Dismantles a deep value level by level: its own drop recurses once per level.
fn drop_deep(mut value: Value) {
    while let Value::Array(mut items) = value {
        match items.pop() {
            Some(inner) => value = inner,
            None => return,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// No crash, whatever the arguments (issue 9, section 5).

#[tokio::test]
async fn a_value_nested_30000_levels_deep_is_refused_naming_the_depth_limit() {
    // It used to overflow the parent's stack in the encoder, aborting the process.
    let worker = support::rust_worker();
    let handle = started(&worker).await;
    let deep = nested(30_000);
    let reason = encode_reason(handle.call_dyn("echo", ("x", &deep)).await);
    assert_eq!(
        reason,
        "argument 2: nesting exceeds the depth limit of 256 levels"
    );
    drop_deep(deep);
    // Where the receiver draws the line: `args` is level 2, so an argument may nest 254 levels.
    let reason = encode_reason(handle.call_dyn("echo", (nested(255),)).await);
    assert!(reason.contains("depth limit of 256 levels"), "{reason}");
    let echoed: Value = handle.call_dyn("echo", (nested(254),)).await.unwrap();
    assert_eq!(echoed, nested(254));
    assert_eq!(handle.call_dyn::<i64>("add", (20, 22)).await.unwrap(), 42);
    handle.stop().await;
}

#[tokio::test]
async fn a_rust_child_answers_a_result_over_a_limit_with_an_error_naming_it() {
    // It used to send the reply, which its parent then refused as a protocol error.
    let worker = support::rust_worker();
    let handle = started(&worker).await;
    let message = remote_message(handle.call_dyn::<Value>("large_data", (100_001,)).await);
    assert!(
        message.contains("array or map of 100001 items exceeds the limit of 100000 items"),
        "{message}"
    );
    let ok: Value = handle.call_dyn("large_data", (100_000,)).await.unwrap();
    assert!(ok.is_map());
    handle.stop().await;
}

#[tokio::test]
async fn an_error_reply_quoting_a_10_mib_function_name_stays_within_the_limits() {
    // `Function '<name>' not found` used to quote the whole name, 10 MiB, over the caller's
    // receive limit for one str: the reply was refused as a protocol error.
    let worker = support::rust_worker();
    let handle = started(&worker).await;
    let name = "f".repeat(Limits::DEFAULT_MAX_STR_BIN_LEN);
    let message = remote_message(handle.call_dyn::<Value>(&name, ()).await);
    assert!(message.starts_with("Function 'ffff"), "{message}");
    assert!(
        message.ends_with("… (10485760 bytes)' not found"),
        "{message}"
    );
    assert!(message.len() < 1024, "{} bytes", message.len());
    // Over the str limit, the parent does not send it at all.
    let longer = "f".repeat(Limits::DEFAULT_MAX_STR_BIN_LEN + 1);
    let reason = encode_reason(handle.call_dyn(&longer, ()).await);
    assert!(
        reason.contains("the function name is a str of 10485761 bytes"),
        "{reason}"
    );
    handle.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The portable value contract (issue 9, section 6).

#[tokio::test]
async fn an_integer_above_i64_is_refused_on_send_naming_the_argument() {
    // A Python worker used to answer i64::MAX without saying so (a Node worker never answers).
    let worker = support::python_worker();
    let handle = started(&worker).await;
    let reason = encode_reason(handle.call_dyn("echo", (u64::MAX,)).await);
    assert!(
        reason.starts_with("argument 1: integer 18446744073709551615 is outside i64"),
        "{reason}"
    );
    let nested = BTreeMap::from([("big", vec![0, u64::MAX])]);
    let reason = encode_reason(handle.call_dyn("echo", (nested,)).await);
    assert!(
        reason.starts_with("argument 1, at [\"big\"][1]: integer 18446744073709551615"),
        "{reason}"
    );
    let options = CallOptions::new().metadata("quota", u64::MAX);
    let reason = encode_reason(handle.call_dyn_with("echo", (1,), &options).await);
    assert!(reason.starts_with("metadata 'quota': integer"), "{reason}");
    // i64::MAX itself is portable, whatever its Rust type.
    let max: u64 = handle.call_dyn("echo", (i64::MAX as u64,)).await.unwrap();
    assert_eq!(max, i64::MAX as u64);
    handle.stop().await;
}

#[tokio::test]
async fn wide_integers_cross_between_rust_peers_that_both_opt_in() {
    let wide = CallOptions::new().wide_integers();
    let worker = support::rust_worker().args(["--wide-integers"]);
    let handle = started(&worker).await;
    let echoed: u64 = handle
        .call_dyn_with("echo", (u64::MAX,), &wide)
        .await
        .unwrap();
    assert_eq!(echoed, u64::MAX);
    handle.stop().await;
}

#[tokio::test]
async fn a_rust_child_refuses_to_answer_with_an_integer_above_i64_unless_it_opts_in() {
    // It used to answer with it: a Python parent gets it, a Node parent cannot decode it.
    let worker = support::rust_worker();
    let handle = started(&worker).await;
    // The argument may come in (Python sends such integers unchecked); the echo may not go out.
    let wide = CallOptions::new().wide_integers();
    let message = remote_message(
        handle
            .call_dyn_with::<u64>("echo", (u64::MAX,), &wide)
            .await,
    );
    assert!(
        message.starts_with(
            "echo: cannot send the result: integer 18446744073709551615 is outside i64"
        ),
        "{message}"
    );
    let nested = BTreeMap::from([("n", vec![u64::MAX])]);
    let message = remote_message(
        handle
            .call_dyn_with::<Value>("echo", (nested,), &wide)
            .await,
    );
    assert!(
        message.starts_with("echo: cannot send the result: at [\"n\"][0]: integer"),
        "{message}"
    );
    assert_eq!(
        handle.call_dyn::<u64>("fibonacci", (92,)).await.unwrap(),
        7_540_113_804_746_346_429
    );
    handle.stop().await;
}

#[tokio::test]
async fn a_map_with_a_non_string_key_is_refused_on_send_naming_where() {
    // A Python worker used to drop the call without a reply: the caller timed out.
    let worker = support::python_worker();
    let handle = started(&worker).await;
    let options = CallOptions::new().timeout(Duration::from_secs(20));
    let int_keys = BTreeMap::from([(1, "a")]);
    let reason = encode_reason(handle.call_dyn_with("echo", (&int_keys,), &options).await);
    assert!(
        reason.starts_with("argument 1: map key int 1 is not a string"),
        "{reason}"
    );
    let inside = ("x", BTreeMap::from([("outer", BTreeMap::from([(2, "b")]))]));
    let reason = encode_reason(handle.call_dyn_with("echo", inside, &options).await);
    assert!(
        reason.starts_with("argument 2, at [\"outer\"]: map key int 2 is not a string"),
        "{reason}"
    );
    let with_metadata = options.clone().metadata("table", &int_keys);
    let reason = encode_reason(handle.call_dyn_with("echo", (1,), &with_metadata).await);
    assert!(
        reason.starts_with("metadata 'table': map key int 1"),
        "{reason}"
    );
    assert_eq!(handle.call_dyn::<i64>("add", (1, 2)).await.unwrap(), 3);
    handle.stop().await;
}

/// Runs a few lines of Python with the test peer imported as `peer`, and returns its stdout.
async fn python_script(script: &str) -> String {
    let prelude = format!(
        "import sys\nsys.path.insert(0, {:?})\nimport comlink_peer as peer\n",
        support::peer_script()
            .parent()
            .unwrap()
            .display()
            .to_string()
    );
    let output = tokio::process::Command::new(support::python())
        .arg("-c")
        .arg(prelude + script)
        .output()
        .await
        .expect("running python");
    assert!(
        output.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn a_rust_child_answers_a_call_with_int_keys_from_python_with_an_error_naming_where() {
    // The child used to echo `{1: "a"}`, which a Python parent then fails to decode.
    let script = format!(
        r#"
parent = peer.Parent.spawn({worker:?})
try:
    for args in [({{1: "a"}},), ("x", {{"outer": [{{2: "b"}}]}})]:
        try:
            print("RESULT", repr(parent.call("echo", *args, timeout=20.0)))
        except peer.RemoteError as e:
            print("ERROR", e.error_text)
    print("ADD", parent.call("add", 1, 2, timeout=20.0))
finally:
    parent.close()
"#,
        worker = support::hand_worker().display().to_string()
    );
    let out = python_script(&script).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("ERROR echo: argument 1: map key int 1 is not a string"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("ERROR echo: argument 2, at [\"outer\"][0]: map key int 2"),
        "{out}"
    );
    assert_eq!(lines[2], "ADD 3", "{out}");
}

// ---------------------------------------------------------------------------------------------
// The shared token guards shutdown too (issue 9, section 7a).

/// A DEALER that is not multifrost's: a stranger on the service's port.
struct Stranger {
    socket: DealerSocket,
}

impl Stranger {
    async fn connect(port: u16) -> Stranger {
        let mut socket = DealerSocket::new();
        socket
            .connect(&format!("tcp://127.0.0.1:{port}"))
            .await
            .expect("connect to the service");
        Stranger { socket }
    }

    async fn send(&mut self, payload: Vec<u8>) {
        let frames = vec![Bytes::new(), Bytes::from(payload)];
        let message = ZmqMessage::try_from(frames).expect("frames");
        self.socket.send(message).await.expect("send");
    }

    /// Calls `function` without a token and returns the reply.
    async fn call(&mut self, function: &str) -> RawMessage {
        let id = new_id();
        let args = EncodedValue::encode(&(1, 2)).unwrap();
        let call = OutgoingCall {
            id: &id,
            function,
            args: &args,
            namespace: "default",
            client_name: None,
            timeout: None,
            metadata: &[],
            auth_token: None,
        };
        self.send(call.encode()).await;
        loop {
            let frames = tokio::time::timeout(Duration::from_secs(20), self.socket.recv())
                .await
                .expect("a reply within 20 s")
                .expect("receive");
            let payload = frames.into_vec().pop().expect("a payload frame");
            let reply = RawMessage::parse(payload, &Limits::default()).expect("a reply");
            if reply.id() == Some(id.as_str()) {
                return reply;
            }
        }
    }
}

#[tokio::test]
async fn a_shutdown_without_the_token_leaves_the_service_running() {
    // It used to stop the service (exit 0, unregistered): anyone on the port could.
    let home = TempHome::new("token-shutdown");
    let mut service = tokio::process::Command::new(support::hand_worker())
        .args(["--service", "guarded"])
        .env("HOME", &home.0)
        .env("MULTIFROST_AUTH_TOKEN", "s3cret")
        .env_remove("COMLINK_ZMQ_PORT")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let entry = home
        .registry()
        .discover("guarded", Duration::from_secs(20))
        .await
        .expect("the service registers");
    let mut stranger = Stranger::connect(entry.port).await;
    stranger.send(encode_shutdown(None)).await;
    // One connection delivers in order: the answer to a later call proves the child has
    // handled the shutdown before it.
    let reply = stranger.call("add").await;
    assert_eq!(reply.kind, MessageKind::Error);
    assert!(
        reply.error().unwrap_or("").starts_with("Unauthorized"),
        "{:?}",
        reply.error()
    );
    assert!(
        service.try_wait().unwrap().is_none(),
        "the service stopped on a stranger's shutdown"
    );
    // Still registered and serving whoever has the token.
    let worker = ParentWorker::connect("guarded")
        .registry(home.registry())
        .auth_token("s3cret");
    let handle = started(&worker).await;
    assert_eq!(handle.call_dyn::<i64>("add", (20, 22)).await.unwrap(), 42);
    handle.stop().await;
    let _ = service.start_kill();
}

#[tokio::test]
async fn the_parents_shutdown_carries_the_token_so_the_child_exits_cleanly() {
    let worker = support::rust_worker()
        .auth_token("s3cret")
        .stop_timeout(Duration::from_secs(20));
    let handle = started(&worker).await;
    assert_eq!(handle.call_dyn::<i64>("add", (1, 1)).await.unwrap(), 2);
    let status = handle.stop().await.expect("an exit status in spawn mode");
    assert_eq!(
        status.code,
        Some(0),
        "killed instead of a clean exit: {status}"
    );
}
