//! [`Handle`]: the runtime view of a worker, shared by every clone.

use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::client::{in_service_namespace, Caller, Dynamic, Service};
use super::health::{CircuitState, MetricsSnapshot};
use super::options::{decode_result, encode_args, CallOptions};
use super::supervisor::Supervisor;
use crate::error::{ExitStatus, Result};
use crate::protocol::EncodedValue;

/// A cheap, cloneable view of a worker. Every clone (and every handle from the same
/// [`ParentWorker`](crate::ParentWorker)) shares one process and connection.
///
/// Dropping the last handle and the `ParentWorker` kills a child that was not stopped.
///
/// `S` names the typed client [`call`](Self::call) returns: a `#[multifrost::worker]` type
/// (`Handle<Math>`), a `#[multifrost::client]` trait (`Handle<dyn Model>`), or [`Dynamic`] for
/// calls by name only.
pub struct Handle<S: ?Sized = Dynamic> {
    supervisor: Arc<Supervisor>,
    /// The options of [`call`](Self::call)'s client, made at its first use: every later
    /// `handle.call()` shares them instead of allocating its own.
    default_options: OnceLock<Arc<CallOptions>>,
    _service: PhantomData<fn() -> PhantomData<S>>,
}

impl<S: ?Sized> Clone for Handle<S> {
    fn clone(&self) -> Self {
        Handle {
            supervisor: self.supervisor.clone(),
            default_options: self.default_options.clone(),
            _service: PhantomData,
        }
    }
}

impl<S: ?Sized> std::fmt::Debug for Handle<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("worker", &self.supervisor.name)
            .finish()
    }
}

impl<S: ?Sized> Handle<S> {
    pub(crate) fn new(supervisor: Arc<Supervisor>) -> Self {
        Handle {
            supervisor,
            default_options: OnceLock::new(),
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
        self.supervisor.start().await
    }

    /// Sends `shutdown`, waits briefly for a clean exit (see
    /// [`ParentWorker::stop_timeout`](crate::ParentWorker::stop_timeout)), then kills.
    /// Pending calls fail with [`Error::Stopped`](crate::Error::Stopped). In connect mode it only disconnects.
    /// Returns the child's exit status in spawn mode.
    pub async fn stop(&self) -> Option<ExitStatus> {
        self.supervisor.stop().await
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

impl<S: ?Sized> Handle<S> {
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
        self.supervisor.call(function, args, options).await
    }

    /// Sends a heartbeat and returns its round-trip time.
    pub async fn heartbeat(&self) -> Result<Duration> {
        let connection = self.supervisor.connection().await?;
        connection.heartbeat(Duration::from_secs(3)).await
    }

    /// A snapshot of the worker's metrics (calls, latencies, heartbeats, breaker, restarts).
    pub fn metrics(&self) -> MetricsSnapshot {
        self.supervisor.metrics.snapshot(&self.supervisor.breaker)
    }

    /// The circuit breaker's state.
    pub fn circuit_state(&self) -> CircuitState {
        self.supervisor.breaker.state()
    }

    /// True when the worker runs, is connected, and its circuit is closed.
    pub fn is_healthy(&self) -> bool {
        self.supervisor.is_healthy()
    }

    /// How many times the worker was restarted automatically.
    pub fn restart_count(&self) -> u64 {
        self.supervisor.metrics.restarts()
    }

    /// The worker's name, as used in logs and errors.
    pub fn worker_name(&self) -> &str {
        &self.supervisor.name
    }

    /// The child's process id in spawn mode, once started.
    pub fn pid(&self) -> Option<u32> {
        self.supervisor.pid()
    }

    /// Calls waiting for their reply now.
    pub fn pending_calls(&self) -> usize {
        self.supervisor
            .current_connection()
            .map_or(0, |connection| connection.pending.len())
    }

    pub(crate) fn supervisor(&self) -> &Arc<Supervisor> {
        &self.supervisor
    }

    /// The same worker seen through another typed client.
    pub fn typed<T: Service + ?Sized>(&self) -> Handle<T> {
        Handle::new(self.supervisor.clone())
    }
}

impl<S: Service + ?Sized> Handle<S> {
    /// The typed client: one method per exposed worker method (or client trait method),
    /// checked at compile time.
    ///
    /// The client holds a clone of this handle, and its methods return futures that own what
    /// they need (`Send + 'static`): `let call = handle.call().add(1, 2);` can be stored,
    /// joined, selected or spawned.
    pub fn call(&self) -> S::Client {
        let options = self
            .default_options
            .get_or_init(|| Arc::new(in_service_namespace::<S>(CallOptions::default())));
        S::client(Caller::with_shared_options(
            self.supervisor.clone(),
            options.clone(),
        ))
    }

    /// The typed client with per-call options (timeout, namespace, metadata...).
    pub fn call_with(&self, options: CallOptions) -> S::Client {
        S::client(Caller::new(
            self.supervisor.clone(),
            in_service_namespace::<S>(options),
        ))
    }
}
