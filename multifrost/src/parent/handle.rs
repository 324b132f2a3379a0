//! `Handle`: the runtime view of a worker, shared by every clone, and the typed-client plumbing
//! that `#[multifrost::worker]` targets.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::blocking::BlockingCaller;
use super::connection::{encode_args, CallOptions};
use super::shared::WorkerShared;
use super::supervision::{CircuitState, MetricsSnapshot};
use crate::error::{Error, ExitStatus, Result};
use crate::protocol::EncodedValue;

/// The type parameter of a handle without a typed client: only [`Handle::call_dyn`].
pub enum Dynamic {}

/// A worker type with a generated typed client (implemented by `#[multifrost::worker]`).
pub trait Service: 'static {
    /// The namespace the worker answers in; the typed clients call in it unless the call's
    /// options name another.
    const NAMESPACE: &'static str = crate::protocol::DEFAULT_NAMESPACE;

    /// The client returned by [`Handle::call`].
    type Client<'a>;
    /// The client returned by [`BlockingHandle::call`](crate::BlockingHandle::call).
    type BlockingClient<'a>;

    /// Wraps a caller into the typed client.
    fn client(caller: Caller<'_>) -> Self::Client<'_>;

    /// Wraps a blocking caller into the typed blocking client.
    fn blocking_client(caller: BlockingCaller<'_>) -> Self::BlockingClient<'_>;
}

/// A cheap, cloneable view of a worker. Every clone (and every handle from the same
/// [`ParentWorker`](crate::ParentWorker)) shares one process and connection.
///
/// Dropping the last handle and the `ParentWorker` kills a child that was not stopped.
pub struct Handle<S = Dynamic> {
    shared: Arc<WorkerShared>,
    _service: PhantomData<fn() -> S>,
}

impl<S> Clone for Handle<S> {
    fn clone(&self) -> Self {
        Handle {
            shared: self.shared.clone(),
            _service: PhantomData,
        }
    }
}

impl<S> std::fmt::Debug for Handle<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("worker", &self.shared.name)
            .finish()
    }
}

impl<S> Handle<S> {
    pub(crate) fn new(shared: Arc<WorkerShared>) -> Self {
        Handle {
            shared,
            _service: PhantomData,
        }
    }

    /// Spawns the child (or connects to the service) and returns once it answered a heartbeat,
    /// so no call can be lost to a child that is not connected yet. Calling it on a running
    /// worker does nothing.
    ///
    /// The child is tied to the thread that runs this: it gets SIGKILL when that thread ends
    /// (Linux's parent-death signal), which on a tokio runtime means when the runtime shuts down.
    pub async fn start(&self) -> Result<()> {
        self.shared.start().await
    }

    /// Sends `shutdown`, waits briefly for a clean exit (see
    /// [`ParentWorker::stop_timeout`](crate::ParentWorker::stop_timeout)), then kills.
    /// Pending calls fail with [`Error::Stopped`]. In connect mode it only disconnects.
    /// Returns the child's exit status in spawn mode.
    pub async fn stop(&self) -> Option<ExitStatus> {
        self.shared.stop().await
    }

    /// Calls `function` by name with positional `args` (a tuple such as `(1, 2)`, `(x,)` for one
    /// argument, `()` for none, or a `Vec` of values) and decodes the result into `R` (any
    /// `DeserializeOwned`, including `rmpv::Value`).
    pub async fn call_dyn<R: DeserializeOwned>(
        &self,
        function: &str,
        args: impl Serialize,
    ) -> Result<R> {
        self.call_dyn_with(function, args, &CallOptions::default())
            .await
    }

    /// [`call_dyn`](Self::call_dyn) with per-call options.
    pub async fn call_dyn_with<R: DeserializeOwned>(
        &self,
        function: &str,
        args: impl Serialize,
        options: &CallOptions,
    ) -> Result<R> {
        let result = self.call_raw(function, args, options).await?;
        decode_result(function, result)
    }
}

/// Decodes a call's result into the caller's type.
pub(crate) fn decode_result<R: DeserializeOwned>(
    function: &str,
    result: EncodedValue,
) -> Result<R> {
    result.decode().map_err(|source| Error::Decode {
        function: function.to_owned(),
        source,
    })
}

impl<S> Handle<S> {
    /// Calls `function` and returns its result still encoded.
    pub async fn call_raw(
        &self,
        function: &str,
        args: impl Serialize,
        options: &CallOptions,
    ) -> Result<EncodedValue> {
        let args = encode_args(function, args)?;
        self.call_encoded(function, &args, options).await
    }

    /// Calls `function` with arguments already encoded as a msgpack array.
    pub async fn call_encoded(
        &self,
        function: &str,
        args: &EncodedValue,
        options: &CallOptions,
    ) -> Result<EncodedValue> {
        self.shared.call(function, args, options).await
    }

    /// Sends a heartbeat and returns its round-trip time.
    pub async fn heartbeat(&self) -> Result<Duration> {
        let connection = self.shared.connection().await?;
        connection.heartbeat(Duration::from_secs(3)).await
    }

    /// A snapshot of the worker's metrics (calls, latencies, heartbeats, breaker, restarts).
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot(&self.shared.breaker)
    }

    /// The circuit breaker's state.
    pub fn circuit_state(&self) -> CircuitState {
        self.shared.breaker.state()
    }

    /// True when the worker runs, is connected, and its circuit is closed.
    pub fn is_healthy(&self) -> bool {
        self.shared.is_healthy()
    }

    /// How many times the worker was restarted automatically.
    pub fn restart_count(&self) -> u64 {
        self.shared.metrics.restarts()
    }

    /// The worker's name, as used in logs and errors.
    pub fn worker_name(&self) -> &str {
        &self.shared.name
    }

    /// The child's process id in spawn mode, once started.
    pub fn pid(&self) -> Option<u32> {
        self.shared.pid()
    }

    /// Calls waiting for their reply now.
    pub fn pending_calls(&self) -> usize {
        self.shared
            .current_connection()
            .map_or(0, |connection| connection.pending.len())
    }

    pub(crate) fn typed_dynamic(&self) -> Handle<Dynamic> {
        Handle::new(self.shared.clone())
    }

    /// The same worker seen through another typed client.
    pub fn typed<T: Service>(&self) -> Handle<T> {
        Handle::new(self.shared.clone())
    }
}

impl<S: Service> Handle<S> {
    /// The typed client: one method per exposed worker method, checked at compile time.
    pub fn call(&self) -> S::Client<'_> {
        self.call_with(CallOptions::default())
    }

    /// The typed client with per-call options (timeout, namespace, metadata...).
    pub fn call_with(&self, mut options: CallOptions) -> S::Client<'_> {
        options
            .namespace
            .get_or_insert_with(|| S::NAMESPACE.to_owned());
        S::client(Caller {
            shared: &self.shared,
            options,
        })
    }
}

/// What a generated typed client calls through: a handle and the options for its calls.
pub struct Caller<'a> {
    shared: &'a Arc<WorkerShared>,
    options: CallOptions,
}

impl Caller<'_> {
    /// Calls `function` with positional `args` and decodes the result.
    pub async fn call<R: DeserializeOwned>(
        &self,
        function: &str,
        args: impl Serialize,
    ) -> Result<R> {
        Handle::<Dynamic>::new(self.shared.clone())
            .call_dyn_with(function, args, &self.options)
            .await
    }

    /// The options of the calls made through this caller.
    pub fn options(&self) -> &CallOptions {
        &self.options
    }

    /// Replaces the options of the calls made through this caller. The namespace is kept
    /// unless the new options name one.
    pub fn with_options(mut self, mut options: CallOptions) -> Self {
        if options.namespace.is_none() {
            options.namespace = self.options.namespace.take();
        }
        self.options = options;
        self
    }
}
