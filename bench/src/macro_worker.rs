//! The worker of the macro path: `add` and `echo_bytes` written with `#[multifrost::worker]`,
//! which gives the child its dispatch table (`bench_macro_worker` serves it) and the driver its
//! typed client (`handle.call().add(1, 2)`).
//!
//! `add` and `echo_bytes` are plain `fn`s, as most workers write them; the macro runs those on
//! multifrost's threads for sync methods. Their `async` twins run on the runtime itself, so the benchmark can
//! tell the cost of the macro path from the cost of that hand-off.

use bytes::Bytes;

/// The benchmark's `#[multifrost::worker]` worker. It holds no state.
#[derive(Debug, Default)]
pub struct BenchMacroWorker;

#[multifrost::worker]
impl BenchMacroWorker {
    /// `a + b` (wrapping: the benchmark only ever adds 1 and 2).
    pub fn add(&self, a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }

    /// Returns its bytes unchanged; msgpack bin both ways. `Bytes` is a view into the received
    /// call, not a copy.
    pub fn echo_bytes(&self, data: Bytes) -> Bytes {
        data
    }

    /// `add`, as an `async fn`.
    pub async fn add_async(&self, a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }

    /// `echo_bytes`, as an `async fn`.
    pub async fn echo_bytes_async(&self, data: Bytes) -> Bytes {
        data
    }
}
