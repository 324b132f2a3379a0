//! A worker defined with `#[multifrost::worker]` for the tests: call context, sync methods that
//! block, panics. Shared by its binary (tests/src/bin/toolbox_worker.rs) and the tests.

use std::sync::atomic::{AtomicU64, Ordering};

use multifrost::{CallContext, Value};

pub struct Toolbox;

static DROPPED_HOLDS: AtomicU64 = AtomicU64::new(0);
static CANCELS_SEEN: AtomicU64 = AtomicU64::new(0);

/// Adds one to its counter when dropped, unless disarmed (`.0 = None`).
struct CountsIfDropped(Option<&'static AtomicU64>);

impl Drop for CountsIfDropped {
    fn drop(&mut self) {
        if let Some(counter) = self.0 {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

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

    /// Holds for `seconds` (an async method); a hold dropped before its end is counted.
    pub async fn hold(&self, seconds: f64) -> f64 {
        let mut guard = CountsIfDropped(Some(&DROPPED_HOLDS));
        tokio::time::sleep(std::time::Duration::from_secs_f64(seconds)).await;
        guard.0 = None;
        seconds
    }

    /// How many `hold` calls were dropped (cancelled) before their end.
    pub fn dropped_holds(&self) -> u64 {
        DROPPED_HOLDS.load(Ordering::Relaxed)
    }

    /// Waits, blocking its thread (a sync method), until its call is cancelled or `seconds`
    /// pass; returns whether it saw the cancellation, and counts it.
    pub fn wait_for_cancel(&self, ctx: &CallContext, seconds: f64) -> bool {
        let until = std::time::Instant::now() + std::time::Duration::from_secs_f64(seconds);
        while std::time::Instant::now() < until {
            if ctx.is_cancelled() {
                CANCELS_SEEN.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        false
    }

    /// How many `wait_for_cancel` calls saw their cancellation.
    pub fn cancels_seen(&self) -> u64 {
        CANCELS_SEEN.load(Ordering::Relaxed)
    }

    /// Not exposed: skipped (and so never called in these tests).
    #[multifrost(skip)]
    #[allow(dead_code)]
    pub fn internal(&self) -> i64 {
        1
    }
}
