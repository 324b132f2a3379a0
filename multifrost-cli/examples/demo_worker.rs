//! A small worker to try the `multifrost` command line against (the CLI's own tests use it).
//!
//! ```sh
//! cargo run -p multifrost-cli --example demo_worker -- --service demo &   # connect mode
//! multifrost call --service demo --wait 10 add 1 2
//! multifrost call --spawn 'target/debug/examples/demo_worker' echo '{"a": 1}'  # spawn mode
//! ```
//!
//! Methods: `add(a, b)` (integers), `echo(value)`, `sleep(seconds)`, `metadata()` (the call's
//! metadata map), `argv()` (this process's arguments after the program), and `fail(message)`,
//! which answers with an error carrying a traceback, the way a Python worker does.

use std::sync::Arc;
use std::time::Duration;

use multifrost::{CallError, ChildRunner, EncodedValue, IncomingCall, Value, Worker};

struct Demo;

const FUNCTIONS: &[&str] = &["add", "echo", "sleep", "metadata", "argv", "fail"];

fn encode(value: &Value) -> Result<EncodedValue, CallError> {
    EncodedValue::from_value(value).map_err(|err| CallError::new(err.to_string()))
}

#[multifrost::async_trait]
impl Worker for Demo {
    fn list_functions(&self) -> Vec<String> {
        FUNCTIONS.iter().map(|name| name.to_string()).collect()
    }

    async fn dispatch(self: Arc<Self>, call: IncomingCall) -> Result<EncodedValue, CallError> {
        match call.function.as_str() {
            "add" => {
                let a: i64 = call.arg(0, "a")?;
                let b: i64 = call.arg(1, "b")?;
                let sum = a
                    .checked_add(b)
                    .ok_or_else(|| CallError::new("add: the sum does not fit in i64"))?;
                encode(&Value::from(sum))
            }
            "echo" => call
                .args
                .into_iter()
                .next()
                .ok_or_else(|| CallError::new("echo: missing argument 1 (value)")),
            "sleep" => {
                let seconds: f64 = call.arg(0, "seconds")?;
                tokio::time::sleep(Duration::try_from_secs_f64(seconds).unwrap_or_default()).await;
                encode(&Value::Nil)
            }
            "metadata" => encode(&Value::Map(call.context.metadata_map().to_vec())),
            "argv" => encode(&Value::Array(
                std::env::args().skip(1).map(Value::from).collect(),
            )),
            "fail" => {
                let message: String = call.arg(0, "message")?;
                Err(CallError::new(format!(
                    "ValueError: {message}\nTraceback (most recent call last):\n  \
                     File \"demo_worker.rs\", in fail\nValueError: {message}"
                )))
            }
            other => Err(CallError::function_not_found(other)),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // A Rust peer takes integers above i64::MAX: this one echoes them (`--allow-u64`).
    let mut runner = ChildRunner::new(Demo).wide_integers(true);
    if let Some(index) = args.iter().position(|arg| arg == "--service") {
        match args.get(index + 1) {
            Some(id) => runner = runner.service_id(id),
            None => {
                eprintln!("usage: demo_worker [--service ID]");
                std::process::exit(2);
            }
        }
    }
    runner.run().await
}
