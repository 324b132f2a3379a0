//! The background runtime that blocking handles run the async core on, so they work from a
//! plain `fn main`.

use std::sync::{Arc, OnceLock};

use serde::Serialize;

use super::options::{encode_args, CallOptions};
use super::supervisor::Supervisor;
use crate::error::{Error, Result};
use crate::protocol::EncodedValue;

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
/// Called from inside an async runtime it fails with [`Error::Config`] instead of deadlocking
/// that runtime.
pub(crate) fn block_on<T: Send + 'static>(
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

/// Encodes on the calling thread (so the arguments need not be `Send + 'static`), then waits
/// for the call on the background runtime.
pub(crate) fn call_blocking<R>(
    supervisor: Arc<Supervisor>,
    function: &str,
    args: impl Serialize,
    options: &CallOptions,
    decode: fn(&str, EncodedValue) -> Result<R>,
) -> Result<R>
where
    R: Send + 'static,
{
    let args = encode_args(function, args)?;
    let function = function.to_owned();
    let options = options.clone();
    block_on(async move {
        let result = supervisor.call(&function, &args, &options).await?;
        decode(&function, result)
    })
}
