//! The error a caller gets back from any multifrost operation.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::protocol::{DecodeError, EncodedValue, ValueError};

/// Everything that can go wrong when calling a worker, with variants a caller can match on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The worker ran the function and answered with an error.
    #[error("{function}: remote error from worker '{worker}': {message}")]
    Remote {
        /// The worker's name.
        worker: String,
        /// The function called.
        function: String,
        /// The first line of the error as sent (Python: `<ExceptionType>: <message>`).
        message: String,
        /// The rest of the error text: the traceback a Python worker sends, or where a Rust
        /// worker panicked (`  at src/lib.rs:12:5`), if any.
        traceback: Option<String>,
        /// The error itself, when a Rust worker's method returned an error type that is
        /// `Serialize` (the `error_data` extension); decode it with
        /// [`remote_error`](Error::remote_error). Boxed, to keep `Error` small.
        data: Option<Box<EncodedValue>>,
    },

    /// No reply arrived within the call's timeout. The call left nothing behind.
    #[error("call to '{function}' on worker '{worker}' timed out after {timeout:?}")]
    Timeout {
        /// The worker's name.
        worker: String,
        /// The function called.
        function: String,
        /// How long it waited.
        timeout: Duration,
    },

    /// The worker process exited while the call was pending, or before it was made.
    #[error("worker '{worker}' exited ({status})")]
    ChildExited {
        /// The worker's name.
        worker: String,
        /// How the process ended.
        status: ExitStatus,
    },

    /// Nothing came from the worker for
    /// [`restart_on_unresponsive`](crate::ParentWorker::restart_on_unresponsive): it was
    /// replaced (spawn mode) or disconnected (connect mode), and its calls in flight failed.
    #[error("worker '{worker}' is unresponsive: {misses} heartbeats in a row got no answer")]
    Unresponsive {
        /// The worker's name.
        worker: String,
        /// Heartbeats in a row that got no answer.
        misses: u32,
    },

    /// The connection to the worker was lost (or never usable), for `reason`.
    #[error("worker '{worker}' disconnected: {reason}")]
    Disconnected {
        /// The worker's name.
        worker: String,
        /// Why.
        reason: String,
    },

    /// `start()` has not completed on this worker.
    #[error("worker '{worker}' is not started: call `start().await` first")]
    NotStarted {
        /// The worker's name.
        worker: String,
    },

    /// `stop()` was called on this worker.
    #[error("worker '{worker}' was stopped")]
    Stopped {
        /// The worker's name.
        worker: String,
    },

    /// The worker could not be started.
    #[error("worker '{worker}' failed to start: {reason}")]
    StartFailed {
        /// The worker's name.
        worker: String,
        /// Why.
        reason: String,
    },

    /// Too many consecutive failures: calls fail fast until a probe succeeds.
    #[error("circuit open for worker '{worker}': calls fail fast until it recovers")]
    CircuitOpen {
        /// The worker's name.
        worker: String,
    },

    /// The peer sent something that breaks the protocol (malformed or over a limit).
    #[error("protocol error from worker '{worker}': {reason}")]
    Protocol {
        /// The worker's name.
        worker: String,
        /// Why.
        reason: String,
    },

    /// The arguments could not be encoded.
    #[error("{function}: cannot encode the arguments: {reason}")]
    Encode {
        /// The function called.
        function: String,
        /// Why.
        reason: String,
    },

    /// The reply did not fit the type asked for.
    #[error("{function}: cannot decode the result: {source}")]
    Decode {
        /// The function called.
        function: String,
        /// The underlying error.
        #[source]
        source: ValueError,
    },

    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// No live service registered under this id appeared within the discovery timeout.
    #[error("service registry: Service '{service}' not found within {:?}s", .timeout.as_secs_f64())]
    ServiceNotFound {
        /// The service id.
        service: String,
        /// How long it waited.
        timeout: Duration,
    },

    /// `register` found the id held by a live process.
    #[error("service registry: Service '{service}' already running (PID: {pid}, port: {port})")]
    AlreadyRunning {
        /// The service id.
        service: String,
        /// The pid of the process holding it.
        pid: u32,
        /// The port as the entry writes it (`None` when it has none).
        port: String,
    },

    /// The registry lock stayed taken for the whole lock wait.
    #[error(
        "service registry: could not acquire the registry lock {} within {}s ({}); if no \
         process is using the registry, delete that file",
        .lock.display(),
        .waited.as_secs(),
        .holder.map_or_else(|| "its holder's pid is not readable".to_owned(), |pid| format!("held by PID {pid}"))
    )]
    RegistryLocked {
        /// The lock file.
        lock: std::path::PathBuf,
        /// The holder's pid, when its lock file holds one.
        holder: Option<u32>,
        /// How long it waited for the lock.
        waited: Duration,
    },

    /// `services.json` is not a JSON object of services; it was left untouched.
    #[error(
        "service registry: {} is not a valid registry (a JSON object of services): {reason}; \
         the file was left untouched, fix or delete it",
        .path.display()
    )]
    CorruptRegistry {
        /// The file or folder.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },

    /// A registry path is not safe to use: not a regular file (a FIFO, a device, a symbolic
    /// link), or not private to the current user (owned by another user, or writable by its
    /// group or everyone). Nothing was read from it or written to it.
    #[error("service registry: refusing to use {}: {reason}", .path.display())]
    UnsafeRegistry {
        /// The file or folder.
        path: std::path::PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// The service registry could not be used for another reason.
    #[error("service registry: {0}")]
    Registry(String),

    /// An operating-system or socket error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The transport failed.
    #[error("transport error: {0}")]
    Transport(String),
}

impl Error {
    pub(crate) fn remote(
        worker: &str,
        function: &str,
        text: &str,
        data: Option<EncodedValue>,
    ) -> Error {
        let (message, traceback) = match text.split_once('\n') {
            Some((first, rest)) if !rest.trim().is_empty() => (first, Some(rest.to_owned())),
            _ => (text.trim_end(), None),
        };
        Error::Remote {
            worker: worker.to_owned(),
            function: function.to_owned(),
            message: message.to_owned(),
            traceback,
            data: data.map(Box::new),
        }
    }

    /// The error a Rust worker's method returned, decoded as `E`: `Some` for a remote error
    /// that carries data of that type, `None` for any other error (including a remote error
    /// from a worker in another language, or one whose error type is not `Serialize`).
    ///
    /// ```
    /// # #[derive(serde::Deserialize)] enum MathError { DivideByZero }
    /// # fn handle(err: multifrost::Error) {
    /// match err.remote_error::<MathError>() {
    ///     Some(MathError::DivideByZero) => eprintln!("b must not be zero"),
    ///     None => eprintln!("{err}"),
    /// }
    /// # }
    /// ```
    pub fn remote_error<E: DeserializeOwned>(&self) -> Option<E> {
        self.remote_data()?.decode().ok()
    }

    /// The error data of a remote error as it arrived (`error_data`), if any.
    pub fn remote_data(&self) -> Option<&EncodedValue> {
        match self {
            Error::Remote { data, .. } => data.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn protocol(worker: &str, reason: impl std::fmt::Display) -> Error {
        Error::Protocol {
            worker: worker.to_owned(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// True for the failures that say the worker is unhealthy (what a circuit breaker counts):
    /// timeouts, exits, disconnects, protocol errors. Remote errors are answers, not failures.
    pub fn is_worker_failure(&self) -> bool {
        matches!(
            self,
            Error::Timeout { .. }
                | Error::ChildExited { .. }
                | Error::Unresponsive { .. }
                | Error::Disconnected { .. }
                | Error::Protocol { .. }
                | Error::Transport(_)
        )
    }
}

impl From<DecodeError> for ValueError {
    fn from(err: DecodeError) -> ValueError {
        ValueError {
            expected: "a valid msgpack value".into(),
            got: err.to_string(),
            detail: String::new(),
        }
    }
}

/// How a worker process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code, when the process exited normally.
    pub code: Option<i32>,
    /// The signal that ended the process, if any.
    pub signal: Option<i32>,
}

impl From<std::process::ExitStatus> for ExitStatus {
    fn from(status: std::process::ExitStatus) -> ExitStatus {
        use std::os::unix::process::ExitStatusExt;
        ExitStatus {
            code: status.code(),
            signal: status.signal(),
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exit status {code}"),
            (None, Some(signal)) => write!(f, "killed by signal {signal}"),
            (None, None) => f.write_str("unknown status"),
        }
    }
}

/// `Result` with multifrost's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
