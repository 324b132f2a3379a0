//! The threads that run a worker's sync methods, so that the runtime keeps serving heartbeats
//! and other calls while one runs.
//!
//! tokio's `spawn_blocking` starts or wakes a thread for every call: with 1,000 small calls in
//! flight its pool grew to hundreds of threads, each woken for a few nanoseconds of work, and
//! a sync method cost a worker 30 µs of CPU more than the same `async fn` (bench/PROFILE.md).
//! Here calls wait in one queue, and a thread that finishes a call takes the next one without
//! sleeping: a burst of small calls is run by the thread already awake, and sleeping threads
//! are woken only when none is awake. After a call that came alone, one thread waits awake for
//! the next for a moment ([`SPIN`], [`LONG_SPIN`]), for calls made one after another: a
//! stream of such calls keeps that thread's CPU busy, yielding it to any other thread that
//! wants it. When no queued call has started for [`STUCK_AFTER`] (the awake thread took a long
//! call), a monitor thread wakes a sleeping one, or, when every thread is inside a call,
//! starts one more (up to [`MAX_THREADS`]), so long calls still run side by side, as before. A
//! thread idle for [`IDLE_EXIT`] ends.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A queued call: the method, already bound to its arguments and to where its answer goes. It
/// catches its method's panic itself (`run_blocking`, `Server::blocking_call`); the pool
/// catches anything else, so that its thread and its counts stay right.
pub(crate) type Job = Box<dyn Run>;

/// What the pool runs. A closure is one; a job may also be a struct that, once run, hands
/// itself back to the thread that made it (`Server::blocking_call`), so that its memory is
/// freed where it was allocated.
pub(crate) trait Run: Send {
    fn run(self: Box<Self>);
}

impl<F: FnOnce() + Send> Run for F {
    fn run(self: Box<Self>) {
        (*self)()
    }
}

/// Calls wait this long with no call starting before the pool adds a thread.
const STUCK_AFTER: Duration = Duration::from_millis(2);

/// At most this many threads run sync methods at once (tokio's blocking pool default).
const MAX_THREADS: usize = 512;

/// How long a thread done with a call that came alone (the one call it ran since it last found
/// the queue empty) waits awake for the next before it sleeps. After a burst of calls it sleeps
/// at once: waiting awake there took CPU time from the runtime's thread, which had the next
/// calls to read (bench/PROFILE.md).
const SPIN: Duration = Duration::from_micros(30);

/// How long it waits instead while waiting that long catches the next call. Calls made one
/// after another, each after the last one's reply, come 30 µs to 60 µs apart here: a thread
/// asleep by then (and its CPU idle, which a virtual machine's hypervisor takes back) cost such
/// calls 30 µs at the median and 100 µs at the 99th percentile (bench/PROFILE.md). Where the
/// next call comes later than this anyway, waiting this long is only tried again every
/// [`PROBE_EVERY`] lone calls.
const LONG_SPIN: Duration = Duration::from_micros(150);

/// See [`LONG_SPIN`].
const PROBE_EVERY: u32 = 16;

/// The monitor sleeps after finding the queue empty this many times in a row.
const MONITOR_PARKS_AFTER: u32 = 50;

/// A thread idle this long ends (the last one stays).
const IDLE_EXIT: Duration = Duration::from_secs(10);

/// The pool of the process: every worker's sync methods share it.
pub(crate) fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool::with_spin(SPIN, LONG_SPIN))
}

/// Threads taking sync calls from one queue.
pub(crate) struct Pool {
    /// How long a thread done with a lone call waits awake for the next ([`SPIN`]), and how
    /// long while that long catches it ([`LONG_SPIN`]).
    spin: Duration,
    long_spin: Duration,
    state: Mutex<State>,
    /// Idle threads wait here for a call.
    work: Condvar,
    /// The monitor waits here for calls queued while no thread is idle.
    watch: Condvar,
    /// The queue's length, for threads waiting awake.
    queued: AtomicUsize,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Threads alive, how many of them wait for a call (and of those, how many were woken and
    /// have not run yet), and how many run one.
    threads: usize,
    idle: usize,
    woken: usize,
    busy: usize,
    /// Threads just done with a call, waiting awake for the next (see [`SPIN`]).
    spinning: usize,
    /// Calls taken from the queue so far: the monitor's proof of progress.
    started: u64,
    /// Whether the monitor thread exists, and whether it sleeps until it is needed.
    monitor: bool,
    monitor_parked: bool,
}

/// Whether a thread waits [`LONG_SPIN`] or [`SPIN`] after its next lone call: long while
/// that caught the next call, and once every [`PROBE_EVERY`] lone calls otherwise.
#[derive(Debug, Default)]
struct Patience {
    /// The last long wait came out empty.
    missed: bool,
    /// Lone calls since then.
    since: u32,
}

impl Patience {
    /// Whether to wait long after this lone call.
    fn long(&mut self) -> bool {
        if !self.missed {
            return true;
        }
        self.since += 1;
        if self.since >= PROBE_EVERY {
            self.since = 0;
            return true;
        }
        false
    }

    /// A wait, long or not, that `caught` the next call or not.
    fn waited(&mut self, long: bool, caught: bool) {
        if long {
            self.missed = !caught;
        }
    }
}

impl Pool {
    fn with_spin(spin: Duration, long_spin: Duration) -> Pool {
        Pool {
            spin,
            long_spin,
            state: Mutex::default(),
            work: Condvar::new(),
            watch: Condvar::new(),
            queued: AtomicUsize::new(0),
        }
    }

    /// Queues `job` for the next free thread.
    pub fn submit(&'static self, job: Job) {
        self.enqueue(std::iter::once(job));
    }

    /// Queues every job of `jobs` (which it leaves empty), in order, with one lock.
    pub fn submit_all(&'static self, jobs: &mut Vec<Job>) {
        if !jobs.is_empty() {
            self.enqueue(jobs.drain(..));
        }
    }

    fn enqueue(&'static self, jobs: impl Iterator<Item = Job>) {
        let mut state = self.state.lock().expect("blocking pool lock");
        state.queue.extend(jobs);
        self.queued.store(state.queue.len(), Ordering::Relaxed);
        self.wake_for_queue(&mut state);
    }

    /// Makes sure a thread will take each queued call: one waiting awake, one woken, one
    /// started, or the monitor watching.
    fn wake_for_queue(&'static self, state: &mut State) {
        if state.spinning >= state.queue.len() {
            return; // A thread awake for the next call takes it.
        }
        if state.spinning == 0 && state.idle > 0 {
            // Nobody awake: wake a thread, unless enough are woken already.
            if state.woken < state.idle && state.woken < state.queue.len() {
                state.woken += 1;
                self.work.notify_one();
            }
            if state.idle >= state.queue.len() {
                return;
            }
        } else if state.threads == 0 {
            self.start_thread(state);
            return;
        }
        // Calls wait for a thread awake (a burst of short calls is taken by it, faster than
        // waking others for them) or busy: the monitor watches that they keep starting, and
        // wakes or adds a thread when none has for STUCK_AFTER (the awake thread may have
        // taken a long call).
        if !state.monitor {
            let spawned = std::thread::Builder::new()
                .name("multifrost-blocking-monitor".into())
                .spawn(move || self.monitor());
            state.monitor = spawned.is_ok();
        } else if state.monitor_parked {
            state.monitor_parked = false;
            self.watch.notify_one();
        }
    }

    fn start_thread(&'static self, state: &mut State) {
        let spawned = std::thread::Builder::new()
            .name("multifrost-blocking".into())
            .spawn(move || self.run());
        match spawned {
            Ok(_) => state.threads += 1,
            // Out of threads: the call waits for a running one (there is one unless this is
            // the first, and then the next submit tries again).
            Err(err) => tracing::warn!("cannot start a thread for sync methods: {err}"),
        }
    }

    /// A pool thread: takes calls until idle for [`IDLE_EXIT`].
    fn run(&'static self) {
        let mut state = self.state.lock().expect("blocking pool lock");
        // Calls run since this thread last found the queue empty.
        let mut stretch = 0u32;
        let mut patience = Patience::default();
        loop {
            if let Some(job) = state.queue.pop_front() {
                stretch += 1;
                state.started += 1;
                state.busy += 1;
                self.queued.store(state.queue.len(), Ordering::Relaxed);
                drop(state);
                // A job catches its method's panics itself; this keeps the thread (and the
                // count of busy threads) right should anything else in it panic.
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run()));
                state = self.state.lock().expect("blocking pool lock");
                state.busy -= 1;
                if outcome.is_err() {
                    tracing::error!("a job of the threads for sync methods panicked");
                }
                if state.queue.is_empty() && state.spinning == 0 && stretch == 1 {
                    stretch = 0;
                    // Calls often come in a stream: wait for the next one awake for a moment,
                    // which spares the caller a wake-up and this thread a sleep. One thread
                    // waiting awake is enough: more would take CPU time from the runtime's.
                    state.spinning += 1;
                    drop(state);
                    let long = patience.long();
                    let spin_until = Instant::now() + if long { self.long_spin } else { self.spin };
                    let caught = 'spin: loop {
                        for _ in 0..64 {
                            if self.queued.load(Ordering::Relaxed) > 0 {
                                break 'spin true;
                            }
                            std::hint::spin_loop();
                        }
                        if Instant::now() >= spin_until {
                            break false;
                        }
                        // Awake, but not in the way: a thread that wants this core (the
                        // runtime's, sending the reply just made; the parent's) gets it.
                        std::thread::yield_now();
                    };
                    patience.waited(long, caught);
                    state = self.state.lock().expect("blocking pool lock");
                    state.spinning -= 1;
                } else if state.queue.is_empty() {
                    stretch = 0; // A burst ended: this thread sleeps.
                }
                continue;
            }
            stretch = 0;
            state.idle += 1;
            let (next, waited) = self
                .work
                .wait_timeout(state, IDLE_EXIT)
                .expect("blocking pool lock");
            state = next;
            state.idle -= 1;
            // Whether woken or timed out (a wake-up and a timeout can cross): the count may
            // only ever be too low, which costs a wake-up that was not needed, never too
            // high, which would leave a call waiting.
            state.woken = state.woken.saturating_sub(1);
            if waited.timed_out() && state.queue.is_empty() && state.threads > 1 {
                state.threads -= 1;
                return;
            }
        }
    }

    /// Adds a thread whenever calls wait and none has started for [`STUCK_AFTER`]. It sleeps
    /// once the queue has stayed empty for [`MONITOR_PARKS_AFTER`] checks, so that a burst of
    /// calls does not wake it call after call.
    fn monitor(&'static self) {
        let mut state = self.state.lock().expect("blocking pool lock");
        let mut empty_checks = 0;
        loop {
            if state.queue.is_empty() {
                empty_checks += 1;
                if empty_checks >= MONITOR_PARKS_AFTER {
                    state.monitor_parked = true;
                    while state.monitor_parked {
                        state = self.watch.wait(state).expect("blocking pool lock");
                    }
                    empty_checks = 0;
                }
            } else {
                empty_checks = 0;
            }
            let started = state.started;
            let (next, _) = self
                .watch
                .wait_timeout(state, STUCK_AFTER)
                .expect("blocking pool lock");
            state = next;
            let waiting = state.started == started && !state.queue.is_empty();
            if waiting && state.idle > 0 {
                // A thread sleeps while calls wait (a wake-up it missed): wake it.
                state.woken = (state.woken + 1).min(state.idle);
                self.work.notify_one();
            } else if waiting && state.busy == state.threads && state.threads < MAX_THREADS {
                // Stuck: every thread is inside a call. (A thread between calls that has not
                // run for a while, on a busy machine, is only waiting for a CPU: another
                // thread would too.)
                self.start_thread(&mut state);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn long_calls_run_side_by_side_and_short_ones_reuse_threads() {
        let pool = pool();
        // Four calls that each wait for all four to have started: they finish only if the
        // pool runs them at the same time.
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let (done, finished) = mpsc::channel();
        for _ in 0..4 {
            let barrier = barrier.clone();
            let done = done.clone();
            pool.submit(Box::new(move || {
                barrier.wait();
                done.send(()).unwrap();
            }));
        }
        for _ in 0..4 {
            finished
                .recv_timeout(Duration::from_secs(60))
                .expect("the pool ran four waiting calls side by side");
        }
        // 10,000 short calls: the pool does not grow a thread per call.
        let (done, finished) = mpsc::channel();
        for n in 0..10_000u32 {
            let done = done.clone();
            pool.submit(Box::new(move || done.send(n).unwrap()));
        }
        let mut seen = 0;
        while seen < 10_000 {
            finished.recv_timeout(Duration::from_secs(60)).unwrap();
            seen += 1;
        }
        let threads = pool.state.lock().unwrap().threads;
        assert!(threads < 64, "{threads} threads for short calls");
    }

    #[test]
    fn a_thread_waits_long_while_that_catches_the_next_call_and_probes_otherwise() {
        let mut patience = Patience::default();
        for _ in 0..100 {
            assert!(patience.long(), "long while long waits catch the next call");
            patience.waited(true, true);
        }
        assert!(patience.long());
        patience.waited(true, false);
        let longs: Vec<bool> = (0..2 * PROBE_EVERY)
            .map(|_| {
                let long = patience.long();
                patience.waited(long, false);
                long
            })
            .collect();
        assert_eq!(longs.iter().filter(|long| **long).count(), 2, "{longs:?}");
        assert!(longs[PROBE_EVERY as usize - 1], "{longs:?}");
        // A probe that catches the next call brings the long waits back.
        while !patience.long() {}
        patience.waited(true, true);
        assert!(patience.long());
    }

    #[test]
    fn a_queued_call_does_not_wait_behind_a_long_one_while_a_thread_is_idle() {
        // A pool of its own whose threads wait awake for 5 s after a call: of two threads, one
        // spins (it takes the next call) and the other sleeps.
        let pool: &'static Pool = Box::leak(Box::new(Pool::with_spin(
            Duration::from_secs(5),
            Duration::from_secs(5),
        )));
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let (done, finished) = mpsc::channel();
        for _ in 0..2 {
            let (barrier, done) = (barrier.clone(), done.clone());
            pool.submit(Box::new(move || {
                barrier.wait();
                done.send(()).unwrap();
            }));
        }
        for _ in 0..2 {
            finished.recv_timeout(Duration::from_secs(60)).unwrap();
        }
        // A long call and a short one queued together (as a burst of two is, before the
        // spinning thread takes the first): the spinning thread takes the long call, and the
        // short one must not wait for it (nor for the sleeping thread's idle timeout).
        let (release, released) = mpsc::channel::<()>();
        let (short_done, short_finished) = mpsc::channel();
        {
            let mut state = pool.state.lock().unwrap();
            state.queue.push_back(Box::new(move || {
                let _ = released.recv_timeout(Duration::from_secs(60));
            }));
            state
                .queue
                .push_back(Box::new(move || short_done.send(()).unwrap()));
            pool.queued.store(2, Ordering::Relaxed);
            pool.wake_for_queue(&mut state);
        }
        let started = Instant::now();
        let waited = short_finished.recv_timeout(Duration::from_secs(60));
        release.send(()).unwrap();
        waited.expect("the short call ran");
        assert!(
            started.elapsed() < IDLE_EXIT / 2,
            "the short call waited {:?} behind the long one",
            started.elapsed()
        );
    }
}
