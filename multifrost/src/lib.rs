//! Call functions that live in other processes, written in Rust, Python, Node or Go, as if they
//! were local async methods. Linux only (it relies on the parent-death signal, /proc and
//! pipe2).
//!
//! A parent spawns a worker (or connects to a running one) and calls it over ZeroMQ with the
//! msgpack protocol `comlink_ipc_v4`, which the Python, Node and Go implementations speak too:
//!
//! ```no_run
//! # async fn demo() -> multifrost::Result<()> {
//! use multifrost::ParentWorker;
//!
//! let worker = ParentWorker::spawn("math_worker.py");   // configuration only
//! let handle = worker.handle();                          // a cheap, cloneable view
//! handle.start().await?;                                 // spawns, waits until it answers
//! let sum: i64 = handle.call_dyn("add", (1, 2)).await?;  // any worker, by name
//! assert_eq!(sum, 3);
//! handle.stop().await;
//! # Ok(()) }
//! ```
//!
//! `#[multifrost::worker]` on an `impl` block makes a Rust worker: it generates the dispatch
//! table (the [`Worker`] trait), served by [`run`] in the worker's process, and a typed client
//! for Rust parents (`handle.call().add(1, 2)`). Here the dispatch table is called in-process,
//! which is what the child runtime does with every call it receives:
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

#![warn(missing_docs)]

// Everything below is Linux-only; elsewhere this one error is all the compiler reports.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "multifrost supports Linux only: it relies on the parent-death signal (prctl), /proc and pipe2"
);

#[cfg(target_os = "linux")]
pub mod child;
#[cfg(target_os = "linux")]
mod error;
#[cfg(target_os = "linux")]
mod macro_support;
#[cfg(target_os = "linux")]
pub mod parent;
#[cfg(target_os = "linux")]
mod procfs;
#[cfg(target_os = "linux")]
pub mod protocol;
#[cfg(target_os = "linux")]
pub mod registry;
#[cfg(target_os = "linux")]
mod transport;

#[cfg(target_os = "linux")]
pub use child::{run, CallContext, CallError, ChildRunner, IncomingCall, Worker};
#[cfg(target_os = "linux")]
pub use error::{Error, ExitStatus, Result};
#[cfg(target_os = "linux")]
pub use parent::{
    BlockingCaller, BlockingHandle, CallOptions, Caller, CircuitState, Dynamic, Handle,
    MetricsSnapshot, OutputEvent, OutputStream, ParentWorker, Service,
};
#[cfg(target_os = "linux")]
pub use protocol::{EncodedValue, Limits};

#[cfg(target_os = "linux")]
pub use multifrost_macros::{client, worker};

/// What `#[multifrost::worker]` expansions call. Not a public API.
#[doc(hidden)]
#[cfg(target_os = "linux")]
pub mod __private {
    pub use crate::child::BlockingCall;
    pub use crate::macro_support::*;
    pub use crate::parent::same_namespace;
}

/// Re-exported for implementing [`Worker`] by hand.
#[cfg(target_os = "linux")]
pub use async_trait::async_trait;
/// Re-exported: the dynamic msgpack value type used for untyped arguments and results.
#[cfg(target_os = "linux")]
pub use rmpv::Value;
