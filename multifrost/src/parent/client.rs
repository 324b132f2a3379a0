//! The typed-client plumbing that `#[multifrost::worker]` targets: the [`Service`] trait a
//! worker type implements, and the callers its generated clients call through.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::background::call_blocking;
use super::options::{decode_result, encode_args, CallOptions};
use super::supervisor::Supervisor;
use crate::error::Result;

/// The type parameter of a handle without a typed client: only
/// [`Handle::call_dyn`](crate::Handle::call_dyn).
pub enum Dynamic {}

/// A worker type with a generated typed client (implemented by `#[multifrost::worker]`).
pub trait Service: 'static {
    /// The namespace the worker answers in; the typed clients call in it unless the call's
    /// options name another.
    const NAMESPACE: &'static str = crate::protocol::DEFAULT_NAMESPACE;

    /// The client returned by [`Handle::call`](crate::Handle::call).
    type Client<'a>;
    /// The client returned by [`BlockingHandle::call`](crate::BlockingHandle::call).
    type BlockingClient<'a>;

    /// Wraps a caller into the typed client.
    fn client(caller: Caller<'_>) -> Self::Client<'_>;

    /// Wraps a blocking caller into the typed blocking client.
    fn blocking_client(caller: BlockingCaller<'_>) -> Self::BlockingClient<'_>;
}

/// What a generated typed client calls through: a handle and the options for its calls.
pub struct Caller<'a> {
    supervisor: &'a Arc<Supervisor>,
    options: CallOptions,
}

impl<'a> Caller<'a> {
    pub(crate) fn new(supervisor: &'a Arc<Supervisor>, options: CallOptions) -> Self {
        Caller {
            supervisor,
            options,
        }
    }

    /// Calls `function` with positional `args` and decodes the result.
    pub async fn call<R: DeserializeOwned>(
        &self,
        function: &str,
        args: impl Serialize,
    ) -> Result<R> {
        let args = encode_args(function, args)?;
        let result = self.supervisor.call(function, &args, &self.options).await?;
        decode_result(function, result)
    }

    /// The options of the calls made through this caller.
    pub fn options(&self) -> &CallOptions {
        &self.options
    }

    /// Replaces the options of the calls made through this caller. The namespace is kept
    /// unless the new options name one.
    pub fn with_options(mut self, options: CallOptions) -> Self {
        self.options = keep_namespace(options, &mut self.options);
        self
    }
}

/// What a generated blocking client calls through: a handle and the options for its calls.
pub struct BlockingCaller<'a> {
    supervisor: Arc<Supervisor>,
    options: CallOptions,
    _borrow: PhantomData<&'a ()>,
}

impl BlockingCaller<'_> {
    pub(crate) fn new(supervisor: Arc<Supervisor>, options: CallOptions) -> Self {
        BlockingCaller {
            supervisor,
            options,
            _borrow: PhantomData,
        }
    }

    /// Calls `function` with positional `args` and decodes the result, blocking the thread.
    pub fn call<R>(&self, function: &str, args: impl Serialize) -> Result<R>
    where
        R: DeserializeOwned + Send + 'static,
    {
        call_blocking(self.supervisor.clone(), function, args, &self.options)
    }

    /// Replaces the options of the calls made through this caller. The namespace is kept
    /// unless the new options name one.
    pub fn with_options(mut self, options: CallOptions) -> Self {
        self.options = keep_namespace(options, &mut self.options);
        self
    }
}

/// `options`, with the namespace of `previous` unless it names one itself.
fn keep_namespace(mut options: CallOptions, previous: &mut CallOptions) -> CallOptions {
    if options.namespace.is_none() {
        options.namespace = previous.namespace.take();
    }
    options
}
