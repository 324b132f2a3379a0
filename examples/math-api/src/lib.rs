//! The math worker's interface, the contract the cross-language tests call, as a
//! `#[multifrost::client]` trait: a parent depends on this crate only, whatever language the
//! worker is written in, and never compiles the worker.
//!
//! ```no_run
//! # async fn demo() -> multifrost::Result<()> {
//! use math_api::MathApi;
//! use multifrost::ParentWorker;
//!
//! // The Rust worker (examples/math-worker), or the Python one: the same client.
//! let worker = ParentWorker::spawn("target/release/math_worker");
//! let handle = worker.handle_for::<dyn MathApi>();
//! handle.start().await?;
//! let sum = handle.call().add(1, 2).await?;             // checked at compile time
//! let same: i64 = handle.call_dyn("add", (1, 2)).await?; // by name, for any worker
//! assert_eq!(sum, same);
//! # Ok(()) }
//! ```
//!
//! The Rust worker says `#[multifrost::worker(serves = math_api::MathApi)]`, so a signature of
//! its that drifts from this trait is a compile error there.

use multifrost::Value;
use serde::{Deserialize, Serialize};

/// What `get_info` returns: a map with field names, as Python and Node expect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    pub language: String,
    pub pid: u32,
}

/// What `large_data` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LargeData {
    pub data: Vec<i64>,
    pub length: i64,
}

/// The math contract. Errors the worker reports (`divide` by zero, `factorial` overflow,
/// `throw_error`) arrive as `multifrost::Error::Remote`.
#[multifrost::client]
pub trait MathApi {
    /// `a + b`.
    fn add(&self, a: i64, b: i64) -> i64;

    /// `a * b`.
    fn multiply(&self, a: i64, b: i64) -> i64;

    /// `a / b` as a float; fails when `b` is zero.
    fn divide(&self, a: f64, b: f64) -> f64;

    /// `n!`; fails when it overflows i64 or `n` is negative.
    fn factorial(&self, n: i64) -> i64;

    /// The `n`th Fibonacci number (`fibonacci(50) == 12586269025`).
    fn fibonacci(&self, n: u32) -> i64;

    /// Returns its argument unchanged, whatever it is.
    fn echo(&self, value: Value) -> Value;

    /// The worker's language and process id.
    fn get_info(&self) -> Info;

    /// Always fails with `message`.
    fn throw_error(&self, message: String);

    /// `a + b`, computed asynchronously by the worker.
    async fn async_add(&self, a: i64, b: i64) -> i64;

    /// The `n`th Fibonacci number, computed asynchronously by the worker.
    async fn fibonacci_async(&self, n: u32) -> i64;

    /// `{"data": [0, 1, ..., size - 1], "length": size}`.
    fn large_data(&self, size: u32) -> LargeData;
}
