//! The parent side: configuring a worker, starting it, and calling it through handles.
//!
//! From the top down: [`ParentWorker`] (worker.rs) builds the configuration; [`Handle`] and
//! [`BlockingHandle`] are what users call through, and client.rs is what generated typed clients
//! call through; the supervisor owns the lifecycle (start, stop, restarts, heartbeats) and
//! launch.rs brings connections up; a connection sends calls and receives replies, holding
//! their in-flight budget and pending table.

mod background;
mod blocking;
mod client;
mod config;
mod connection;
mod handle;
mod health;
mod in_flight;
mod launch;
mod options;
mod output;
mod peers;
mod pending;
mod process;
mod supervisor;
mod worker;

pub use blocking::BlockingHandle;
#[doc(hidden)]
pub use client::same_namespace;
pub use client::{BlockingCaller, Caller, Dynamic, Service};
pub use handle::Handle;
pub use health::{CircuitState, MetricsSnapshot};
pub use options::CallOptions;
pub use output::{OutputEvent, OutputStream};
pub use worker::ParentWorker;
