//! The `child_dispatch` target: the child's real dispatch rules
//! ([`multifrost::child::rules::DispatchRules`], what `child/serve.rs` acts on) on arbitrary
//! payloads, a hand-written [`Worker`] run with the decoded arguments, the reply encoded, and the
//! reply parsed back the way a parent does.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use multifrost::child::rules::{Decision, DispatchRules};
use multifrost::protocol::{encode_error, encode_response, MessageKind, RawMessage};
use multifrost::{CallError, EncodedValue, IncomingCall, Limits, Value, Worker};

use crate::decode::{typed_decodes, Point};
use crate::SMALL_LIMITS;

/// The functions of the fuzzed worker: those of `tests/src/bin/hand_worker.rs` that terminate
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

/// A hand-written worker, like `tests/src/bin/hand_worker.rs`, decoding its arguments with
/// [`IncomingCall::arg`].
pub struct FuzzWorker;

fn reply<T: serde::Serialize>(value: &T) -> Result<EncodedValue, CallError> {
    EncodedValue::encode(value).map_err(|err| CallError::new(err.to_string()))
}

fn reply_value(value: &Value) -> Result<EncodedValue, CallError> {
    EncodedValue::from_value(value).map_err(|err| CallError::new(err.to_string()))
}

fn number(call: &IncomingCall, index: usize, name: &str) -> Result<Value, CallError> {
    let value: Value = call.arg(index, name)?;
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
                let (a, b): (f64, f64) = (call.arg(0, "a")?, call.arg(1, "b")?);
                if b == 0.0 {
                    return Err(CallError::new("Cannot divide by zero"));
                }
                reply(&(a / b))
            }
            "factorial" => {
                let n: u64 = call.arg(0, "n")?;
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
            "throw_error" => Err(CallError::new(call.arg::<String>(0, "message")?)),
            "large_data" => {
                // Bounded here: the hand worker's own large_data allocates whatever it is asked.
                let size: u64 = call.arg(0, "size")?;
                let size = size.min(1000);
                reply(&LargeData {
                    data: (0..size).collect(),
                    length: size,
                })
            }
            "get_metadata" => reply_value(&Value::Map(call.context.metadata_map().to_vec())),
            "first_of" => {
                let list: Vec<Value> = call.arg(0, "list")?;
                reply_value(list.first().unwrap_or(&Value::Nil))
            }
            "sum_list" => {
                let list: Vec<i64> = call.arg(0, "list")?;
                reply(&list.iter().fold(0i64, |acc, v| acc.wrapping_add(*v)))
            }
            "point" => {
                let point: Point = call.arg(0, "point")?;
                reply(&(point.x, point.y, point.label))
            }
            "bytes_len" => {
                let data: serde_bytes::ByteBuf = call.arg(0, "data")?;
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

/// What the child answers to one received payload; `None` when it answers nothing. The
/// decision is the real one ([`DispatchRules::decide`]); acting on it follows
/// `child/serve.rs`, except that a panic of the worker is not caught: here it is a finding.
pub fn child_reply(
    worker: &Arc<FuzzWorker>,
    rules: &DispatchRules,
    payload: &[u8],
) -> Option<Vec<u8>> {
    match rules.decide(payload.to_vec().into()) {
        Decision::Ignore(_) | Decision::Stop | Decision::Cancel(_) => None,
        Decision::Refuse { id, error } => Some(encode_error(&id, error.message())),
        Decision::Reply(reply) => Some(reply),
        Decision::Dispatch(call) => {
            let id = call.context.id.clone();
            Some(match run_now(worker.clone().dispatch(call)) {
                Ok(result) => encode_response(&id, &result),
                Err(error) => encode_error(&id, error.message()),
            })
        }
    }
}

/// The rules of [`FuzzWorker`] (no token) under the default limits and under [`SMALL_LIMITS`],
/// built once like a server's.
fn rules() -> &'static [(Limits, DispatchRules); 2] {
    static RULES: OnceLock<[(Limits, DispatchRules); 2]> = OnceLock::new();
    RULES.get_or_init(|| {
        [Limits::default(), SMALL_LIMITS].map(|limits| {
            let rules = DispatchRules::new(
                FuzzWorker.list_functions(),
                FuzzWorker.namespace(),
                None,
                limits,
            )
            .describing(&FuzzWorker.describe());
            (limits, rules)
        })
    })
}

/// The child's dispatch path on arbitrary bytes, and the parent's reading of its reply.
pub fn child_dispatch(data: &[u8]) {
    let worker = Arc::new(FuzzWorker);
    for (limits, rules) in rules() {
        let Some(reply) = child_reply(&worker, rules, data) else {
            continue;
        };
        // The parent parses every reply our child sends (with the default limits: a reply to a
        // call within the limits stays within them, nested one level less).
        let parsed =
            RawMessage::parse(reply.into(), &Limits::default()).expect("the child's reply parses");
        assert!(parsed.is_current_protocol());
        if *limits == Limits::default() && parsed.kind != MessageKind::Heartbeat {
            assert_eq!(
                parsed.violation, None,
                "the reply to a call within the limits breaks one"
            );
        }
        match parsed.kind {
            MessageKind::Response => typed_decodes(&parsed.result()),
            MessageKind::Error => assert!(parsed.error().is_some(), "an error reply without text"),
            MessageKind::Heartbeat => {}
            other => panic!("the child answered with a {other:?}"),
        }
    }
}
