//! The multifrost child of the benchmark: `echo(value)` and `add(a, b)`, implemented by hand
//! against [`multifrost::Worker`]. It runs on the tokio flavour the driver asks for
//! (`MULTIFROST_BENCH_FLAVOUR`; multi-thread, like `#[tokio::main]`, when unset).

use std::sync::Arc;

use multifrost::{CallError, EncodedValue, IncomingCall, Worker};
use multifrost_bench::Flavour;

struct BenchWorker;

#[multifrost::async_trait]
impl Worker for BenchWorker {
    fn list_functions(&self) -> Vec<String> {
        vec!["echo".into(), "add".into()]
    }

    async fn dispatch(self: Arc<Self>, call: IncomingCall) -> Result<EncodedValue, CallError> {
        match call.function.as_str() {
            // The argument goes back still encoded: no decode, no re-encode.
            "echo" => call
                .args
                .into_iter()
                .next()
                .ok_or_else(|| CallError::new("echo: missing argument 1 (value)")),
            "add" => {
                let (a, b): (i64, i64) = (call.arg(0, "a")?, call.arg(1, "b")?);
                let sum = a
                    .checked_add(b)
                    .ok_or_else(|| CallError::new(format!("add: {a} + {b} overflows i64")))?;
                EncodedValue::encode(&sum).map_err(|err| CallError::new(err.to_string()))
            }
            other => Err(CallError::function_not_found(other)),
        }
    }
}

#[cfg(feature = "count-allocations")]
#[global_allocator]
static ALLOCATOR: multifrost_bench::alloc_count::Counting = multifrost_bench::alloc_count::Counting;

fn main() {
    #[cfg(feature = "count-allocations")]
    multifrost_bench::alloc_count::report_to_dir_from_env();
    let runtime = Flavour::from_env().runtime().expect("tokio runtime");
    runtime.block_on(multifrost::run(BenchWorker));
}
