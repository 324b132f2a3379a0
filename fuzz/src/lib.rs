//! The code under fuzz, shared by the cargo-fuzz targets (`fuzz_targets/*.rs`) and by the
//! stable replay test `tests/hostile.rs`, which includes this file with `#[path]`. It must
//! therefore only use what both have: `multifrost` (and its re-exports), `serde`, `serde_bytes`
//! and std.
//!
//! Two entry points:
//! - [`decode_message`]: `RawMessage::parse` on arbitrary bytes, then every accessor and a few
//!   typed decodes, checking the invariants that tie them together.
//! - [`child_dispatch`]: the child's dispatch path, rebuilt from the public API because the real
//!   one (`child::serve::Server::handle_frames`) is private: parse, protocol and namespace
//!   checks, function checks, a hand-written [`Worker`] run with the decoded arguments, the
//!   reply encoded, and the reply parsed back the way a parent does.
//!
//! Panics are the failures: every invariant is an `assert!`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use multifrost::protocol::{
    encode_error, encode_heartbeat_reply, encode_response, MessageKind, RawMessage,
    DEFAULT_NAMESPACE,
};
use multifrost::{CallContext, CallError, EncodedValue, IncomingCall, Limits, Value, Worker};

/// Small limits, so that short fuzz inputs reach the limit paths too.
pub const SMALL_LIMITS: Limits = Limits {
    max_str_bin_len: 16,
    max_items: 6,
    max_depth: 5,
    max_message_len: 512,
};

#[derive(serde::Deserialize, Debug)]
#[allow(dead_code)]
struct Point {
    x: i64,
    y: f64,
    #[serde(default)]
    label: Option<String>,
}

#[derive(serde::Deserialize, Debug)]
#[allow(dead_code)]
enum Shape {
    Circle(f64),
    Rect { w: i64, h: i64 },
    Empty,
}

/// Decodes one value into a handful of types; none may panic, whatever the bytes.
fn typed_decodes(value: &EncodedValue) {
    let dynamic = value.to_value();
    let _ = multifrost::protocol::describe(&dynamic);
    let _ = value.decode::<Value>();
    let _ = value.decode::<i64>();
    let _ = value.decode::<u64>();
    let _ = value.decode::<i8>();
    let _ = value.decode::<f64>();
    let _ = value.decode::<f32>();
    let _ = value.decode::<bool>();
    let _ = value.decode::<String>();
    let _ = value.decode::<char>();
    let _ = value.decode::<serde_bytes::ByteBuf>();
    let _ = value.decode::<Option<i64>>();
    let _ = value.decode::<Vec<i64>>();
    let _ = value.decode::<Vec<String>>();
    let _ = value.decode::<(i64, String)>();
    let _ = value.decode::<HashMap<String, Value>>();
    let _ = value.decode::<Point>();
    let _ = value.decode::<Shape>();
    let _ = value.decode::<()>();
    // Re-encoding a decoded value gives bytes that validate (NaN/Inf become nil on the way),
    // or fails with the limit it breaks.
    match EncodedValue::from_value(&dynamic) {
        Ok(again) => {
            let checked =
                EncodedValue::from_bytes(again.as_bytes().to_vec().into(), &Limits::default());
            assert!(
                checked.is_ok(),
                "a re-encoded value fails validation: {checked:?}"
            );
        }
        Err(err) => assert!(
            matches!(err, multifrost::protocol::EncodeError::Limit { .. }),
            "re-encoding fails for another reason than a limit: {err:?}"
        ),
    }
    // Error texts (they embed previews of the received value) render without panicking.
    if let Err(error) = value.decode::<(i64, i64)>() {
        let _ = error.to_string();
    }
}

/// `RawMessage::parse` and everything a receiver then reads from the message.
pub fn decode_message(data: &[u8]) {
    for limits in [Limits::default(), SMALL_LIMITS] {
        let Ok(message) = RawMessage::parse(data.to_vec().into(), &limits) else {
            continue;
        };
        let _ = message.is_current_protocol();
        let _ = message.kind.as_str();
        if let Some(violation) = &message.violation {
            assert!(
                violation.is_limit(),
                "a violation that is not a limit: {violation:?}"
            );
            let _ = violation.to_string();
        }
        let _ = message.metadata();
        let _ = message.metadata_bytes();
        let clean = message.violation.is_none();
        for arg in message.args().unwrap_or_default() {
            // A value inside a message that broke no limit validates on its own.
            let alone = EncodedValue::from_bytes(arg.as_bytes().to_vec().into(), &limits);
            if clean {
                assert!(
                    alone.is_ok(),
                    "an argument of a clean message fails on its own: {alone:?}"
                );
            }
            typed_decodes(&arg);
        }
        let result = message.result();
        if clean {
            let alone = EncodedValue::from_bytes(result.as_bytes().to_vec().into(), &limits);
            assert!(
                alone.is_ok(),
                "the result of a clean message fails on its own: {alone:?}"
            );
        }
        typed_decodes(&result);
        // What a child answers to a heartbeat must parse back, with the same id.
        let reply = encode_heartbeat_reply(&message);
        let parsed = RawMessage::parse(reply.into(), &Limits::default());
        let parsed = parsed.expect("a heartbeat reply we encoded parses back");
        assert_eq!(
            parsed.id.as_deref().unwrap_or(""),
            message.id.as_deref().unwrap_or("")
        );
    }
}

/// The functions of the fuzzed worker: those of `tests/bin/hand_worker.rs` that terminate
/// quickly whatever their arguments.
const FUNCTIONS: &[&str] = &[
    "add",
    "multiply",
    "divide",
    "factorial",
    "echo",
    "get_info",
    "throw_error",
    "large_data",
    "get_metadata",
    "first_of",
    "sum_list",
    "point",
    "bytes_len",
];

/// A hand-written worker, like `tests/bin/hand_worker.rs`, with typed argument decoding.
pub struct FuzzWorker;

fn arg<T: serde::de::DeserializeOwned>(
    call: &IncomingCall,
    index: usize,
    name: &str,
) -> Result<T, CallError> {
    let value = call.args.get(index).ok_or_else(|| {
        CallError::new(format!(
            "{}: missing argument {} ({name})",
            call.function,
            index + 1
        ))
    })?;
    value.decode().map_err(|err| {
        CallError::new(format!(
            "{}: argument {} ({name}): {err}",
            call.function,
            index + 1
        ))
    })
}

fn reply<T: serde::Serialize>(value: &T) -> Result<EncodedValue, CallError> {
    EncodedValue::encode(value).map_err(|err| CallError::new(err.to_string()))
}

fn reply_value(value: &Value) -> Result<EncodedValue, CallError> {
    EncodedValue::from_value(value).map_err(|err| CallError::new(err.to_string()))
}

fn number(call: &IncomingCall, index: usize, name: &str) -> Result<Value, CallError> {
    let value: Value = arg(call, index, name)?;
    if value.is_number() {
        Ok(value)
    } else {
        Err(CallError::new(format!(
            "{}: argument {} ({name}): expected a number",
            call.function,
            index + 1
        )))
    }
}

fn arithmetic(
    a: &Value,
    b: &Value,
    int_op: fn(i64, i64) -> Option<i64>,
    float_op: fn(f64, f64) -> f64,
) -> Value {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => int_op(x, y).map(Value::from).unwrap_or(Value::Nil),
        _ => Value::from(float_op(
            a.as_f64().unwrap_or(0.0),
            b.as_f64().unwrap_or(0.0),
        )),
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct LargeData {
    data: Vec<u64>,
    length: u64,
}

#[multifrost::async_trait]
impl Worker for FuzzWorker {
    fn list_functions(&self) -> Vec<String> {
        FUNCTIONS.iter().map(|name| name.to_string()).collect()
    }

    async fn dispatch(self: Arc<Self>, call: IncomingCall) -> Result<EncodedValue, CallError> {
        match call.function.as_str() {
            "add" => {
                let sum = arithmetic(
                    &number(&call, 0, "a")?,
                    &number(&call, 1, "b")?,
                    i64::checked_add,
                    |x, y| x + y,
                );
                reply_value(&sum)
            }
            "multiply" => {
                let product = arithmetic(
                    &number(&call, 0, "a")?,
                    &number(&call, 1, "b")?,
                    i64::checked_mul,
                    |x, y| x * y,
                );
                reply_value(&product)
            }
            "divide" => {
                let (a, b): (f64, f64) = (arg(&call, 0, "a")?, arg(&call, 1, "b")?);
                if b == 0.0 {
                    return Err(CallError::new("Cannot divide by zero"));
                }
                reply(&(a / b))
            }
            "factorial" => {
                let n: u64 = arg(&call, 0, "n")?;
                let result = (1..=n).try_fold(1i64, |acc, k| acc.checked_mul(k as i64));
                result.map_or_else(
                    || Err(CallError::new(format!("factorial({n}) overflows i64"))),
                    |v| reply(&v),
                )
            }
            "echo" => call
                .args
                .into_iter()
                .next()
                .ok_or_else(|| CallError::new("echo: missing argument 1 (value)")),
            "get_info" => reply(&("rust", std::process::id())),
            "throw_error" => Err(CallError::new(arg::<String>(&call, 0, "message")?)),
            "large_data" => {
                // Bounded here: the hand worker's own large_data allocates whatever it is asked.
                let size: u64 = arg(&call, 0, "size")?;
                let size = size.min(1000);
                reply(&LargeData {
                    data: (0..size).collect(),
                    length: size,
                })
            }
            "get_metadata" => reply_value(&Value::Map(call.context.metadata)),
            "first_of" => {
                let list: Vec<Value> = arg(&call, 0, "list")?;
                reply_value(list.first().unwrap_or(&Value::Nil))
            }
            "sum_list" => {
                let list: Vec<i64> = arg(&call, 0, "list")?;
                reply(&list.iter().fold(0i64, |acc, v| acc.wrapping_add(*v)))
            }
            "point" => {
                let point: Point = arg(&call, 0, "point")?;
                reply(&(point.x, point.y, point.label))
            }
            "bytes_len" => {
                let data: serde_bytes::ByteBuf = arg(&call, 0, "data")?;
                reply(&data.len())
            }
            other => Err(CallError::function_not_found(other)),
        }
    }
}

/// Runs a future that never waits on I/O (the fuzzed worker's) to completion, without a runtime.
fn run_now<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}

/// What the child answers to one received payload, following `child/serve.rs`
/// (`handle_frames` and `handle_call`) rule by rule; `None` when it answers nothing.
pub fn child_reply(worker: &Arc<FuzzWorker>, payload: &[u8], limits: &Limits) -> Option<Vec<u8>> {
    let message = RawMessage::parse(payload.to_vec().into(), limits).ok()?;
    if !message.is_current_protocol() {
        return None;
    }
    match message.kind {
        MessageKind::Call => {}
        MessageKind::Heartbeat => return Some(encode_heartbeat_reply(&message)),
        _ => return None,
    }
    let id = message.id.clone()?;
    if id.is_empty() {
        return Some(encode_error(&id, "Message missing 'id' field"));
    }
    if let Some(violation) = &message.violation {
        return Some(encode_error(&id, &format!("Message rejected: {violation}")));
    }
    match &message.namespace {
        None => {}
        Some(Some(ns)) if ns == DEFAULT_NAMESPACE => {}
        Some(other) => {
            return Some(encode_error(
                &id,
                &format!(
                    "Namespace mismatch: call for namespace '{}' reached worker in namespace '{}'",
                    other.as_deref().unwrap_or("nil"),
                    DEFAULT_NAMESPACE
                ),
            ))
        }
    }
    let Some(function) = message.function.clone() else {
        return Some(encode_error(&id, "Message missing 'function' field"));
    };
    if function.starts_with('_') {
        return Some(encode_error(
            &id,
            CallError::private_method(&function).message(),
        ));
    }
    if !worker.list_functions().contains(&function) {
        return Some(encode_error(
            &id,
            CallError::function_not_found(&function).message(),
        ));
    }
    let call = IncomingCall {
        args: message.args().unwrap_or_default(),
        context: CallContext {
            id: id.clone(),
            namespace: message
                .namespace
                .clone()
                .flatten()
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
            client_name: message.client_name.clone(),
            metadata: message.metadata(),
        },
        function,
    };
    Some(match run_now(worker.clone().dispatch(call)) {
        Ok(result) => encode_response(&id, &result),
        Err(error) => encode_error(&id, error.message()),
    })
}

/// The child's dispatch path on arbitrary bytes, and the parent's reading of its reply.
pub fn child_dispatch(data: &[u8]) {
    let worker = Arc::new(FuzzWorker);
    for limits in [Limits::default(), SMALL_LIMITS] {
        let Some(reply) = child_reply(&worker, data, &limits) else {
            continue;
        };
        // The parent parses every reply our child sends (with the default limits: a reply to a
        // call within the limits stays within them, nested one level less).
        let parsed =
            RawMessage::parse(reply.into(), &Limits::default()).expect("the child's reply parses");
        assert!(parsed.is_current_protocol());
        if limits == Limits::default() && parsed.kind != MessageKind::Heartbeat {
            assert_eq!(
                parsed.violation, None,
                "the reply to a call within the limits breaks one"
            );
        }
        match parsed.kind {
            MessageKind::Response => typed_decodes(&parsed.result()),
            MessageKind::Error => assert!(parsed.error.is_some(), "an error reply without text"),
            MessageKind::Heartbeat => {}
            other => panic!("the child answered with a {other:?}"),
        }
    }
}
