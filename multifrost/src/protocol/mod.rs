//! The wire protocol `comlink_ipc_v4`: the contract's names, messages, value encoding and
//! receive limits.
//!
//! See `PROTOCOL.md` of the project for the contract shared with the Python, Node and Go
//! implementations.

pub mod contract;
mod depth_guard;
mod encode;
mod limits;
pub(crate) mod message;
mod value;

pub use contract::{APP_ID, DEFAULT_NAMESPACE};
pub use encode::{
    encode_cancel, encode_error, encode_error_with_data, encode_heartbeat, encode_heartbeat_reply,
    encode_output, encode_response, encode_shutdown, new_id, unix_now, MessageWriter, OutgoingCall,
    MAX_ERROR_TEXT,
};
pub(crate) use encode::{unix_at, MessageId};
pub use limits::{DecodeError, Limits};
pub use message::{MessageKind, RawMessage, ERROR_DATA_KEY};
pub(crate) use value::quote;
pub use value::{
    describe, short_type_name, EncodeError, EncodedValue, PathSegment, ValueError, ValuePath,
};
