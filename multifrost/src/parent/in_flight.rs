//! What calls in flight on one connection may hold: a slot each (`max_in_flight`) and their
//! size in a byte budget (`max_in_flight_bytes`), and the slots of timed-out calls whose
//! message may still sit in the transport's queue.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// The slot a call holds while in flight: one of `max_in_flight`, and its size in the byte
/// budget.
pub(crate) struct Slot {
    _call: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

/// Why no slot was had.
pub(crate) enum NoSlot {
    /// The deadline passed while waiting.
    TimedOut,
    /// The connection closed.
    Closed,
}

/// The slots and bytes of one connection's calls in flight.
pub(crate) struct InFlightBudget {
    /// One permit per call in flight.
    slots: Arc<Semaphore>,
    /// One permit per KiB of calls in flight.
    bytes: Arc<Semaphore>,
    bytes_capacity: u32,
    /// The slots of timed-out calls whose message the child may not have read yet.
    expired: Mutex<ExpiredSlots>,
    expired_count: AtomicUsize,
}

/// Slots of timed-out calls, by send sequence and by id.
#[derive(Default)]
struct ExpiredSlots {
    by_seq: BTreeMap<u64, (String, Slot)>,
    by_id: HashMap<String, u64>,
}

impl InFlightBudget {
    pub fn new(max_in_flight: usize, max_in_flight_bytes: usize) -> Self {
        let budget_kib = kib(max_in_flight_bytes).min(Semaphore::MAX_PERMITS);
        InFlightBudget {
            slots: Arc::new(Semaphore::new(max_in_flight)),
            bytes: Arc::new(Semaphore::new(budget_kib)),
            bytes_capacity: budget_kib.min(u32::MAX as usize) as u32,
            expired: Mutex::new(ExpiredSlots::default()),
            expired_count: AtomicUsize::new(0),
        }
    }

    /// Waits for a call slot and for room in the byte budget, until `deadline`. A call larger
    /// than the whole budget waits for all of it.
    pub async fn acquire(&self, size: usize, deadline: Option<Instant>) -> Result<Slot, NoSlot> {
        let wanted = (kib(size) as u32).clamp(1, self.bytes_capacity);
        // Room now, the usual case: taken without a wait (permits left over exist only while
        // nobody waits, so this cannot pass a waiting call). The wait is boxed: its futures
        // would make every call's future larger.
        match self.slots.clone().try_acquire_owned() {
            Ok(call) => match self.bytes.clone().try_acquire_many_owned(wanted) {
                Ok(bytes) => {
                    return Ok(Slot {
                        _call: call,
                        _bytes: bytes,
                    })
                }
                Err(TryAcquireError::Closed) => return Err(NoSlot::Closed),
                Err(TryAcquireError::NoPermits) => {}
            },
            Err(TryAcquireError::Closed) => return Err(NoSlot::Closed),
            Err(TryAcquireError::NoPermits) => {}
        }
        Box::pin(self.wait_for_slot(wanted, deadline)).await
    }

    /// Waits for a slot and `wanted` KiB of the byte budget, until `deadline`.
    async fn wait_for_slot(&self, wanted: u32, deadline: Option<Instant>) -> Result<Slot, NoSlot> {
        let acquire = async {
            let call = self.slots.clone().acquire_owned().await.map_err(|_| ())?;
            let bytes = self
                .bytes
                .clone()
                .acquire_many_owned(wanted)
                .await
                .map_err(|_| ())?;
            Ok::<_, ()>(Slot {
                _call: call,
                _bytes: bytes,
            })
        };
        match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline.into(), acquire).await {
                Ok(slot) => slot.map_err(|_| NoSlot::Closed),
                Err(_) => Err(NoSlot::TimedOut),
            },
            None => acquire.await.map_err(|_| NoSlot::Closed),
        }
    }

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
    pub fn child_read_up_to(&self, id: &str, seq: Option<u64>) {
        if self.expired_count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut expired = self.expired.lock().expect("expired lock");
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

/// The byte budget counts KiB, so that it fits a semaphore's permits.
fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}
