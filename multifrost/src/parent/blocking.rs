//! `BlockingHandle`: the same surface as [`Handle`] for programs without an async runtime.
//!
//! Every operation runs the async core on a background runtime owned by multifrost, so it works
//! from plain `fn main`. Called from inside an async runtime it fails with [`Error::Config`]
//! instead of deadlocking the runtime.

use std::marker::PhantomData;
use std::sync::OnceLock;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::connection::encode_args;
use super::connection::CallOptions;
use super::handle::{decode_result, Dynamic, Handle, Service};
use crate::error::{Error, ExitStatus, Result};

/// The background runtime shared by every blocking handle; its thread lives as long as the
/// process, so children spawned from it keep their parent-death signal armed.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::io::Result<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("multifrost-blocking")
                .enable_all()
                .build()
        })
        .as_ref()
        .map_err(|err| Error::Config(format!("cannot start the background runtime: {err}")))
}

/// Runs `future` to completion on the background runtime, from a thread that is not async.
fn block_on<T: Send + 'static>(
    future: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::Config(
            "a blocking handle was used from inside an async runtime, which would block it: \
             use `worker.handle()` and `.await` instead"
                .into(),
        ));
    }
    let runtime = runtime()?;
    runtime
        .block_on(runtime.spawn(future))
        .unwrap_or_else(|join| Err(Error::Config(format!("blocking call failed: {join}"))))
}

/// A handle whose methods block the calling thread. See [`Handle`] for each method's meaning.
pub struct BlockingHandle<S = Dynamic> {
    handle: Handle<S>,
}

impl<S> Clone for BlockingHandle<S> {
    fn clone(&self) -> Self {
        BlockingHandle {
            handle: self.handle.clone(),
        }
    }
}

impl<S: 'static> BlockingHandle<S> {
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
        call_blocking(self.handle.typed_dynamic(), function, args, options)
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

impl<S: Service> BlockingHandle<S> {
    /// The typed blocking client: one method per exposed worker method.
    pub fn call(&self) -> S::BlockingClient<'_> {
        self.call_with(CallOptions::default())
    }

    /// The typed blocking client with per-call options.
    pub fn call_with(&self, mut options: CallOptions) -> S::BlockingClient<'_> {
        options
            .namespace
            .get_or_insert_with(|| S::NAMESPACE.to_owned());
        S::blocking_client(BlockingCaller {
            handle: self.handle.typed_dynamic(),
            options,
            _borrow: PhantomData,
        })
    }
}

/// Encodes on the calling thread (so the arguments need not be `Send + 'static`), then waits
/// for the call on the background runtime.
fn call_blocking<R>(
    handle: Handle<Dynamic>,
    function: &str,
    args: impl Serialize,
    options: &CallOptions,
) -> Result<R>
where
    R: DeserializeOwned + Send + 'static,
{
    let args = encode_args(function, args)?;
    let function = function.to_owned();
    let options = options.clone();
    block_on(async move {
        let result = handle.call_encoded(&function, &args, &options).await?;
        decode_result(&function, result)
    })
}

/// What a generated blocking client calls through: a handle and the options for its calls.
pub struct BlockingCaller<'a> {
    handle: Handle<Dynamic>,
    options: CallOptions,
    _borrow: PhantomData<&'a ()>,
}

impl BlockingCaller<'_> {
    /// Calls `function` with positional `args` and decodes the result, blocking the thread.
    pub fn call<R>(&self, function: &str, args: impl Serialize) -> Result<R>
    where
        R: DeserializeOwned + Send + 'static,
    {
        call_blocking(self.handle.clone(), function, args, &self.options)
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
