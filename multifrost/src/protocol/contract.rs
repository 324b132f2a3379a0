//! Every name of the `comlink_ipc_v4` contract that both sides must agree on: the protocol id,
//! the default namespace, the environment a spawned child reads, and the metadata keys
//! (PROTOCOL.md sections 1, 2 and 5).

/// The protocol id every message carries in `app`.
pub const APP_ID: &str = "comlink_ipc_v4";
/// The namespace a call has when none is given.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The environment variable that carries the parent's port in spawn mode.
pub const PORT_ENV: &str = "COMLINK_ZMQ_PORT";
/// Set to `1` by every parent in spawn mode; no child reads it (PROTOCOL.md section 1).
pub const WORKER_MODE_ENV: &str = "COMLINK_WORKER_MODE";
/// The environment variable a child reads its shared token from.
pub const AUTH_TOKEN_ENV: &str = "MULTIFROST_AUTH_TOKEN";

/// The metadata key that carries the shared token.
pub const AUTH_TOKEN_KEY: &str = "auth_token";
/// The metadata key of a call's correlation id (traced on both sides).
pub const CORRELATION_ID_KEY: &str = "correlation_id";
/// The metadata key of a call's deadline, in Unix seconds.
pub const DEADLINE_KEY: &str = "deadline";
/// The metadata key of the time a call was sent, in Unix seconds (Python sends it).
pub const TIMESTAMP_SENT_KEY: &str = "timestamp_sent";
/// The metadata key of the time a heartbeat was sent, in Unix seconds.
pub const HB_TIMESTAMP_KEY: &str = "hb_timestamp";
/// The metadata key a child adds to its heartbeat answer (the Node child leaves it out).
pub const HB_RESPONSE_KEY: &str = "hb_response";

/// The function every implementation's child answers with its function names (the upstream
/// Python worker does; a Rust child answers it unless a method of that name is exposed).
pub const LIST_FUNCTIONS: &str = "list_functions";
/// An extension: the function a Rust child answers with a description of its methods. No
/// method can have this name (it is not an identifier in any language), so a foreign child
/// answers `Function 'multifrost.describe' not found`.
pub const DESCRIBE: &str = "multifrost.describe";
