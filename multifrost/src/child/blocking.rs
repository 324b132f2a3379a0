//! The threads that run a worker's sync methods, so that the runtime keeps serving heartbeats
//! and other calls while one runs.
//!
//! tokio's `spawn_blocking` starts or wakes a thread for every call: with 1,000 small calls in
//! flight its pool grew to hundreds of threads, each woken for a few nanoseconds of work, and
//! a sync method cost a worker 30 µs of CPU more than the same `async fn` (bench/PROFILE.md).
//! Here calls wait in one queue, and a thread that finishes a call takes the next one without
//! sleeping: a burst of small calls is run by the threads already awake. Threads are added
//! only when calls wait while every thread is stuck in a long call: when no queued call has
//! started for [`STUCK_AFTER`], a monitor thread starts one more (up to
//! [`MAX_THREADS`]), so long calls still run side by side, as before. A thread idle for
//! [`IDLE_EXIT`] ends.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A queued call: the method, already bound to its arguments and its reply channel. It must
/// not panic (`run_blocking` catches the method's panic inside it): a pool thread counts on
/// returning from it.
type Job = Box<dyn FnOnce() + Send>;

/// Calls wait this long with no call starting before the pool adds a thread.
const STUCK_AFTER: Duration = Duration::from_millis(2);

/// At most this many threads run sync methods at once (tokio's blocking pool default).
const MAX_THREADS: usize = 512;

/// How long a thread done with a call waits awake for the next before it sleeps.
const SPIN: Duration = Duration::from_micros(30);

/// The monitor sleeps after finding the queue empty this many times in a row.
const MONITOR_PARKS_AFTER: u32 = 50;

/// A thread idle this long ends (the last one stays).
const IDLE_EXIT: Duration = Duration::from_secs(10);

/// The pool of the process: every worker's sync methods share it.
pub(crate) fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(Pool::default)
}

/// Threads taking sync calls from one queue.
#[derive(Default)]
pub(crate) struct Pool {
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
    /// Threads alive, how many of them wait for a call, and how many run one.
    threads: usize,
    idle: usize,
    busy: usize,
    /// Threads just done with a call, waiting awake for the next for [`SPIN`].
    spinning: usize,
    /// Calls taken from the queue so far: the monitor's proof of progress.
    started: u64,
    /// Whether the monitor thread exists, and whether it sleeps until it is needed.
    monitor: bool,
    monitor_parked: bool,
}

impl Pool {
    /// Queues `job` for the next free thread.
    pub fn submit(&'static self, job: Job) {
        let mut state = self.state.lock().expect("blocking pool lock");
        state.queue.push_back(job);
        self.queued.store(state.queue.len(), Ordering::Relaxed);
        if state.spinning >= state.queue.len() {
            return; // A thread awake for the next call takes it.
        }
        if state.idle > 0 {
            // One woken thread per queued call at most; a thread woken and not yet running
            // takes the next one anyway.
            if state.idle >= state.queue.len() {
                self.work.notify_one();
                return;
            }
        } else if state.threads == 0 {
            self.start_thread(&mut state);
            return;
        }
        // Calls wait for a busy thread: the monitor watches that they keep starting.
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
        loop {
            if let Some(job) = state.queue.pop_front() {
                state.started += 1;
                state.busy += 1;
                self.queued.store(state.queue.len(), Ordering::Relaxed);
                drop(state);
                job();
                state = self.state.lock().expect("blocking pool lock");
                state.busy -= 1;
                if state.queue.is_empty() && state.spinning == 0 {
                    // Calls often come in a stream: wait for the next one awake for a moment,
                    // which spares the caller a wake-up and this thread a sleep. One thread
                    // waiting awake is enough: more would take CPU time from the runtime's.
                    state.spinning += 1;
                    drop(state);
                    let spin_until = Instant::now() + SPIN;
                    'spin: loop {
                        for _ in 0..64 {
                            if self.queued.load(Ordering::Relaxed) > 0 {
                                break 'spin;
                            }
                            std::hint::spin_loop();
                        }
                        if Instant::now() >= spin_until {
                            break;
                        }
                    }
                    state = self.state.lock().expect("blocking pool lock");
                    state.spinning -= 1;
                }
                continue;
            }
            state.idle += 1;
            let (next, waited) = self
                .work
                .wait_timeout(state, IDLE_EXIT)
                .expect("blocking pool lock");
            state = next;
            state.idle -= 1;
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
            // Stuck: every thread is inside a call. A thread between calls that has not run
            // for a while (on a busy machine) is only waiting for a CPU: another would too.
            let stuck =
                state.started == started && !state.queue.is_empty() && state.busy == state.threads;
            if stuck && state.threads < MAX_THREADS {
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
}
