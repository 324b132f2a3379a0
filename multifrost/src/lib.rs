//! Call functions that live in other processes, written in Rust, Python, Node or Go, as if they
//! were local async methods.
//!
//! A parent spawns a worker (or connects to a running one) and calls it over ZeroMQ with the
//! msgpack protocol `comlink_ipc_v4`, which the Python, Node and Go implementations speak too.
//!
//! `#[multifrost::worker]` on an `impl` block generates the worker's dispatch table (the
//! [`Worker`] trait) and a typed client. Here the dispatch table is called in-process, which is
//! what the child runtime does with every call it receives:
//!
//! ```
//! use std::sync::Arc;
//! use multifrost::{EncodedValue, IncomingCall, Worker};
//!
//! pub struct Math;
//!
//! #[multifrost::worker]
//! impl Math {
//!     pub fn add(&self, a: i64, b: i64) -> i64 {
//!         a + b
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! assert_eq!(Math.list_functions(), ["add"]);
//! let call = IncomingCall {
//!     function: "add".into(),
//!     args: vec![EncodedValue::encode(&1).unwrap(), EncodedValue::encode(&2).unwrap()],
//!     context: Default::default(),
//! };
//! let sum: i64 = Arc::new(Math).dispatch(call).await.unwrap().decode().unwrap();
//! assert_eq!(sum, 3);
//! # }
//! ```
//!
//! A parent that does not compile the worker's code (a Python model, or a Rust worker in
//! another crate) gets the same typed client from a trait, with [`macro@client`]:
//! `#[multifrost::client] trait Model { .. }` and `handle_for::<dyn Model>()`. A Rust worker
//! states that it serves such a trait with `#[multifrost::worker(serves = Model)]`, which makes
//! a drifting signature a compile error.
//!
//! A worker process serves with [`run`]; a parent spawns it and calls it, through the typed
//! client (`handle.call().add(1, 2)`) or by name for a worker in any language:
//!
//! ```no_run
//! # async fn demo() -> multifrost::Result<()> {
//! use multifrost::ParentWorker;
//!
//! let worker = ParentWorker::spawn("math_worker.py");   // configuration only
//! let handle = worker.handle();                          // a cheap, cloneable view
//! handle.start().await?;                                 // spawns, waits until reachable
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
    BlockingCaller, BlockingHandle, CallOptions, Caller, CircuitState, Dynamic, Handle,
    MetricsSnapshot, OutputEvent, OutputStream, ParentWorker, Service,
};
pub use protocol::{EncodedValue, Limits};

pub use multifrost_macros::{client, worker};

/// What `#[multifrost::worker]` expansions call. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::macro_support::*;
    pub use crate::parent::same_namespace;
}

/// Re-exported for implementing [`Worker`] by hand.
pub use async_trait::async_trait;
/// Re-exported: the dynamic msgpack value type used for untyped arguments and results.
pub use rmpv::Value;
