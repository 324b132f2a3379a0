//! A worker defined with `#[multifrost::worker]` for the tests: call context, sync methods that
//! block, panics. Shared by its binary (tests/src/bin/toolbox_worker.rs) and the tests.

use multifrost::{CallContext, Value};

pub struct Toolbox;

#[multifrost::worker(namespace = "tools")]
impl Toolbox {
    /// Blocks its thread for `seconds` (a sync method: it runs on the blocking pool).
    pub fn sleep_sync(&self, seconds: f64) -> f64 {
        std::thread::sleep(std::time::Duration::from_secs_f64(seconds));
        seconds
    }

    /// The metadata value under `key` in this call, read through the call context.
    pub fn metadata(&self, ctx: &CallContext, key: String) -> Option<Value> {
        ctx.metadata(&key).cloned()
    }

    /// What the context says about the caller: (client name, namespace, has deadline).
    pub async fn who_called(&self, ctx: &CallContext) -> (Option<String>, String, bool) {
        (
            ctx.client_name.clone(),
            ctx.namespace.clone(),
            ctx.deadline().is_some(),
        )
    }

    /// Exposed under a camelCase name, as a Node caller would expect.
    #[multifrost(rename = "sumAll")]
    pub fn sum_all(&self, values: Vec<i64>, scale: Option<i64>) -> i64 {
        values.iter().sum::<i64>() * scale.unwrap_or(1)
    }

    /// Panics in a sync method.
    pub fn explode(&self) -> i64 {
        panic!("sync boom")
    }

    /// Not exposed: skipped (and so never called in these tests).
    #[multifrost(skip)]
    #[allow(dead_code)]
    pub fn internal(&self) -> i64 {
        1
    }
}
