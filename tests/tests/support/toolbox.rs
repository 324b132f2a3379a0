//! A worker defined with `#[multifrost::worker]` for the tests: call context, sync methods that
//! block, panics, typed errors, byte strings. Shared by its binary
//! (tests/src/bin/toolbox_worker.rs) and the tests.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use multifrost::{CallContext, Value};
use serde::{Deserialize, Serialize};

pub struct Toolbox;

/// An error a caller can match on: `Serialize`, so it travels as data beside its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerError {
    Insufficient { available: u64, requested: u64 },
    Frozen,
}

impl fmt::Display for LedgerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LedgerError::Insufficient {
                available,
                requested,
            } => write!(
                f,
                "insufficient funds: {available} available, {requested} requested"
            ),
            LedgerError::Frozen => f.write_str("the ledger is frozen"),
        }
    }
}

impl std::error::Error for LedgerError {}

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

    /// Panics in an async method.
    pub async fn explode_async(&self) -> i64 {
        tokio::task::yield_now().await;
        panic!("async boom")
    }

    /// Takes `amount` out of a balance of 100; a typed error otherwise (0 means frozen).
    pub fn withdraw(&self, amount: u64) -> Result<u64, LedgerError> {
        match amount {
            0 => Err(LedgerError::Frozen),
            1..=100 => Ok(100 - amount),
            requested => Err(LedgerError::Insufficient {
                available: 100,
                requested,
            }),
        }
    }

    /// Returns its bytes unchanged (sent back as msgpack bin).
    pub fn echo_bytes(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }

    /// `len` bytes counting up from 0 (wrapping), as `bytes::Bytes`; none for a zero `len`.
    pub async fn count_bytes(&self, len: usize) -> Option<bytes::Bytes> {
        (len > 0).then(|| (0..len).map(|i| i as u8).collect())
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
