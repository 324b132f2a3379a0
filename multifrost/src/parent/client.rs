//! The typed-client plumbing that `#[multifrost::worker]` and `#[multifrost::client]` target:
//! the [`Service`] trait a worker type (or `dyn ClientTrait`) implements, and the callers its
//! generated clients call through.
//!
//! A caller owns what a call needs (an `Arc` of the worker's supervisor and the options), so
//! the futures of generated clients borrow nothing: they can be stored, joined, selected and
//! spawned.

use std::future::Future;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::background::call_blocking;
use super::options::{decode_bin_result, decode_result, encode_args, CallOptions};
use super::supervisor::Supervisor;
use crate::error::Result;
use crate::macro_support::BinValue;
use crate::protocol::EncodedValue;

/// The type parameter of a handle without a typed client: only
/// [`Handle::call_dyn`](crate::Handle::call_dyn).
pub enum Dynamic {}

/// Something with a generated typed client: a worker type (implemented by
/// `#[multifrost::worker]`) or a client trait's `dyn Trait` (implemented by
/// `#[multifrost::client]`), named in [`ParentWorker::handle_for`](crate::ParentWorker::handle_for).
pub trait Service: 'static {
    /// The namespace the worker answers in; the typed clients call in it unless the call's
    /// options name another.
    const NAMESPACE: &'static str = crate::protocol::DEFAULT_NAMESPACE;

    /// The client returned by [`Handle::call`](crate::Handle::call).
    type Client;
    /// The client returned by [`BlockingHandle::call`](crate::BlockingHandle::call).
    type BlockingClient;

    /// Wraps a caller into the typed client.
    fn client(caller: Caller) -> Self::Client;

    /// Wraps a blocking caller into the typed blocking client.
    fn blocking_client(caller: BlockingCaller) -> Self::BlockingClient;
}

/// What a generated typed client calls through: the worker and the options for its calls.
/// Cloning it is cheap (two `Arc`s).
#[derive(Clone)]
pub struct Caller {
    supervisor: Arc<Supervisor>,
    options: Arc<CallOptions>,
}

impl Caller {
    pub(crate) fn new(supervisor: Arc<Supervisor>, options: CallOptions) -> Self {
        Self::with_shared_options(supervisor, Arc::new(options))
    }

    pub(crate) fn with_shared_options(
        supervisor: Arc<Supervisor>,
        options: Arc<CallOptions>,
    ) -> Self {
        Caller {
            supervisor,
            options,
        }
    }

    /// Calls `function` with positional `args` and decodes the result.
    ///
    /// The arguments are encoded now, and the future owns everything else it needs, so it is
    /// `Send + 'static` whatever `args` borrows.
    pub fn call<R>(
        &self,
        function: &'static str,
        args: impl Serialize,
    ) -> impl Future<Output = Result<R>> + Send + 'static
    where
        R: DeserializeOwned + 'static,
    {
        owned_call(
            self.supervisor.clone(),
            self.options.clone(),
            function,
            encode_args(function, args),
            decode_result::<R>,
        )
    }

    /// Like [`call`](Self::call), for a method that returns a byte string, which is decoded
    /// without a copy where its type allows (`bytes::Bytes`). The typed clients call it; not
    /// a public API.
    #[doc(hidden)]
    pub fn call_bin<R>(
        &self,
        function: &'static str,
        args: impl Serialize,
    ) -> impl Future<Output = Result<R>> + Send + 'static
    where
        R: BinValue + Send + 'static,
    {
        owned_call(
            self.supervisor.clone(),
            self.options.clone(),
            function,
            encode_args(function, args),
            decode_bin_result::<R>,
        )
    }

    /// The options of the calls made through this caller.
    pub fn options(&self) -> &CallOptions {
        &self.options
    }

    /// Replaces the options of the calls made through this caller. The namespace is kept
    /// unless the new options name one.
    pub fn with_options(mut self, options: CallOptions) -> Self {
        self.options = Arc::new(keep_namespace(options, &self.options));
        self
    }
}

/// The call itself, generic over the result type only, so that its future does not depend on
/// the type of the arguments (already encoded) and owns all it holds.
async fn owned_call<R>(
    supervisor: Arc<Supervisor>,
    options: Arc<CallOptions>,
    function: &'static str,
    args: Result<EncodedValue>,
    decode: fn(&str, EncodedValue) -> Result<R>,
) -> Result<R> {
    let result = supervisor.call(function, &args?, &options).await?;
    decode(function, result)
}

/// What a generated blocking client calls through: the worker and the options for its calls.
#[derive(Clone)]
pub struct BlockingCaller {
    supervisor: Arc<Supervisor>,
    options: CallOptions,
}

impl BlockingCaller {
    pub(crate) fn new(supervisor: Arc<Supervisor>, options: CallOptions) -> Self {
        BlockingCaller {
            supervisor,
            options,
        }
    }

    /// Calls `function` with positional `args` and decodes the result, blocking the thread.
    pub fn call<R>(&self, function: &str, args: impl Serialize) -> Result<R>
    where
        R: DeserializeOwned + Send + 'static,
    {
        call_blocking(
            self.supervisor.clone(),
            function,
            args,
            &self.options,
            decode_result::<R>,
        )
    }

    /// Like [`call`](Self::call), for a method that returns a byte string (see
    /// [`Caller::call_bin`]). Not a public API.
    #[doc(hidden)]
    pub fn call_bin<R>(&self, function: &str, args: impl Serialize) -> Result<R>
    where
        R: BinValue + Send + 'static,
    {
        call_blocking(
            self.supervisor.clone(),
            function,
            args,
            &self.options,
            decode_bin_result::<R>,
        )
    }

    /// The options of the calls made through this caller.
    pub fn options(&self) -> &CallOptions {
        &self.options
    }

    /// Replaces the options of the calls made through this caller. The namespace is kept
    /// unless the new options name one.
    pub fn with_options(mut self, options: CallOptions) -> Self {
        self.options = keep_namespace(options, &self.options);
        self
    }
}

/// `options`, in the namespace of service `S` unless they name one: what a typed client calls
/// with.
pub(crate) fn in_service_namespace<S: Service + ?Sized>(mut options: CallOptions) -> CallOptions {
    options
        .namespace
        .get_or_insert(std::borrow::Cow::Borrowed(S::NAMESPACE));
    options
}

/// `options`, with the namespace of `previous` unless it names one itself.
fn keep_namespace(mut options: CallOptions, previous: &CallOptions) -> CallOptions {
    if options.namespace.is_none() {
        options.namespace = previous.namespace.clone();
    }
    options
}

/// Whether two namespaces are the same, in a constant: a worker that serves a client trait
/// checks with it that it answers in the trait's namespace. Not a public API.
#[doc(hidden)]
pub const fn same_namespace(worker: &str, client: &str) -> bool {
    let (worker, client) = (worker.as_bytes(), client.as_bytes());
    if worker.len() != client.len() {
        return false;
    }
    let mut at = 0;
    while at < worker.len() {
        if worker[at] != client[at] {
            return false;
        }
        at += 1;
    }
    true
}
