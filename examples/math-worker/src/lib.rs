//! The math worker: the contract the other implementations' cross-language tests call
//! (`add`, `multiply`, `divide`, `factorial`, `fibonacci`, `echo`, `get_info`, `throw_error`,
//! `async_add`, `fibonacci_async`, `large_data`), written once with `#[multifrost::worker]`.
//!
//! Its interface lives in `math-api`, as the client trait `MathApi`: parents depend on that
//! crate only (see `examples/demo`), and this impl block says that it serves it, so a
//! signature here that drifts from the trait is a compile error. The impl block still gives a
//! parent that does depend on this crate the worker's own typed client:
//!
//! ```no_run
//! # async fn demo() -> multifrost::Result<()> {
//! use math_worker::{Math, MathApi};
//! use multifrost::ParentWorker;
//!
//! let worker = ParentWorker::spawn("target/debug/math_worker");
//! let through_the_trait = worker.handle_for::<dyn MathApi>();
//! let through_the_worker = worker.handle_for::<Math>();
//! through_the_trait.start().await?;
//! let sum = through_the_trait.call().add(1, 2).await?;
//! let same = through_the_worker.call().add(1, 2).await?;
//! assert_eq!(sum, same);
//! # Ok(()) }
//! ```

pub use math_api::{Info, LargeData, MathApi};
use multifrost::Value;

/// The worker. It holds no state; a worker that does keeps it behind `&self` (a `Mutex`, an
/// atomic...), because calls run concurrently.
#[derive(Debug, Default)]
pub struct Math;

/// Why a math call failed; its text is what the caller receives.
#[derive(Debug, thiserror::Error)]
pub enum MathError {
    #[error("Cannot divide by zero")]
    DivideByZero,
    #[error("factorial({0}) overflows i64")]
    FactorialOverflow(u32),
    #[error("factorial is not defined for negative numbers (got {0})")]
    NegativeFactorial(i64),
}

fn fib(n: u32) -> i64 {
    let (mut a, mut b) = (0i64, 1i64);
    for _ in 0..n {
        (a, b) = (b, a.wrapping_add(b));
    }
    a
}

#[multifrost::worker(serves = MathApi)]
impl Math {
    /// `a + b`.
    pub fn add(&self, a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }

    /// `a * b`.
    pub fn multiply(&self, a: i64, b: i64) -> i64 {
        a.wrapping_mul(b)
    }

    /// `a / b` as a float; an error when `b` is zero.
    pub fn divide(&self, a: f64, b: f64) -> Result<f64, MathError> {
        if b == 0.0 {
            return Err(MathError::DivideByZero);
        }
        Ok(a / b)
    }

    /// `n!`; an error when it overflows i64 or `n` is negative.
    pub fn factorial(&self, n: i64) -> Result<i64, MathError> {
        let n = u32::try_from(n).map_err(|_| MathError::NegativeFactorial(n))?;
        (1..=n as i64)
            .try_fold(1i64, |acc, k| acc.checked_mul(k))
            .ok_or(MathError::FactorialOverflow(n))
    }

    /// The `n`th Fibonacci number (`fibonacci(50) == 12586269025`).
    pub fn fibonacci(&self, n: u32) -> i64 {
        fib(n)
    }

    /// Returns its argument unchanged, whatever it is.
    pub fn echo(&self, value: Value) -> Value {
        value
    }

    /// `{"language": "rust", "pid": <pid>}`.
    pub fn get_info(&self) -> Info {
        Info {
            language: "rust".into(),
            pid: std::process::id(),
        }
    }

    /// Always fails with `message`.
    pub fn throw_error(&self, message: String) -> Result<(), String> {
        Err(message)
    }

    /// `a + b`, asynchronously.
    pub async fn async_add(&self, a: i64, b: i64) -> i64 {
        tokio::task::yield_now().await;
        a.wrapping_add(b)
    }

    /// The `n`th Fibonacci number, asynchronously.
    pub async fn fibonacci_async(&self, n: u32) -> i64 {
        tokio::task::yield_now().await;
        fib(n)
    }

    /// `{"data": [0, 1, ..., size - 1], "length": size}`.
    pub fn large_data(&self, size: u32) -> LargeData {
        LargeData {
            data: (0..size as i64).collect(),
            length: size as i64,
        }
    }
}

/// The worker process's `main`: spawn mode when started by a parent (`COMLINK_ZMQ_PORT` set),
/// or a long-running service with `--service <id>`.
pub async fn serve_from_args() {
    let mut runner = multifrost::ChildRunner::new(Math);
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == "--service") {
        match args.get(at + 1) {
            Some(id) => runner = runner.service_id(id.clone()),
            None => {
                eprintln!("usage: math_worker [--service <id>]");
                std::process::exit(1);
            }
        }
    }
    runner.run().await;
}
