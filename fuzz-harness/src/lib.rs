//! The code under fuzz, shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`, which depend
//! on this crate by path) and by the stable hostile-input tests in `tests/tests/`, which also
//! build their payloads with [`payloads`].
//!
//! Two entry points, one per fuzz target:
//! - [`decode_message`]: `RawMessage::parse` on arbitrary bytes, then every accessor and a few
//!   typed decodes, checking the invariants that tie them together.
//! - [`child_dispatch`]: the child's dispatch path. What to do with a payload is decided by the
//!   real rules, [`multifrost::child::rules::DispatchRules::decide`], the function the server
//!   acts on; [`child_reply`] acts on the decision the way `child/serve.rs` does, running a
//!   hand-written [`multifrost::Worker`], and the reply is parsed back the way a parent does.
//!
//! Panics are the failures: every invariant is an `assert!`.

mod decode;
mod dispatch;
pub mod payloads;

pub use decode::decode_message;
pub use dispatch::{child_dispatch, child_reply, FuzzWorker};

use multifrost::Limits;

/// Small limits, so that short fuzz inputs reach the limit paths too.
pub const SMALL_LIMITS: Limits = Limits {
    max_str_bin_len: 16,
    max_items: 6,
    max_depth: 5,
    max_message_len: 512,
};
