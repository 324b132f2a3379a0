//! The table of calls waiting for their reply, keyed by message id.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::error::Error;
use crate::protocol::RawMessage;

/// What a waiting call receives: the reply message, or why none will come.
pub(crate) type Reply = Result<RawMessage, Error>;

/// An id of this process's messages as the table's key: UUID text, 36 bytes, kept in place.
pub(crate) type IdKey = [u8; 36];

/// The key of `id`; `None` for an id of another length, which no message of ours has.
pub(crate) fn key(id: &str) -> Option<IdKey> {
    id.as_bytes().try_into().ok()
}

/// Calls in flight on one connection.
///
/// Once closed (the child exited, the connection was lost or stopped), every waiting call has
/// been failed with the closing error and new registrations fail with it at once, so no call can
/// slip in after the drain and wait for a reply that will never come.
#[derive(Default)]
pub(crate) struct PendingCalls {
    inner: Mutex<PendingInner>,
    /// Set (under the lock) when closed: every call asks, and a load costs no lock.
    is_closed: AtomicBool,
}

#[derive(Default)]
struct PendingInner {
    /// Each waiting message's reply channel, its send sequence number, and whether it is a
    /// call (not a heartbeat).
    waiting: HashMap<IdKey, (oneshot::Sender<Reply>, u64, bool), BuildHasherDefault<IdHasher>>,
    /// How many of `waiting` are calls.
    calls: usize,
    closed: Option<Arc<dyn Fn() -> Error + Send + Sync>>,
}

impl PendingCalls {
    /// Registers a call (or, with `is_call` false, a heartbeat); fails with the closing error
    /// when the connection is closed.
    pub fn register(
        &self,
        id: &str,
        seq: u64,
        is_call: bool,
    ) -> Result<oneshot::Receiver<Reply>, Error> {
        let mut inner = self.inner.lock().expect("pending lock");
        if let Some(closed) = &inner.closed {
            return Err(closed());
        }
        let key = key(id).ok_or_else(|| {
            Error::Transport(format!("message id {id:?} is not a UUID's text (36 bytes)"))
        })?;
        let (sender, receiver) = oneshot::channel();
        inner.waiting.insert(key, (sender, seq, is_call));
        inner.calls += usize::from(is_call);
        Ok(receiver)
    }

    /// Hands a reply to the call waiting for it and returns that call's sequence number;
    /// `None` when nobody waits for that id (a late reply to a call that timed out, or a stray
    /// message).
    pub fn complete(&self, id: &str, reply: Reply) -> Option<u64> {
        let waiting = self.inner.lock().expect("pending lock").take(id);
        waiting.map(|(sender, seq)| {
            let _ = sender.send(reply);
            seq
        })
    }

    /// Forgets a call (it timed out or its caller went away).
    pub fn remove(&self, id: &str) {
        self.inner.lock().expect("pending lock").take(id);
    }

    /// Fails every waiting call and all future ones with `error()`. The first close wins.
    pub fn close(&self, error: impl Fn() -> Error + Send + Sync + 'static) {
        let error: Arc<dyn Fn() -> Error + Send + Sync> = Arc::new(error);
        {
            let mut inner = self.inner.lock().expect("pending lock");
            if inner.closed.is_some() {
                return;
            }
            // From here on `register` fails, so the drain below misses no call.
            inner.closed = Some(error.clone());
            self.is_closed.store(true, Ordering::Release);
        }
        self.fail_all(|| error());
    }

    /// Fails every call waiting now with `error()`, without closing: later calls may proceed.
    pub fn fail_all(&self, error: impl Fn() -> Error) {
        let drained: Vec<_> = {
            let mut inner = self.inner.lock().expect("pending lock");
            inner.calls = 0;
            inner.waiting.drain().collect()
        };
        for (_, (sender, _, _)) in drained {
            let _ = sender.send(Err(error()));
        }
    }

    /// Whether the table is closed (see [`close`](Self::close)).
    pub fn is_closed(&self) -> bool {
        self.is_closed.load(Ordering::Acquire)
    }

    /// The closing error, if closed.
    pub fn closed_error(&self) -> Option<Error> {
        self.inner
            .lock()
            .expect("pending lock")
            .closed
            .as_ref()
            .map(|e| e())
    }

    /// Calls waiting now (heartbeats are not counted).
    pub fn len(&self) -> usize {
        self.inner.lock().expect("pending lock").calls
    }
}

impl PendingInner {
    /// Removes the entry of `id`, keeping the call count right.
    fn take(&mut self, id: &str) -> Option<(oneshot::Sender<Reply>, u64)> {
        let (sender, seq, is_call) = self.waiting.remove(&key(id)?)?;
        self.calls -= usize::from(is_call);
        Some((sender, seq))
    }
}

/// Removes its call from the table when dropped before its reply came: a call that times out
/// or is cancelled leaves nothing behind.
pub(crate) struct PendingGuard<'a> {
    pub pending: &'a PendingCalls,
    pub id: &'a str,
    /// Set once the reply came: `complete` took the entry already.
    pub answered: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.pending.remove(self.id);
        }
    }
}

/// The pending table's hasher. Its keys are ids this process drew at random (UUID v4 text),
/// so they need no protection from chosen collisions: a peer can only look ids up, never add
/// one. SipHash was 7% of a parent's CPU at 1,000 calls in flight (bench/PROFILE.md).
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
        }
        for &byte in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
