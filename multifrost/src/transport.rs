//! Sockets and frames: the only place that talks ZMTP, through the zeromq crate for a child's
//! ROUTER and through [`dealer`] for a parent's one connection.
//!
//! Frames follow PROTOCOL.md section 1: a parent sends `[empty, payload]`, a child receives
//! `[routing id, empty, payload]` and answers with the same envelope. Receivers read the last
//! frame as the payload, so a peer that leaves out the empty delimiter still works.

pub(crate) mod dealer;

use bytes::Bytes;
use zeromq::ZmqMessage;

pub(crate) use zeromq::prelude::{Socket, SocketRecv, SocketSend};
pub(crate) use zeromq::{RouterSendHalf, RouterSocket, SocketEvent};

/// The frames a child sends to the parent with this routing id.
pub(crate) fn child_frames(routing_id: Bytes, payload: Vec<u8>) -> ZmqMessage {
    frames([routing_id, Bytes::new(), Bytes::from(payload)])
}

/// A message of these frames, allocated once (`ZmqMessage::from` a frame, then `push_back`,
/// grows its queue of frames for every message).
fn frames<const N: usize>(frames: [Bytes; N]) -> ZmqMessage {
    let frames: std::collections::VecDeque<Bytes> = Vec::from(frames).into();
    ZmqMessage::try_from(frames).expect("a message of at least one frame")
}

/// The frames a child sends to the parent with this routing id, with a payload already in a
/// `Bytes` (whose owner can tell when the transport is done with it).
pub(crate) fn child_frames_bytes(routing_id: Bytes, payload: Bytes) -> ZmqMessage {
    frames([routing_id, Bytes::new(), payload])
}

/// The routing id and payload of a message a ROUTER received, if it has both. The frames are
/// taken from their queue as they are (`into_vec` may move them).
pub(crate) fn routed(message: ZmqMessage) -> Option<(Bytes, Bytes)> {
    let mut frames = message.into_vecdeque();
    let routing_id = frames.pop_front()?;
    let payload = frames.pop_back()?;
    Some((routing_id, payload))
}
