//! A worker written against the `Worker` trait by hand, the way a dynamic worker would be.
//! It exposes the cross-language math-worker contract plus a few test helpers.

use std::sync::Arc;
use std::time::Duration;

use multifrost::{CallError, EncodedValue, IncomingCall, Value, Worker};

struct HandWorker;

/// How many `zeros` replies were built.
static ZEROS_SERVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

const FUNCTIONS: &[&str] = &[
    "add",
    "multiply",
    "divide",
    "factorial",
    "fibonacci",
    "echo",
    "get_info",
    "throw_error",
    "async_add",
    "fibonacci_async",
    "large_data",
    "sleep",
    "print_line",
    "print_lines",
    "zeros",
    "zeros_served",
    "get_metadata",
    "panic",
    "exit",
];

fn reply<T: serde::Serialize>(value: &T) -> Result<EncodedValue, CallError> {
    EncodedValue::encode(value).map_err(|err| CallError::new(err.to_string()))
}

fn reply_value(value: &Value) -> Result<EncodedValue, CallError> {
    EncodedValue::from_value(value).map_err(|err| CallError::new(err.to_string()))
}

fn fibonacci(n: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a + b);
    }
    a
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

/// Adds or multiplies as integers when both are integers, else as floats.
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

#[multifrost::async_trait]
impl Worker for HandWorker {
    fn list_functions(&self) -> Vec<String> {
        FUNCTIONS.iter().map(|name| name.to_string()).collect()
    }

    async fn dispatch(self: Arc<Self>, call: IncomingCall) -> Result<EncodedValue, CallError> {
        match call.function.as_str() {
            "add" | "async_add" => {
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
            "fibonacci" | "fibonacci_async" => reply(&fibonacci(call.arg(0, "n")?)),
            "echo" => call
                .args
                .into_iter()
                .next()
                .ok_or_else(|| CallError::new("echo: missing argument 1 (value)")),
            "get_info" => reply(&serde_json_like_info()),
            "throw_error" => Err(CallError::new(call.arg::<String>(0, "message")?)),
            "large_data" => {
                let size: u64 = call.arg(0, "size")?;
                let data: Vec<u64> = (0..size).collect();
                reply(&LargeData { data, length: size })
            }
            "sleep" => {
                let seconds: f64 = call.arg(0, "seconds")?;
                tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
                reply(&seconds)
            }
            "print_line" => {
                let text: String = call.arg(0, "text")?;
                println!("{text}");
                Ok(EncodedValue::nil())
            }
            "zeros" => {
                // `len` zero bytes, as bin; counted once built.
                let len: usize = call.arg(0, "len")?;
                let bytes = EncodedValue::encode(&serde_bytes::ByteBuf::from(vec![0u8; len]));
                ZEROS_SERVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                bytes.map_err(|err| CallError::new(err.to_string()))
            }
            "zeros_served" => reply(&ZEROS_SERVED.load(std::sync::atomic::Ordering::Relaxed)),
            "print_lines" => {
                // `count` numbered lines of about 100 bytes, on stdout or (`"stderr"`) stderr.
                let count: u64 = call.arg(0, "count")?;
                let to_stderr = call.args.len() > 1 && call.arg::<String>(1, "stream")? == "stderr";
                let padding = "x".repeat(88);
                for i in 0..count {
                    if to_stderr {
                        eprintln!("line {i:06} {padding}");
                    } else {
                        println!("line {i:06} {padding}");
                    }
                }
                reply(&count)
            }
            "get_metadata" => reply_value(&Value::Map(call.context.metadata_map().to_vec())),
            "panic" => panic!("deliberate panic: {}", call.arg::<String>(0, "message")?),
            "exit" => std::process::exit(call.arg(0, "code")?),
            other => Err(CallError::function_not_found(other)),
        }
    }
}

#[derive(serde::Serialize)]
struct LargeData {
    data: Vec<u64>,
    length: u64,
}

#[derive(serde::Serialize)]
struct Info {
    language: &'static str,
    pid: u32,
}

fn serde_json_like_info() -> Info {
    Info {
        language: "rust",
        pid: std::process::id(),
    }
}

/// `hand_worker` serves in spawn mode; `hand_worker --service <id>` in connect mode;
/// `--wide-integers` lets its results hold integers above i64::MAX (for Rust parents).
#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut runner = multifrost::ChildRunner::new(HandWorker)
        .wide_integers(args.iter().any(|a| a == "--wide-integers"));
    if let Some(at) = args.iter().position(|a| a == "--service") {
        runner = runner.service_id(args.get(at + 1).expect("--service <id>").clone());
    }
    runner.run().await;
}
