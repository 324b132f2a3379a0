//! The exit status of `multifrost`: one code per kind of failure a script may want to tell
//! apart, and the table `--help` shows.

use multifrost::Error;

/// The worker ran the method and answered with an error.
pub const REMOTE_ERROR: u8 = 1;
/// Bad usage: unknown option, bad value, an argument that cannot be sent.
pub const USAGE: u8 = 2;
/// The call (or ping) got no answer within `--timeout`.
pub const TIMEOUT: u8 = 3;
/// The worker could not be reached: the endpoint is closed, the program failed to start, the
/// worker exited or disconnected.
pub const UNREACHABLE: u8 = 4;
/// Any other failure.
pub const OTHER: u8 = 5;
/// No live service is registered under the id given to `--service`.
pub const NOT_FOUND: u8 = 6;
/// The registry lock stayed taken by another process. Reserved: the commands of this version
/// only read the registry, which takes no lock.
pub const LOCK_TIMEOUT: u8 = 7;
/// The registry cannot be used: `services.json` is corrupt, or a registry path is not a
/// regular file or is writable by other users.
pub const BAD_REGISTRY: u8 = 8;

/// The table shown at the end of `--help`.
pub const TABLE: &str = "\
Exit status:
  0  success
  1  the worker answered with an error (printed on stderr; the traceback with --verbose)
  2  usage error (bad option, argument that cannot be sent, integer outside i64)
  3  timeout: no answer within --timeout
  4  unreachable: endpoint closed, worker failed to start, exited or disconnected
  5  any other failure
  6  service not found in the registry (see --wait)
  7  registry lock timeout (reserved: today's commands only read the registry, lock-free)
  8  the registry is corrupt or unsafe (not a regular file, writable by other users)";

/// The exit status for a library error.
pub fn for_error(err: &Error) -> u8 {
    match err {
        Error::Remote { .. } => REMOTE_ERROR,
        Error::Timeout { .. } => TIMEOUT,
        Error::ServiceNotFound { .. } => NOT_FOUND,
        Error::RegistryLocked { .. } => LOCK_TIMEOUT,
        Error::CorruptRegistry { .. } | Error::UnsafeRegistry { .. } => BAD_REGISTRY,
        Error::Encode { .. } | Error::Config(_) => USAGE,
        Error::StartFailed { .. }
        | Error::Disconnected { .. }
        | Error::ChildExited { .. }
        | Error::Unresponsive { .. }
        | Error::CircuitOpen { .. }
        | Error::Transport(_) => UNREACHABLE,
        _ => OTHER,
    }
}
