//! [`BlockingHandle`]: the same surface as [`Handle`] for programs without an async runtime.
//!
//! Every operation runs the async core on a background runtime owned by multifrost, so it works
//! from plain `fn main`. Called from inside an async runtime it fails with
//! [`Error::Config`](crate::Error::Config) instead of deadlocking the runtime.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::background::{block_on, call_blocking};
use super::client::{in_service_namespace, BlockingCaller, Dynamic, Service};
use super::handle::Handle;
use super::options::{decode_result, CallOptions};
use crate::error::{ExitStatus, Result};

/// A handle whose methods block the calling thread. See [`Handle`] for each method's meaning.
pub struct BlockingHandle<S: ?Sized = Dynamic> {
    handle: Handle<S>,
}

impl<S: ?Sized> Clone for BlockingHandle<S> {
    fn clone(&self) -> Self {
        BlockingHandle {
            handle: self.handle.clone(),
        }
    }
}

impl<S: ?Sized + 'static> BlockingHandle<S> {
    pub(crate) fn new(handle: Handle<S>) -> Self {
        BlockingHandle { handle }
    }

    /// Starts the worker; see [`Handle::start`].
    pub fn start(&self) -> Result<()> {
        let handle = self.handle.clone();
        block_on(async move { handle.start().await })
    }

    /// Stops the worker; see [`Handle::stop`].
    pub fn stop(&self) -> Result<Option<ExitStatus>> {
        let handle = self.handle.clone();
        block_on(async move { Ok(handle.stop().await) })
    }

    /// Calls `function` by name; see [`Handle::call_dyn`].
    pub fn call_dyn<R>(&self, function: &str, args: impl Serialize) -> Result<R>
    where
        R: DeserializeOwned + Send + 'static,
    {
        self.call_dyn_with(function, args, &CallOptions::default())
    }

    /// Calls `function` by name with per-call options.
    pub fn call_dyn_with<R>(
        &self,
        function: &str,
        args: impl Serialize,
        options: &CallOptions,
    ) -> Result<R>
    where
        R: DeserializeOwned + Send + 'static,
    {
        call_blocking(
            self.handle.supervisor().clone(),
            function,
            args,
            options,
            decode_result::<R>,
        )
    }

    /// Sends a heartbeat; see [`Handle::heartbeat`].
    pub fn heartbeat(&self) -> Result<Duration> {
        let handle = self.handle.clone();
        block_on(async move { handle.heartbeat().await })
    }

    /// The async handle behind this one.
    pub fn as_async(&self) -> &Handle<S> {
        &self.handle
    }
}

impl<S: Service + ?Sized> BlockingHandle<S> {
    /// The typed blocking client: one method per exposed worker method (or client trait
    /// method); each blocks the thread until its call ends.
    pub fn call(&self) -> S::BlockingClient {
        self.call_with(CallOptions::default())
    }

    /// The typed blocking client with per-call options.
    pub fn call_with(&self, options: CallOptions) -> S::BlockingClient {
        S::blocking_client(BlockingCaller::new(
            self.handle.supervisor().clone(),
            in_service_namespace::<S>(options),
        ))
    }
}
