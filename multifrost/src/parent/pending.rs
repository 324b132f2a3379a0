//! The table of calls waiting for their reply, found by the index their message id carries.
//!
//! Each waiting message has an entry in a slab that its [`ReplyWait`] future polls: the reply
//! is written into the entry and the future woken, with no channel allocated per call (a
//! oneshot per call was a tenth of a parent's CPU at 1,000 calls in flight, with the table's
//! lookups; bench/PROFILE.md). The table makes the ids of its messages, and each id carries
//! its entry's index ([`MessageId::tagged`]): a reply finds its entry without a hash map, and
//! the entry's own copy of the id tells a reply from a stray one.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::error::Error;
use crate::protocol::{EncodedValue, MessageId, MessageKind, RawMessage};

/// What a waiting message receives: its reply, or why none will come (boxed: rare, and large).
pub(crate) type Reply = Result<Received, Box<Error>>;

/// A reply, as what waits for it reads it: a `response` is reduced to its result, and only an
/// `error` reply (rare) is kept whole. A reply is moved from the receive loop through the
/// table to its caller, and sits in a table entry meanwhile: at a quarter of a parsed message's
/// size, each of those moves is a few register copies, not a `memcpy` call.
pub(crate) enum Received {
    /// A `response`: its result (nil when it has none).
    Result(EncodedValue),
    /// An `error` reply: its text and data are read from it.
    Error(Box<RawMessage>),
    /// A `heartbeat`: the echo a heartbeat waits for.
    Heartbeat,
}

impl Received {
    /// The reply `message` is, if it is of a type that answers a message of ours.
    pub fn of(message: RawMessage) -> Option<Received> {
        match message.kind {
            MessageKind::Response => Some(Received::Result(message.result())),
            MessageKind::Error => Some(Received::Error(Box::new(message))),
            MessageKind::Heartbeat => Some(Received::Heartbeat),
            _ => None,
        }
    }
}

/// An id of this process's messages: UUID text, 36 bytes, kept in place.
pub(crate) type IdKey = [u8; 36];

/// The key of `id`; `None` for an id of another length, which no message of ours has.
pub(crate) fn key(id: &[u8]) -> Option<IdKey> {
    id.try_into().ok()
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
    /// Entries, by index; a free one is reused before the slab grows.
    entries: Vec<Entry>,
    free: Vec<usize>,
    /// How many entries wait for a call's reply (heartbeats are not counted).
    calls: usize,
    closed: Option<Arc<dyn Fn() -> Error + Send + Sync>>,
}

/// One slab entry. A response is held in place, not boxed: a call allocates nothing here once
/// the slab has grown to the calls in flight (only an error reply, or a failure, is boxed).
enum Entry {
    Free,
    /// Registered and not answered yet: the message's id, its send sequence number, whether it
    /// is a call, and the waker of the future waiting for it once polled.
    Waiting {
        id: IdKey,
        seq: u64,
        is_call: bool,
        waker: Option<Waker>,
    },
    /// The reply (or why none will come), until its future takes it.
    Answered(Reply),
}

impl PendingCalls {
    /// Registers a message (a call, or with `is_call` false a heartbeat) with send sequence
    /// number `seq`: the id to send it with, and the future that waits for its reply. Fails
    /// with the closing error when the connection is closed.
    pub fn register(&self, seq: u64, is_call: bool) -> Result<(MessageId, ReplyWait<'_>), Error> {
        let mut inner = self.lock();
        if let Some(closed) = &inner.closed {
            return Err(closed());
        }
        let index = match inner.free.pop() {
            Some(index) => index,
            None => {
                inner.entries.push(Entry::Free);
                inner.entries.len() - 1
            }
        };
        // A slab of more than u32::MAX entries would be four billion calls in flight on one
        // connection, which the in-flight budget never lets through.
        let tag = u32::try_from(index).expect("fewer than 2^32 messages in flight");
        let id = MessageId::tagged(tag);
        inner.entries[index] = Entry::Waiting {
            id: *id.as_bytes(),
            seq,
            is_call,
            waker: None,
        };
        inner.calls += usize::from(is_call);
        let wait = ReplyWait {
            pending: self,
            index,
            done: false,
        };
        Ok((id, wait))
    }

    /// Hands a reply to the message waiting for it and returns that message's sequence
    /// number; `None` when nobody waits for that id (a late reply to a call that timed out, or
    /// a stray message).
    pub fn complete(&self, id: &IdKey, reply: Reply) -> Option<u64> {
        let index = MessageId::tag_of(id) as usize;
        let mut inner = self.lock();
        match inner.entries.get(index) {
            Some(Entry::Waiting { id: waiting, .. }) if same_id(waiting, id) => {}
            _ => return None,
        }
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
            let waiting: Vec<usize> = (inner.entries.iter().enumerate())
                .filter(|(_, entry)| matches!(entry, Entry::Waiting { .. }))
                .map(|(index, _)| index)
                .collect();
            waiting
                .into_iter()
                .filter_map(|index| inner.answer(index, Err(Box::new(error()))).1)
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

/// Whether two ids are equal, compared in words: `==` on two 36-byte arrays is a `memcmp`
/// call.
#[inline]
fn same_id(a: &IdKey, b: &IdKey) -> bool {
    let word = |id: &IdKey, at: usize| u64::from_ne_bytes(id[at..at + 8].try_into().expect("8"));
    let tail = |id: &IdKey| u32::from_ne_bytes(id[32..].try_into().expect("4"));
    (word(a, 0) ^ word(b, 0))
        | (word(a, 8) ^ word(b, 8))
        | (word(a, 16) ^ word(b, 16))
        | (word(a, 24) ^ word(b, 24))
        | u64::from(tail(a) ^ tail(b))
        == 0
}

impl PendingInner {
    /// Puts `reply` in waiting entry `index`: its sequence number, and the waker to wake once
    /// the lock is let go.
    fn answer(&mut self, index: usize, reply: Reply) -> (u64, Option<Waker>) {
        match std::mem::replace(&mut self.entries[index], Entry::Answered(reply)) {
            Entry::Waiting {
                seq,
                is_call,
                waker,
                ..
            } => {
                self.calls -= usize::from(is_call);
                (seq, waker)
            }
            _ => unreachable!("only a waiting entry is answered"),
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
            inner.calls -= usize::from(is_call);
        }
        inner.release(self.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{encode_response, EncodedValue, Limits};
    use std::task::Wake;

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Count(std::sync::atomic::AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A response to `id` whose result is `id` itself, as the receive loop makes it.
    fn reply_to(id: &str) -> Reply {
        let frame = encode_response(id, &EncodedValue::encode(id).unwrap());
        let message = RawMessage::parse(frame.into(), &Limits::default()).unwrap();
        Ok(Received::of(message).expect("a response answers"))
    }

    /// Completes `id` with a reply of its own, as the receive loop does.
    fn answer(pending: &PendingCalls, id: &MessageId) -> Option<u64> {
        pending.complete(id.as_bytes(), reply_to(id.as_str()))
    }

    fn poll(wait: &mut ReplyWait<'_>, waker: &Arc<Count>) -> Poll<Reply> {
        let waker = Waker::from(waker.clone());
        Pin::new(wait).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn a_reply_reaches_its_waiter_and_wakes_it_once() {
        let pending = PendingCalls::default();
        let count = Arc::new(Count::default());
        let (_, mut a) = pending.register(1, true).unwrap();
        let (b_id, mut b) = pending.register(2, true).unwrap();
        assert_eq!(pending.len(), 2);
        assert!(poll(&mut a, &count).is_pending());
        assert!(poll(&mut b, &count).is_pending());
        assert_eq!(answer(&pending, &b_id), Some(2));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        let Poll::Ready(Ok(Received::Result(result))) = poll(&mut b, &count) else {
            panic!("b was answered")
        };
        assert_eq!(result.decode::<String>().unwrap(), b_id.as_str());
        assert!(poll(&mut a, &count).is_pending(), "a still waits");
        assert_eq!(pending.len(), 1);
        // A second reply to b answers nobody.
        assert_eq!(answer(&pending, &b_id), None);
    }

    #[test]
    fn a_waiter_dropped_before_its_reply_leaves_nothing_behind() {
        let pending = PendingCalls::default();
        let count = Arc::new(Count::default());
        let (a_id, mut a) = pending.register(1, true).unwrap();
        assert!(poll(&mut a, &count).is_pending());
        drop(a);
        assert_eq!(pending.len(), 0);
        assert_eq!(answer(&pending, &a_id), None);
        // Answered but never polled: dropping it frees its entry too, which the next call reuses.
        let (b_id, b) = pending.register(2, false).unwrap();
        assert_eq!(pending.len(), 0, "a heartbeat is not a call");
        assert_eq!(answer(&pending, &b_id), Some(2));
        drop(b);
        let (again_id, mut again) = pending.register(3, true).unwrap();
        assert_eq!(pending.lock().entries.len(), 1, "one entry, reused");
        assert_eq!(
            answer(&pending, &a_id),
            None,
            "an earlier id of the same entry"
        );
        assert_eq!(
            answer(&pending, &b_id),
            None,
            "an earlier id of the same entry"
        );
        assert_eq!(answer(&pending, &again_id), Some(3));
        assert!(poll(&mut again, &count).is_ready());
    }

    #[test]
    fn an_id_that_is_not_one_of_its_waiters_answers_nobody() {
        let pending = PendingCalls::default();
        let count = Arc::new(Count::default());
        // A call whose last four digits hold a letter (a few tries; each retry frees the entry),
        // and a second call, so that another live entry has a tag too.
        let (id, mut wait) = loop {
            let (id, wait) = pending.register(1, true).unwrap();
            if id.as_bytes()[32..].iter().any(u8::is_ascii_lowercase) {
                break (id, wait);
            }
        };
        let (second, mut second_wait) = pending.register(2, true).unwrap();
        let tag = MessageId::tag_of(id.as_bytes());
        // One digit off outside the tag's digits: same tag.
        let mut one_off = *id.as_bytes();
        one_off[9] = if one_off[9] == b'0' { b'1' } else { b'0' };
        // A letter of the last digits in upper case reads as the same tag too: only the whole
        // id's compare tells it apart.
        let mut upper = *id.as_bytes();
        let letter = (32..36).find(|&at| upper[at].is_ascii_lowercase()).unwrap();
        upper[letter] = upper[letter].to_ascii_uppercase();
        assert_eq!(MessageId::tag_of(&one_off), tag);
        assert_eq!(MessageId::tag_of(&upper), tag);
        let strays = [
            one_off,
            upper,
            *MessageId::tagged(tag).as_bytes(),
            *MessageId::tagged(MessageId::tag_of(second.as_bytes())).as_bytes(),
            *MessageId::tagged(u32::MAX).as_bytes(),
            *b"zzzzzzzz-0000-4000-8000-0000zzzzzzzz",
        ];
        for stray in &strays {
            assert_eq!(pending.complete(stray, reply_to(id.as_str())), None);
        }
        assert!(poll(&mut wait, &count).is_pending(), "still waiting");
        assert!(poll(&mut second_wait, &count).is_pending(), "still waiting");
        assert_eq!(answer(&pending, &id), Some(1));
        assert_eq!(answer(&pending, &second), Some(2));
        assert!(poll(&mut wait, &count).is_ready());
        assert!(poll(&mut second_wait, &count).is_ready());
    }

    #[test]
    fn ids_in_flight_together_are_distinct_and_name_their_own_entry() {
        let pending = PendingCalls::default();
        let waits: Vec<_> = (0..500)
            .map(|seq| pending.register(seq, true).unwrap())
            .collect();
        let ids: std::collections::HashSet<IdKey> =
            waits.iter().map(|(id, _)| *id.as_bytes()).collect();
        assert_eq!(ids.len(), waits.len());
        // Answered in another order than registered, each reply finds its own call.
        for (seq, (id, _)) in waits.iter().enumerate().rev() {
            assert_eq!(answer(&pending, id), Some(seq as u64));
        }
        assert_eq!(pending.len(), 0);
    }

    #[test]
    fn closing_fails_every_waiter_and_every_later_registration() {
        let pending = PendingCalls::default();
        let count = Arc::new(Count::default());
        let (_, mut polled) = pending.register(1, true).unwrap();
        let (_, mut unpolled) = pending.register(2, true).unwrap();
        assert!(poll(&mut polled, &count).is_pending());
        pending.close(|| Error::Stopped { worker: "w".into() });
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the polled waiter is woken"
        );
        for wait in [&mut polled, &mut unpolled] {
            let Poll::Ready(Err(error)) = poll(wait, &count) else {
                panic!("failed by the close")
            };
            assert!(matches!(*error, Error::Stopped { .. }));
        }
        assert!(pending.is_closed());
        assert_eq!(pending.len(), 0);
        assert!(matches!(
            pending.register(3, true),
            Err(Error::Stopped { .. })
        ));
        assert!(matches!(
            pending.closed_error(),
            Some(Error::Stopped { .. })
        ));
    }
}
