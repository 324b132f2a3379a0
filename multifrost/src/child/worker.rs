//! What a worker is: the [`Worker`] trait that `#[multifrost::worker]` implements, and the
//! call, context and error types it deals in.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rmpv::Value;

use super::describe::Description;
use crate::protocol::contract::{CORRELATION_ID_KEY, DEADLINE_KEY};
use crate::protocol::{quote, EncodedValue, DEFAULT_NAMESPACE};

/// A set of functions that parents can call.
///
/// `#[multifrost::worker]` implements it for an `impl` block; it can also be implemented by hand
/// for a worker whose functions are only known at run time:
///
/// ```
/// use std::sync::Arc;
/// use multifrost::{CallError, EncodedValue, IncomingCall, Worker};
///
/// struct Echo;
///
/// #[multifrost::async_trait]
/// impl Worker for Echo {
///     fn list_functions(&self) -> Vec<String> {
///         vec!["echo".into()]
///     }
///
///     async fn dispatch(self: Arc<Self>, call: IncomingCall) -> Result<EncodedValue, CallError> {
///         match call.function.as_str() {
///             "echo" => call.args.into_iter().next().ok_or_else(|| CallError::new("echo: missing argument 1 (value)")),
///             other => Err(CallError::function_not_found(other)),
///         }
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait Worker: Send + Sync + 'static {
    /// The namespace this worker answers in; calls for another namespace get an error reply.
    fn namespace(&self) -> &str {
        DEFAULT_NAMESPACE
    }

    /// The names of the functions parents may call.
    fn list_functions(&self) -> Vec<String>;

    /// What the worker says about its methods when asked (`multifrost.describe`); by default
    /// only their names. `#[multifrost::worker]` fills in parameters, types and docs.
    fn describe(&self) -> Description {
        Description::from_names(self.namespace(), self.list_functions())
    }

    /// Runs one call. The runtime has already checked the namespace and that the name does not
    /// start with `_`; a panic inside becomes an error reply.
    async fn dispatch(self: Arc<Self>, call: IncomingCall) -> Result<EncodedValue, CallError>;
}

/// One call, as the worker receives it.
#[derive(Debug, Clone)]
pub struct IncomingCall {
    /// The function's name.
    pub function: String,
    /// The positional arguments, still encoded.
    pub args: Vec<EncodedValue>,
    /// Everything else the call carried.
    pub context: CallContext,
}

impl IncomingCall {
    /// Decodes argument `index` (0-based) into `T`; the error names the function and the
    /// argument (`add: argument 2 (b): expected i64, got str "x"`), ready to send back.
    pub fn arg<T: serde::de::DeserializeOwned>(
        &self,
        index: usize,
        name: &str,
    ) -> Result<T, CallError> {
        let value = self.args.get(index).ok_or_else(|| {
            CallError::new(format!(
                "{}: missing argument {} ({name})",
                self.function,
                index + 1
            ))
        })?;
        value.decode().map_err(|err| {
            CallError::new(format!(
                "{}: argument {} ({name}): {err}",
                self.function,
                index + 1
            ))
        })
    }
}

/// Per-call information a worker method can read by taking `ctx: &CallContext`.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The call's id (what the reply is correlated by).
    pub id: String,
    /// The namespace the call was sent to.
    pub namespace: String,
    /// The caller's `client_name` (or Node's `clientName`), if sent.
    pub client_name: Option<String>,
    /// The call's `metadata` map, as sent.
    pub metadata: Vec<(Value, Value)>,
    /// Set when the parent stops waiting: it cancelled the call, or its deadline passed.
    pub(crate) cancelled: Arc<AtomicBool>,
}

impl CallContext {
    /// True once the caller no longer waits for this call: its parent cancelled it (its
    /// timeout fired or its future was dropped) or its deadline passed. An async method is
    /// simply dropped then; a sync method, which cannot be interrupted, can poll this and
    /// return early.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// The flag behind [`is_cancelled`](Self::is_cancelled), for the runtime to set.
    pub(crate) fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancelled.clone()
    }

    /// The metadata value under `key`, if any.
    pub fn metadata(&self, key: &str) -> Option<&Value> {
        self.metadata
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The metadata value under `key` when it is a string.
    pub fn metadata_str(&self, key: &str) -> Option<&str> {
        self.metadata(key).and_then(Value::as_str)
    }

    /// The correlation id the caller set (`metadata.correlation_id`), if any.
    pub fn correlation_id(&self) -> Option<&str> {
        self.metadata_str(CORRELATION_ID_KEY)
    }

    /// When the caller stops waiting for this call, if it said (`metadata.deadline`, Unix
    /// seconds, sent by multifrost parents when the call has a timeout).
    pub fn deadline(&self) -> Option<SystemTime> {
        let secs = self.metadata(DEADLINE_KEY)?.as_f64()?;
        (secs.is_finite() && secs > 0.0).then(|| UNIX_EPOCH + Duration::from_secs_f64(secs))
    }
}

/// An error a worker returns for one call; it reaches the caller as an `error` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    message: String,
}

impl CallError {
    /// The most bytes of received text (a function name, a namespace) an error quotes: the
    /// rest is cut with an ellipsis, so that an error about a 10 MiB name is not itself over
    /// the receive limit of its caller.
    pub const MAX_QUOTED: usize = 256;

    /// An error with this exact text on the wire.
    pub fn new(message: impl Into<String>) -> CallError {
        CallError {
            message: message.into(),
        }
    }

    /// From any error: its message followed by its chain of sources.
    pub fn from_error(error: &(dyn std::error::Error + 'static)) -> CallError {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str("\ncaused by: ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        CallError { message }
    }

    /// `Function '<name>' not found`, as every implementation words it (a name longer than
    /// [`MAX_QUOTED`](Self::MAX_QUOTED) bytes is cut).
    pub fn function_not_found(name: &str) -> CallError {
        CallError::new(format!(
            "Function '{}' not found",
            quote(name, Self::MAX_QUOTED)
        ))
    }

    /// `Cannot call private method '<name>'` (a long name is cut, as above).
    pub fn private_method(name: &str) -> CallError {
        CallError::new(format!(
            "Cannot call private method '{}'",
            quote(name, Self::MAX_QUOTED)
        ))
    }

    /// The text sent on the wire.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CallError {}

impl From<crate::error::Error> for CallError {
    /// A method returning multifrost's own error (for example from a nested call) sends its
    /// message; a remote error is forwarded with its traceback.
    fn from(error: crate::error::Error) -> CallError {
        match error {
            crate::error::Error::Remote {
                message,
                traceback: Some(traceback),
                ..
            } => CallError::new(format!("{message}\n{traceback}")),
            crate::error::Error::Remote { message, .. } => CallError::new(message),
            other => CallError::from_error(&other),
        }
    }
}
