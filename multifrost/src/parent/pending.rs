//! The table of calls waiting for their reply, keyed by message id.
//!
//! Each waiting message has an entry in a slab that its [`ReplyWait`] future polls: the reply
//! is written into the entry and the future woken, with no channel allocated per call (a
//! oneshot per call was a tenth of a parent's CPU at 1,000 calls in flight, with the table's
//! lookups; bench/PROFILE.md).

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

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
    /// The entry of each message waiting for its reply.
    waiting: HashMap<IdKey, usize, BuildHasherDefault<IdHasher>>,
    /// Entries, by index; a free one is reused before the slab grows.
    entries: Vec<Entry>,
    free: Vec<usize>,
    /// How many of `waiting` are calls (not heartbeats).
    calls: usize,
    closed: Option<Arc<dyn Fn() -> Error + Send + Sync>>,
}

/// One slab entry. The reply is held in place, not boxed: a call allocates nothing here once
/// the slab has grown to the calls in flight.
#[allow(clippy::large_enum_variant)]
enum Entry {
    Free,
    /// Registered and not answered yet: its send sequence number, whether it is a call, and
    /// the waker of the future waiting for it once polled.
    Waiting {
        seq: u64,
        is_call: bool,
        waker: Option<Waker>,
    },
    /// The reply (or why none will come), until its future takes it.
    Answered(Reply),
}

impl PendingCalls {
    /// Registers message `id` (a call, or with `is_call` false a heartbeat); the future that
    /// waits for its reply. Fails with the closing error when the connection is closed, and for
    /// an id that is not 36 bytes.
    pub fn register(&self, id: &str, seq: u64, is_call: bool) -> Result<ReplyWait<'_>, Error> {
        let key = key(id).ok_or_else(|| {
            Error::Transport(format!("message id {id:?} is not a UUID's text (36 bytes)"))
        })?;
        let mut inner = self.lock();
        if let Some(closed) = &inner.closed {
            return Err(closed());
        }
        let entry = Entry::Waiting {
            seq,
            is_call,
            waker: None,
        };
        let index = match inner.free.pop() {
            Some(index) => {
                inner.entries[index] = entry;
                index
            }
            None => {
                inner.entries.push(entry);
                inner.entries.len() - 1
            }
        };
        inner.waiting.insert(key, index);
        inner.calls += usize::from(is_call);
        Ok(ReplyWait {
            pending: self,
            key,
            index,
            done: false,
        })
    }

    /// Hands a reply to the message waiting for it and returns that message's sequence
    /// number; `None` when nobody waits for that id (a late reply to a call that timed out, or
    /// a stray message).
    pub fn complete(&self, id: &IdKey, reply: Reply) -> Option<u64> {
        let mut inner = self.lock();
        let index = inner.waiting.remove(id)?;
        let (seq, waker) = inner.answer(index, reply);
        drop(inner);
        if let Some(waker) = waker {
            waker.wake();
        }
        Some(seq)
    }

    /// Fails every waiting call and all future ones with `error()`. The first close wins.
    pub fn close(&self, error: impl Fn() -> Error + Send + Sync + 'static) {
        let error: Arc<dyn Fn() -> Error + Send + Sync> = Arc::new(error);
        {
            let mut inner = self.lock();
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
    fn fail_all(&self, error: impl Fn() -> Error) {
        let wakers: Vec<Waker> = {
            let mut inner = self.lock();
            let waiting: Vec<usize> = inner.waiting.drain().map(|(_, index)| index).collect();
            waiting
                .into_iter()
                .filter_map(|index| inner.answer(index, Err(error())).1)
                .collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// Whether the table is closed (see [`close`](Self::close)).
    pub fn is_closed(&self) -> bool {
        self.is_closed.load(Ordering::Acquire)
    }

    /// The closing error, if closed.
    pub fn closed_error(&self) -> Option<Error> {
        self.lock().closed.as_ref().map(|e| e())
    }

    /// Calls waiting now (heartbeats are not counted).
    pub fn len(&self) -> usize {
        self.lock().calls
    }

    fn lock(&self) -> MutexGuard<'_, PendingInner> {
        self.inner.lock().expect("pending lock")
    }
}

impl PendingInner {
    /// Puts `reply` in waiting entry `index` (already out of `waiting`): its sequence number,
    /// and the waker to wake once the lock is let go.
    fn answer(&mut self, index: usize, reply: Reply) -> (u64, Option<Waker>) {
        match std::mem::replace(&mut self.entries[index], Entry::Answered(reply)) {
            Entry::Waiting {
                seq,
                is_call,
                waker,
            } => {
                self.calls -= usize::from(is_call);
                (seq, waker)
            }
            _ => unreachable!("an entry in `waiting` is waiting"),
        }
    }

    fn release(&mut self, index: usize) {
        self.entries[index] = Entry::Free;
        self.free.push(index);
    }
}

/// Waits for the reply of one registered message. Dropped before the reply came (the call
/// timed out or was cancelled), it takes its entry out of the table: nothing is left behind.
pub(crate) struct ReplyWait<'a> {
    pending: &'a PendingCalls,
    key: IdKey,
    index: usize,
    /// Set once the reply was taken: the entry is free again.
    done: bool,
}

impl Future for ReplyWait<'_> {
    type Output = Reply;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Reply> {
        assert!(!self.done, "ReplyWait polled after its reply");
        let mut inner = self.pending.lock();
        let index = self.index;
        let entry = &mut inner.entries[index];
        if let Entry::Waiting { waker, .. } = entry {
            match waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        let Entry::Answered(reply) = std::mem::replace(entry, Entry::Free) else {
            unreachable!("a registered entry is not free before its reply is taken")
        };
        inner.free.push(index);
        drop(inner);
        self.done = true;
        Poll::Ready(reply)
    }
}

impl Drop for ReplyWait<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut inner = self.pending.lock();
        if let Entry::Waiting { is_call, .. } = inner.entries[self.index] {
            inner.waiting.remove(&self.key);
            inner.calls -= usize::from(is_call);
        }
        inner.release(self.index);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{encode_response, EncodedValue, Limits};
    use std::task::Wake;

    const A: &str = "00000000-0000-4000-8000-00000000000a";
    const B: &str = "00000000-0000-4000-8000-00000000000b";

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Count(std::sync::atomic::AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn reply_to(id: &str) -> Reply {
        let frame = encode_response(id, &EncodedValue::encode(&7).unwrap());
        Ok(RawMessage::parse(frame.into(), &Limits::default()).unwrap())
    }

    fn poll(wait: &mut ReplyWait<'_>, waker: &Arc<Count>) -> Poll<Reply> {
        let waker = Waker::from(waker.clone());
        Pin::new(wait).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn a_reply_reaches_its_waiter_and_wakes_it_once() {
        let pending = PendingCalls::default();
        let count = Arc::new(Count::default());
        let mut a = pending.register(A, 1, true).unwrap();
        let mut b = pending.register(B, 2, true).unwrap();
        assert_eq!(pending.len(), 2);
        assert!(poll(&mut a, &count).is_pending());
        assert!(poll(&mut b, &count).is_pending());
        assert_eq!(pending.complete(&key(B).unwrap(), reply_to(B)), Some(2));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        let Poll::Ready(Ok(reply)) = poll(&mut b, &count) else {
            panic!("b was answered")
        };
        assert_eq!(reply.id(), Some(B));
        assert!(poll(&mut a, &count).is_pending(), "a still waits");
        assert_eq!(pending.len(), 1);
        // A second reply to b answers nobody.
        assert_eq!(pending.complete(&key(B).unwrap(), reply_to(B)), None);
    }

    #[test]
    fn a_waiter_dropped_before_its_reply_leaves_nothing_behind() {
        let pending = PendingCalls::default();
        let count = Arc::new(Count::default());
        let mut a = pending.register(A, 1, true).unwrap();
        assert!(poll(&mut a, &count).is_pending());
        drop(a);
        assert_eq!(pending.len(), 0);
        assert_eq!(pending.complete(&key(A).unwrap(), reply_to(A)), None);
        // Answered but never polled: dropping it frees its entry too, which the next call reuses.
        let b = pending.register(B, 2, false).unwrap();
        assert_eq!(pending.len(), 0, "a heartbeat is not a call");
        assert_eq!(pending.complete(&key(B).unwrap(), reply_to(B)), Some(2));
        drop(b);
        let mut again = pending.register(A, 3, true).unwrap();
        assert_eq!(pending.lock().entries.len(), 1, "one entry, reused");
        assert_eq!(pending.complete(&key(A).unwrap(), reply_to(A)), Some(3));
        assert!(poll(&mut again, &count).is_ready());
    }

    #[test]
    fn closing_fails_every_waiter_and_every_later_registration() {
        let pending = PendingCalls::default();
        let count = Arc::new(Count::default());
        let mut polled = pending.register(A, 1, true).unwrap();
        let mut unpolled = pending.register(B, 2, true).unwrap();
        assert!(poll(&mut polled, &count).is_pending());
        pending.close(|| Error::Stopped { worker: "w".into() });
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the polled waiter is woken"
        );
        assert!(matches!(
            poll(&mut polled, &count),
            Poll::Ready(Err(Error::Stopped { .. }))
        ));
        assert!(matches!(
            poll(&mut unpolled, &count),
            Poll::Ready(Err(Error::Stopped { .. }))
        ));
        assert!(pending.is_closed());
        assert_eq!(pending.len(), 0);
        assert!(matches!(
            pending.register(A, 3, true),
            Err(Error::Stopped { .. })
        ));
        assert!(matches!(
            pending.closed_error(),
            Some(Error::Stopped { .. })
        ));
    }

    #[test]
    fn an_id_of_another_length_is_refused() {
        let pending = PendingCalls::default();
        assert!(matches!(
            pending.register("short", 1, true),
            Err(Error::Transport(_))
        ));
    }
}
