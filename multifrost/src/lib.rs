//! Call functions that live in other processes, written in Rust, Python, Node or Go, as if they
//! were local async methods.
//!
//! A parent spawns a worker (or connects to a running one) and calls it over ZeroMQ with the
//! msgpack protocol `comlink_ipc_v4`, which the Python, Node and Go implementations speak too.
//!
//! ```no_run
//! # async fn demo() -> multifrost::Result<()> {
//! use multifrost::ParentWorker;
//!
//! let worker = ParentWorker::spawn("math_worker.py");
//! let handle = worker.handle();
//! handle.start().await?;
//! let sum: i64 = handle.call_dyn("add", (1, 2)).await?;
//! assert_eq!(sum, 3);
//! handle.stop().await;
//! # Ok(()) }
//! ```

pub mod child;
mod error;
mod macro_support;
pub mod parent;
pub mod protocol;
pub mod registry;
mod transport;

pub use child::{run, CallContext, CallError, ChildRunner, IncomingCall, Worker};
pub use error::{Error, ExitStatus, Result};
pub use parent::{
    BlockingCaller, BlockingHandle, CallOptions, Caller, CircuitState, Dynamic, Handle, MetricsSnapshot,
    OutputEvent, OutputStream, ParentWorker, Service,
};
pub use protocol::{EncodedValue, Limits};

pub use multifrost_macros::worker;

/// What `#[multifrost::worker]` expansions call. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::macro_support::*;
}

/// Re-exported for implementing [`Worker`] by hand.
pub use async_trait::async_trait;
/// Re-exported: the dynamic msgpack value type used for untyped arguments and results.
pub use rmpv::Value;
