//! The parent side: configuring a worker, starting it, and calling it through handles.

mod blocking;
mod config;
mod connection;
mod handle;
mod output;
mod pending;
mod process;
mod shared;
mod supervision;

pub use blocking::{BlockingCaller, BlockingHandle};
pub use config::ParentWorker;
pub use connection::CallOptions;
pub use handle::{Caller, Dynamic, Handle, Service};
pub use output::{OutputEvent, OutputStream};
pub use supervision::{CircuitState, MetricsSnapshot};
