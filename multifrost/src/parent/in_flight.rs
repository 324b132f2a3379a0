//! What calls in flight on one connection may hold: a slot each (`max_in_flight`) and their
//! size in a byte budget (`max_in_flight_bytes`), and the slots of timed-out calls whose
//! message may still sit in the transport's queue.
//!
//! Free slots and KiB are one atomic word, so that a call takes both, and gives both back,
//! with one atomic instruction and no lock while nobody waits (two tokio semaphores took their
//! lock on every release: 3% of a parent's CPU at 1,000 calls in flight). Calls that find no
//! room queue in order and are handed room as it comes back, the first in line first.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// The slot a call holds while in flight: one of `max_in_flight`, and its size in the byte
/// budget. Dropping it gives both back.
pub(crate) struct Slot {
    room: Arc<Room>,
    kib: u32,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.room.give(self.kib);
    }
}

/// The deadline passed while waiting for a slot.
pub(crate) struct TimedOut;

/// The slots and bytes of one connection's calls in flight.
pub(crate) struct InFlightBudget {
    room: Arc<Room>,
    /// The slots of timed-out calls whose message the child may not have read yet.
    expired: Mutex<ExpiredSlots>,
    expired_count: AtomicUsize,
}

/// Free slots and KiB, and the calls waiting for them.
struct Room {
    /// Free slots in the high 32 bits, free KiB in the low 32.
    free: AtomicU64,
    /// Waiting calls not yet handed their room: a call that finds none gives those ahead of it
    /// their turn, and whoever gives room back hands it on.
    queued: AtomicUsize,
    queue: Mutex<Queue>,
    kib_capacity: u32,
}

/// The waiting calls, in the order they came.
#[derive(Default)]
struct Queue {
    next_ticket: u64,
    waiters: BTreeMap<u64, Waiter>,
}

struct Waiter {
    kib: u32,
    waker: Waker,
    /// Handed its room (taken from `free`), not yet polled.
    granted: bool,
}

/// `slots` slots and `kib` KiB, as `Room::free` holds them.
fn packed(slots: u32, kib: u32) -> u64 {
    (u64::from(slots) << 32) | u64::from(kib)
}

impl Room {
    /// Takes a slot and `kib` KiB if both are free.
    fn take(&self, kib: u32) -> bool {
        let mut free = self.free.load(Ordering::SeqCst);
        loop {
            let (slots, free_kib) = ((free >> 32) as u32, free as u32);
            if slots == 0 || free_kib < kib {
                return false;
            }
            match self.free.compare_exchange_weak(
                free,
                free - packed(1, kib),
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(now) => free = now,
            }
        }
    }

    /// Gives back a slot and `kib` KiB, and hands room to waiting calls.
    fn give(&self, kib: u32) {
        self.free.fetch_add(packed(1, kib), Ordering::SeqCst);
        // A call that queued after this load saw the room given back when it looked (it
        // counts itself in `queued` before it looks).
        if self.queued.load(Ordering::SeqCst) > 0 {
            self.hand_on();
        }
    }

    /// Hands free room to the waiting calls in order, until the first that does not fit.
    fn hand_on(&self) {
        let mut woken = Vec::new();
        {
            let mut queue = self.lock();
            for waiter in queue.waiters.values_mut() {
                if waiter.granted {
                    continue;
                }
                if !self.take(waiter.kib) {
                    break;
                }
                waiter.granted = true;
                self.queued.fetch_sub(1, Ordering::SeqCst);
                woken.push(waiter.waker.clone());
            }
        }
        for waker in woken {
            waker.wake();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().expect("in-flight queue lock")
    }
}

impl InFlightBudget {
    pub fn new(max_in_flight: usize, max_in_flight_bytes: usize) -> Self {
        let slots = max_in_flight.min(u32::MAX as usize) as u32;
        let kib_capacity = kib(max_in_flight_bytes).min(u32::MAX as usize) as u32;
        InFlightBudget {
            room: Arc::new(Room {
                free: AtomicU64::new(packed(slots, kib_capacity)),
                queued: AtomicUsize::new(0),
                queue: Mutex::default(),
                kib_capacity,
            }),
            expired: Mutex::new(ExpiredSlots::default()),
            expired_count: AtomicUsize::new(0),
        }
    }

    /// A slot with room for a call of `size` bytes if there is room now and nobody waits for
    /// it; `None` if not.
    pub fn try_acquire(&self, size: usize) -> Option<Slot> {
        let kib = self.kib_of(size);
        (self.room.queued.load(Ordering::SeqCst) == 0 && self.room.take(kib)).then(|| Slot {
            room: self.room.clone(),
            kib,
        })
    }

    /// Waits, behind the calls that waited first, for a slot with room for a call of `size`
    /// bytes, until `deadline`. A call larger than the whole budget waits for all of it.
    pub async fn acquire(&self, size: usize, deadline: Option<Instant>) -> Result<Slot, TimedOut> {
        let wait = SlotWait {
            room: &self.room,
            kib: self.kib_of(size),
            ticket: None,
        };
        match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline.into(), wait)
                .await
                .map_err(|_| TimedOut),
            None => Ok(wait.await),
        }
    }

    /// The KiB of the byte budget a call of `size` bytes takes.
    fn kib_of(&self, size: usize) -> u32 {
        (kib(size).min(u32::MAX as usize) as u32).clamp(1, self.room.kib_capacity.max(1))
    }
}

/// Slots of timed-out calls, by send sequence and by id.
#[derive(Default)]
struct ExpiredSlots {
    by_seq: BTreeMap<u64, (String, Slot)>,
    by_id: HashMap<String, u64>,
}

/// A call waiting for room. Dropped while waiting (its deadline passed, its future was
/// dropped), it leaves the queue, and gives back room it was handed but did not take.
struct SlotWait<'a> {
    room: &'a Arc<Room>,
    kib: u32,
    /// Its place in the queue, once queued.
    ticket: Option<u64>,
}

impl Future for SlotWait<'_> {
    type Output = Slot;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Slot> {
        let room = self.room;
        let mut queue = room.lock();
        let granted = match self.ticket {
            None => {
                // Counted before it looks, so that room given back from here on is handed on.
                let ahead = room.queued.fetch_add(1, Ordering::SeqCst);
                if ahead == 0 && room.take(self.kib) {
                    room.queued.fetch_sub(1, Ordering::SeqCst);
                    true
                } else {
                    let ticket = queue.next_ticket;
                    queue.next_ticket += 1;
                    let waiter = Waiter {
                        kib: self.kib,
                        waker: cx.waker().clone(),
                        granted: false,
                    };
                    queue.waiters.insert(ticket, waiter);
                    self.ticket = Some(ticket);
                    false
                }
            }
            Some(ticket) => {
                let waiter = queue.waiters.get_mut(&ticket).expect("a queued call");
                if waiter.granted {
                    queue.waiters.remove(&ticket);
                    self.ticket = None;
                    true
                } else {
                    if !waiter.waker.will_wake(cx.waker()) {
                        waiter.waker = cx.waker().clone();
                    }
                    false
                }
            }
        };
        drop(queue);
        if !granted {
            return Poll::Pending;
        }
        Poll::Ready(Slot {
            room: room.clone(),
            kib: self.kib,
        })
    }
}

impl Drop for SlotWait<'_> {
    fn drop(&mut self) {
        let Some(ticket) = self.ticket else { return };
        let waiter = self.room.lock().waiters.remove(&ticket);
        match waiter {
            Some(waiter) if waiter.granted => self.room.give(waiter.kib),
            Some(_) => {
                self.room.queued.fetch_sub(1, Ordering::SeqCst);
                // It may have been first in line, holding back calls that fit now.
                self.room.hand_on();
            }
            None => {}
        }
    }
}

impl InFlightBudget {
    /// A timed-out call's slot stays taken until the child has read past its message: its
    /// bytes sit in the transport's queue until then.
    pub fn expire(&self, id: &str, seq: u64, slot: Slot) {
        let mut expired = self.expired.lock().expect("expired lock");
        expired.by_seq.insert(seq, (id.to_owned(), slot));
        expired.by_id.insert(id.to_owned(), seq);
        self.expired_count
            .store(expired.by_seq.len(), Ordering::Relaxed);
    }

    /// The child answered message `id` (sequence `seq`, if still waited for): it has read
    /// every message sent before, so their slots are free again.
    pub fn child_read_up_to(&self, id: &[u8], seq: Option<u64>) {
        if self.expired_count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut expired = self.expired.lock().expect("expired lock");
        let id = std::str::from_utf8(id).unwrap_or_default();
        let Some(seq) = seq.or_else(|| expired.by_id.get(id).copied()) else {
            return;
        };
        let newer = expired.by_seq.split_off(&(seq + 1));
        let read = std::mem::replace(&mut expired.by_seq, newer);
        for (read_id, _) in read.values() {
            expired.by_id.remove(read_id);
        }
        self.expired_count
            .store(expired.by_seq.len(), Ordering::Relaxed);
    }
}

/// The byte budget counts KiB, so that it fits the low half of `Room::free`.
fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const KIB: usize = 1024;

    /// Polls `future` once: its output if it is ready.
    fn now_or_never<F: Future + Unpin>(future: &mut F) -> Option<F::Output> {
        let waker = Waker::noop();
        match Pin::new(future).poll(&mut Context::from_waker(waker)) {
            Poll::Ready(output) => Some(output),
            Poll::Pending => None,
        }
    }

    #[test]
    fn slots_and_bytes_both_bound_the_calls_in_flight() {
        let budget = InFlightBudget::new(2, 8 * KIB);
        let a = budget.try_acquire(10).expect("a slot");
        let b = budget.try_acquire(10).expect("a second slot");
        assert!(budget.try_acquire(10).is_none(), "two slots only");
        drop(a);
        let c = budget.try_acquire(7 * KIB).expect("the slot came back");
        drop(b);
        assert!(
            budget.try_acquire(2 * KIB).is_none(),
            "7 KiB of 8 are taken"
        );
        let d = budget.try_acquire(KIB).expect("1 KiB is left");
        drop((c, d));
        // Larger than the whole budget: it takes all of it.
        let all = budget.try_acquire(100 * KIB).expect("the whole budget");
        assert!(budget.try_acquire(1).is_none());
        drop(all);
        assert!(budget.try_acquire(1).is_some());
    }

    #[tokio::test]
    async fn waiting_calls_are_handed_room_in_the_order_they_came() {
        let budget = InFlightBudget::new(10, 4 * KIB);
        let held = budget.try_acquire(3 * KIB).unwrap();
        // First in line wants 2 KiB, second 1 KiB (which would fit now): the second waits its
        // turn, and so does a call that does not queue.
        let mut first = Box::pin(budget.acquire(2 * KIB, None));
        let mut second = Box::pin(budget.acquire(KIB, None));
        assert!(now_or_never(&mut first).is_none());
        assert!(now_or_never(&mut second).is_none());
        assert!(budget.try_acquire(1).is_none(), "no passing the queue");
        drop(held);
        let first = now_or_never(&mut first)
            .expect("first handed its room")
            .ok();
        let second = now_or_never(&mut second).expect("then the second").ok();
        assert!(first.is_some() && second.is_some());
        assert!(
            budget.try_acquire(KIB).is_some(),
            "1 KiB left, nobody waits"
        );
    }

    #[tokio::test]
    async fn a_call_that_stops_waiting_leaves_the_queue_and_gives_back_what_it_was_handed() {
        let budget = InFlightBudget::new(1, 4 * KIB);
        let held = budget.try_acquire(1).unwrap();
        // Its deadline passes: it leaves the line.
        let late = budget
            .acquire(1, Some(Instant::now() + Duration::from_millis(20)))
            .await;
        assert!(late.is_err());
        assert!(budget.room.lock().waiters.is_empty());
        // Handed the slot, then dropped before it took it: the slot comes back.
        let mut waiting = Box::pin(budget.acquire(1, None));
        assert!(now_or_never(&mut waiting).is_none());
        drop(held);
        drop(waiting);
        let mut next = Box::pin(budget.acquire(1, None));
        assert!(now_or_never(&mut next).is_some(), "the slot is free again");
    }

    #[tokio::test]
    async fn a_first_in_line_that_gives_up_lets_the_calls_behind_it_on() {
        let budget = InFlightBudget::new(10, 4 * KIB);
        let held = budget.try_acquire(3 * KIB).unwrap();
        let mut big = Box::pin(budget.acquire(4 * KIB, None));
        let mut small = Box::pin(budget.acquire(KIB, None));
        assert!(now_or_never(&mut big).is_none());
        assert!(now_or_never(&mut small).is_none());
        drop(big);
        assert!(
            now_or_never(&mut small).is_some(),
            "1 KiB was free all along"
        );
        drop(held);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_tasks_never_hold_more_than_the_budget() {
        let budget = Arc::new(InFlightBudget::new(3, 64 * KIB));
        let holding = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (budget, holding) = (budget.clone(), holding.clone());
                tokio::spawn(async move {
                    for _ in 0..2_000 {
                        let slot = match budget.try_acquire(10) {
                            Some(slot) => slot,
                            None => budget.acquire(10, None).await.ok().unwrap(),
                        };
                        assert!(holding.fetch_add(1, Ordering::SeqCst) < 3);
                        tokio::task::yield_now().await;
                        holding.fetch_sub(1, Ordering::SeqCst);
                        drop(slot);
                    }
                })
            })
            .collect();
        // A lost hand-off would leave a task waiting for ever: fail instead.
        let all = async {
            for task in tasks {
                task.await.expect("no task failed");
            }
        };
        tokio::time::timeout(Duration::from_secs(120), all)
            .await
            .expect("every task got its slots");
        assert_eq!(budget.room.free.load(Ordering::SeqCst), packed(3, 64));
    }
}
