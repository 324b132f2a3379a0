//! Sockets and frames: the only place that speaks ZMTP. [`zmtp`] is one connection, a parent's
//! DEALER or one parent's connection to a child; [`router`] is a child's ROUTER, the
//! connections of all its parents.
//!
//! Frames follow PROTOCOL.md section 1: a parent sends `[empty, payload]`, a child's ROUTER
//! sees `[routing id, empty, payload]` and answers with the same envelope, which goes out as
//! `[empty, payload]` (a ROUTER takes its routing id off). Receivers read the last frame as
//! the payload, so a peer that leaves out the empty delimiter still works.

pub(crate) mod router;
pub(crate) mod zmtp;
