//! What a worker is: the [`Worker`] trait that `#[multifrost::worker]` implements, and the
//! call, context and error types it deals in.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rmpv::Value;

use super::describe::Description;
use crate::protocol::contract::{CORRELATION_ID_KEY, DEADLINE_KEY};
use crate::protocol::message::{as_f64, as_str, map_entry};
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

    /// Not a public API: `#[multifrost::worker]` implements it for its sync methods. The job
    /// that answers a call of `function` (it decodes the arguments, runs the method and encodes
    /// what it returned), for the runtime to run on the threads kept for sync methods and to
    /// answer from there, with no task and no hop back to the runtime; `None` (the default)
    /// sends the call to [`dispatch`](Self::dispatch) instead. Both must answer a call alike.
    #[doc(hidden)]
    fn dispatch_blocking(&self, _function: &str) -> Option<BlockingCall<Self>>
    where
        Self: Sized,
    {
        None
    }
}

/// How to run a call of one sync method (see [`Worker::dispatch_blocking`]). Not a public API.
///
/// A plain `fn` that borrows the worker and the call: the job allocates nothing of its own.
/// The thread that runs it builds the call and frees it (bench/PROFILE.md).
#[doc(hidden)]
pub struct BlockingCall<W> {
    /// The method's wire name.
    pub function: &'static str,
    /// Decodes the arguments, runs the method and encodes what it returned.
    pub run: fn(&W, &IncomingCall) -> Result<EncodedValue, CallError>,
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

/// What a call's method and the runtime serving it share, in one allocation.
#[derive(Debug, Default)]
pub(crate) struct CallFlags {
    /// Set when the parent stops waiting: it cancelled the call, or its deadline passed.
    pub cancelled: AtomicBool,
    /// For a sync method: set by whichever comes first, its reply or its parent's cancel.
    pub answered: AtomicBool,
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
    /// The call's `metadata` map, still encoded: most calls read one or two keys of it, if
    /// any (see [`metadata_map`](Self::metadata_map)).
    pub(crate) metadata: Option<EncodedValue>,
    /// `metadata` decoded, once somebody asks for all of it.
    pub(crate) decoded_metadata: OnceLock<Vec<(Value, Value)>>,
    /// Whether the parent stopped waiting, shared with the runtime, which sets it.
    pub(crate) flags: Arc<CallFlags>,
    /// `metadata.deadline` (Unix seconds), read once when the call arrived.
    pub(crate) deadline: Option<f64>,
}

impl CallContext {
    /// True once the caller no longer waits for this call: its parent cancelled it (its
    /// timeout fired or its future was dropped) or its deadline passed. An async method is
    /// simply dropped then; a sync method, which cannot be interrupted, can poll this and
    /// return early:
    ///
    /// ```
    /// use multifrost::CallContext;
    ///
    /// pub struct Trainer;
    ///
    /// #[multifrost::worker]
    /// impl Trainer {
    ///     /// Runs up to `epochs` epochs, fewer when the caller stops waiting.
    ///     pub fn train(&self, ctx: &CallContext, epochs: u32) -> u32 {
    ///         let mut done = 0;
    ///         while done < epochs && !ctx.is_cancelled() {
    ///             done += 1; // one epoch of work
    ///         }
    ///         done
    ///     }
    /// }
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.flags.cancelled.load(Ordering::Relaxed)
    }

    /// The flags behind [`is_cancelled`](Self::is_cancelled), for the runtime to set.
    pub(crate) fn flags(&self) -> Arc<CallFlags> {
        self.flags.clone()
    }

    /// The call's `metadata` map, as sent (empty when it sent none, or not a map), decoded
    /// the first time it is asked for.
    pub fn metadata_map(&self) -> &[(Value, Value)] {
        self.decoded_metadata.get_or_init(|| match &self.metadata {
            Some(metadata) => match metadata.to_value() {
                Value::Map(entries) => entries,
                _ => Vec::new(),
            },
            None => Vec::new(),
        })
    }

    /// The metadata value under `key`, if any.
    pub fn metadata(&self, key: &str) -> Option<&Value> {
        self.metadata_map()
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The metadata value under `key` when it is a string (read without decoding the rest).
    pub fn metadata_str(&self, key: &str) -> Option<&str> {
        let entry = map_entry(self.metadata.as_ref()?.as_bytes(), key)?;
        as_str(entry)
    }

    /// This context with `entries` as its metadata map, as if the call had sent them (for
    /// tests, and workers that call each other in-process).
    pub fn with_metadata(mut self, entries: Vec<(Value, Value)>) -> Self {
        self.metadata = EncodedValue::from_value(&Value::Map(entries)).ok();
        self.decoded_metadata = OnceLock::new();
        self.deadline = self
            .metadata
            .as_ref()
            .and_then(|metadata| map_entry(metadata.as_bytes(), DEADLINE_KEY))
            .and_then(as_f64);
        self
    }

    /// The correlation id the caller set (`metadata.correlation_id`), if any.
    pub fn correlation_id(&self) -> Option<&str> {
        self.metadata_str(CORRELATION_ID_KEY)
    }

    /// When the caller stops waiting for this call, if it said (`metadata.deadline`, Unix
    /// seconds).
    pub fn deadline(&self) -> Option<SystemTime> {
        let secs = self.deadline?;
        (secs.is_finite() && secs > 0.0).then(|| UNIX_EPOCH + Duration::from_secs_f64(secs))
    }
}

/// An error a worker returns for one call; it reaches the caller as an `error` reply.
///
/// Besides its text it may carry a traceback (the text after the first line on the wire, as a
/// Python worker sends one) and the error itself as data (the `error_data` extension: a parent
/// gets it back with [`Error::remote_error`](crate::Error::remote_error)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    message: String,
    traceback: Option<String>,
    data: Option<EncodedValue>,
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
            traceback: None,
            data: None,
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
        CallError::new(message)
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

    /// Adds a traceback: sent after the message and a newline, where a Python worker sends
    /// its traceback, so a parent reads it as `Error::Remote::traceback`.
    pub fn with_traceback(mut self, traceback: impl Into<String>) -> CallError {
        self.traceback = Some(traceback.into());
        self
    }

    /// Attaches the error as data, sent beside the text as `error_data` (parents in other
    /// languages ignore it and see the text); a Rust parent decodes it with
    /// [`Error::remote_error`](crate::Error::remote_error).
    ///
    /// Data that another implementation could not read is left out, with a debug log: a map
    /// with keys that are not strings, nesting deeper than 64 levels, or more than 1 MiB. (The
    /// Python implementation drops a whole reply that holds such a map, so the text would be
    /// lost too.)
    pub fn with_data(mut self, data: EncodedValue) -> CallError {
        match unportable_data(&data) {
            None => self.data = Some(data),
            Some(why) => tracing::debug!("error data left out of the reply: {why}"),
        }
        self
    }

    /// The text sent on the wire, without the traceback.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The traceback, if any (a panic's location).
    pub fn traceback(&self) -> Option<&str> {
        self.traceback.as_deref()
    }

    /// The error as data, if attached.
    pub fn data(&self) -> Option<&EncodedValue> {
        self.data.as_ref()
    }

    /// The whole `error` text of the reply: the message, then the traceback on the next line.
    pub fn reply_text(&self) -> std::borrow::Cow<'_, str> {
        match &self.traceback {
            Some(traceback) => format!("{}\n{traceback}", self.message).into(),
            None => self.message.as_str().into(),
        }
    }
}

/// Why error data could not be read by every implementation, if it could not.
fn unportable_data(data: &EncodedValue) -> Option<String> {
    const MAX_LEN: usize = 1024 * 1024;
    const MAX_DEPTH: usize = 64;
    fn string_keys_only(value: &Value) -> bool {
        match value {
            Value::Array(items) => items.iter().all(string_keys_only),
            Value::Map(entries) => entries
                .iter()
                .all(|(key, value)| key.is_str() && string_keys_only(value)),
            _ => true,
        }
    }
    let len = data.as_bytes().len();
    if len > MAX_LEN {
        return Some(format!("{len} bytes, over {MAX_LEN}"));
    }
    let mut bytes = data.as_bytes();
    match rmpv::decode::read_value_with_max_depth(&mut bytes, MAX_DEPTH) {
        Ok(value) if string_keys_only(&value) => None,
        Ok(_) => Some("a map key is not a string".to_owned()),
        Err(_) => Some(format!("nested deeper than {MAX_DEPTH} levels")),
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
    /// message; a remote error is forwarded with its traceback and its data.
    fn from(error: crate::error::Error) -> CallError {
        match error {
            crate::error::Error::Remote {
                message,
                traceback,
                data,
                ..
            } => {
                let text = match traceback {
                    Some(traceback) => format!("{message}\n{traceback}"),
                    None => message,
                };
                // The error data travels on, so the first caller can still decode it.
                CallError {
                    message: text,
                    traceback: None,
                    data: data.map(|data| *data),
                }
            }
            other => CallError::from_error(&other),
        }
    }
}
