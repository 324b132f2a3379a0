//! The [`Supervisor`] every handle of one worker shares: its lifecycle state, start, stop,
//! restarts and reconnects, the heartbeats, and the health around them (circuit breaker,
//! metrics).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use super::config::{Target, WorkerConfig};
use super::connection::Connection;
use super::health::{CircuitBreaker, CircuitState, Metrics};
use super::launch::Launch;
use super::options::CallOptions;
use super::process::ProcessWatch;
use crate::error::{Error, ExitStatus, Result};
use crate::protocol::{EncodedValue, DEFAULT_NAMESPACE};

/// Where the worker is in its life.
#[derive(Clone)]
enum State {
    NotStarted,
    Running(Arc<Connection>),
    /// Auto-restart gave up; the reason is what calls fail with.
    Failed(Arc<str>),
    Stopped,
}

pub(crate) struct Supervisor {
    pub config: WorkerConfig,
    pub name: Arc<str>,
    state: RwLock<State>,
    process: Mutex<Option<ProcessWatch>>,
    /// Serialises `start`, `stop` and restarts; calls made during a start wait on it.
    lifecycle: tokio::sync::Mutex<()>,
    pub breaker: CircuitBreaker,
    pub metrics: Metrics,
    /// Restarts since the worker last proved healthy.
    restart_streak: AtomicU32,
    /// Bumped on every state change, so calls can wait for a restart to finish.
    state_version: tokio::sync::watch::Sender<u64>,
    /// Bumped by every `stop()`, so that a restart in progress gives up at once.
    stops: tokio::sync::watch::Sender<u64>,
    /// This value itself, for tasks started from `&self` methods.
    self_ref: Weak<Supervisor>,
}

/// How long a call waits for a lost service to be reached again before failing.
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(3);

impl Supervisor {
    pub fn new(config: WorkerConfig) -> Arc<Supervisor> {
        Arc::new_cyclic(|self_ref| Supervisor {
            self_ref: self_ref.clone(),
            name: config.name.as_str().into(),
            breaker: CircuitBreaker::new(
                config.name.as_str().into(),
                config.circuit_threshold,
                config.circuit_cooldown,
            ),
            config,
            state: RwLock::new(State::NotStarted),
            process: Mutex::new(None),
            lifecycle: tokio::sync::Mutex::new(()),
            metrics: Metrics::default(),
            restart_streak: AtomicU32::new(0),
            state_version: tokio::sync::watch::Sender::new(0),
            stops: tokio::sync::watch::Sender::new(0),
        })
    }

    fn state(&self) -> State {
        self.state.read().expect("state lock").clone()
    }

    fn set_state(&self, state: State) -> State {
        let previous = std::mem::replace(&mut *self.state.write().expect("state lock"), state);
        self.state_version.send_modify(|version| *version += 1);
        previous
    }

    /// Waits until the state is no longer `Running(dead)`: a restart under way ends in a new
    /// connection, or in `Failed` when it gives up.
    async fn wait_for_restart(&self, dead: &Arc<Connection>) -> State {
        let mut changes = self.state_version.subscribe();
        loop {
            match self.state() {
                State::Running(current) if Arc::ptr_eq(&current, dead) => {}
                state => return state,
            }
            if changes.changed().await.is_err() {
                return self.state();
            }
        }
    }

    /// The live connection, or the reason there is none. A call made while `start` (or a
    /// restart) runs waits for it to finish.
    ///
    /// The waits for a restart and a reconnect are boxed: their futures are large, and every
    /// call's future would otherwise be as large and moved around on every call.
    pub async fn connection(&self) -> Result<Arc<Connection>> {
        let state = match self.state() {
            State::NotStarted => {
                drop(self.lifecycle.lock().await);
                self.state()
            }
            State::Running(connection) if connection.pending.is_closed() => {
                match self.config.target {
                    // The child died and a restart is under way: wait for its outcome.
                    Target::Spawn(_) if self.config.auto_restart => {
                        Box::pin(self.wait_for_restart(&connection)).await
                    }
                    Target::Spawn(_) => State::Running(connection),
                    // A service may have come back, maybe on another port: look again.
                    _ => return Box::pin(self.reconnect(connection)).await,
                }
            }
            state => state,
        };
        match state {
            State::Running(connection) => Ok(connection),
            State::NotStarted => Err(Error::NotStarted {
                worker: self.name.to_string(),
            }),
            State::Failed(reason) => Err(Error::StartFailed {
                worker: self.name.to_string(),
                reason: reason.to_string(),
            }),
            State::Stopped => Err(Error::Stopped {
                worker: self.name.to_string(),
            }),
        }
    }

    /// Connect mode: replaces a lost connection, if the service can be reached again now.
    /// Fails at once (with the reason) when the service is not registered or not answering.
    async fn reconnect(&self, dead: Arc<Connection>) -> Result<Arc<Connection>> {
        let _lifecycle = self.lifecycle.lock().await;
        match self.state() {
            State::Running(current) if Arc::ptr_eq(&current, &dead) => {}
            State::Running(current) => return Ok(current),
            _ => {
                return Err(Error::Stopped {
                    worker: self.name.to_string(),
                })
            }
        }
        let endpoint = match &self.config.target {
            Target::Service { id, .. } => {
                let registry = self.config.registry()?;
                match registry.lookup(id).await? {
                    Some(entry) => format!("tcp://127.0.0.1:{}", entry.port),
                    None => {
                        return Err(Error::Disconnected {
                            worker: self.name.to_string(),
                            reason: "the service is no longer registered".into(),
                        })
                    }
                }
            }
            Target::Endpoint(endpoint) => endpoint.clone(),
            Target::Spawn(_) => unreachable!("spawn mode does not reconnect"),
        };
        let deadline = Instant::now() + RECONNECT_TIMEOUT.min(self.config.start_timeout);
        let connection = self
            .launch()
            .connect(&endpoint, deadline)
            .await
            .map_err(|err| {
                tracing::warn!(worker = %self.name, error = %err, "reconnect failed");
                dead.pending.closed_error().unwrap_or(err)
            })?;
        tracing::info!(worker = %self.name, %endpoint, "reconnected");
        self.go_live(connection.clone());
        Ok(connection)
    }

    /// The live connection if there is one, without waiting.
    pub fn current_connection(&self) -> Option<Arc<Connection>> {
        match self.state() {
            State::Running(connection) => Some(connection),
            _ => None,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.process
            .lock()
            .expect("process lock")
            .as_ref()
            .and_then(|p| p.pid)
    }

    /// True when the worker runs, its connection is open and its circuit is closed.
    pub fn is_healthy(&self) -> bool {
        matches!(self.state(), State::Running(ref c) if !c.pending.is_closed())
            && self.breaker.state() == CircuitState::Closed
            && self.metrics.looks_alive()
    }

    /// One call through the breaker, with metrics and tracing.
    pub async fn call(
        &self,
        function: &str,
        args: &EncodedValue,
        options: &CallOptions,
    ) -> Result<EncodedValue> {
        let timeout = options.timeout.unwrap_or(self.config.default_timeout);
        let now = Instant::now();
        let deadline = timeout.map(|limit| now + limit);
        // The connection first: a call made during a start, a restart or a reconnect waits for
        // it, but never past its own deadline; a successful restart closes the circuit.
        let (connection, started) = match self.state() {
            // Live, the usual case: no wait (and no timer, wait or second clock read).
            State::Running(connection) if !connection.pending.is_closed() => (Ok(connection), now),
            _ => {
                let connection = Box::pin(self.connection_until(function, timeout, deadline)).await;
                (connection, Instant::now())
            }
        };
        let Some(admission) = self.breaker.admit() else {
            return Err(Error::CircuitOpen {
                worker: self.name.to_string(),
            });
        };
        let namespace = options.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
        let correlation_id = options.correlation_id_value();
        tracing::trace!(worker = %self.name, function, namespace, correlation_id, "call start");
        let _in_flight = self.metrics.call_started();
        let mut record = DropRecord {
            metrics: &self.metrics,
            started,
            ended: false,
        };
        let result = match connection {
            Ok(connection) => {
                connection
                    .call(function, args, options, timeout, started, deadline)
                    .await
            }
            Err(err) => Err(err),
        };
        record.ended = true;
        let elapsed = started.elapsed();
        self.metrics.call_finished(elapsed, result.is_ok());
        let duration_ms = elapsed.as_secs_f64() * 1000.0;
        match &result {
            Ok(_) => {
                self.breaker.on_success(admission);
                self.restart_streak.store(0, Ordering::Relaxed);
                tracing::debug!(worker = %self.name, function, namespace, correlation_id, duration_ms, "call ok");
            }
            Err(err) if err.is_worker_failure() => {
                self.breaker.on_failure(admission);
                tracing::warn!(worker = %self.name, function, namespace, correlation_id, duration_ms, error = %err, "call failed");
            }
            Err(err) => {
                self.breaker.on_success(admission);
                tracing::debug!(worker = %self.name, function, namespace, correlation_id, duration_ms, error = %err, "call returned an error");
            }
        }
        result
    }

    /// [`connection`](Self::connection), waited for no longer than the call's `deadline`.
    async fn connection_until(
        &self,
        function: &str,
        timeout: Option<Duration>,
        deadline: Option<Instant>,
    ) -> Result<Arc<Connection>> {
        match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline.into(), self.connection())
                .await
                .unwrap_or_else(|_| {
                    Err(Error::Timeout {
                        worker: self.name.to_string(),
                        function: function.to_owned(),
                        timeout: timeout.unwrap_or_default(),
                    })
                }),
            None => self.connection().await,
        }
    }

    /// Starts the worker unless it is already running; returns once it answered a heartbeat.
    /// With auto-restart on, a failing start is retried like a restart.
    pub async fn start(self: &Arc<Self>) -> Result<()> {
        let _lifecycle = self.lifecycle.lock().await;
        if let State::Running(connection) = self.state() {
            if !connection.pending.is_closed() {
                return Ok(());
            }
        }
        let mut attempt = 0;
        loop {
            match self.connect_once().await {
                Ok(connection) => {
                    self.go_live(connection);
                    tracing::info!(worker = %self.name, pid = ?self.pid(), "worker started");
                    return Ok(());
                }
                Err(err)
                    if self.config.auto_restart && attempt < self.config.max_restart_attempts =>
                {
                    attempt += 1;
                    tracing::warn!(worker = %self.name, attempt, error = %err, "start failed; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(err) => {
                    if attempt > 0 {
                        self.set_state(State::Failed(err.to_string().into()));
                    }
                    return Err(err);
                }
            }
        }
    }

    /// Makes `connection` the live one and starts its heartbeats.
    fn go_live(&self, connection: Arc<Connection>) {
        if let (Some(interval), Some(shared)) =
            (self.config.heartbeat_interval, self.self_ref.upgrade())
        {
            let task = tokio::spawn(heartbeat_loop(
                Arc::downgrade(&shared),
                connection.clone(),
                interval,
                self.pid(),
            ));
            connection.add_task(task.abort_handle());
        }
        // A new connection starts healthy; its heartbeats will say otherwise.
        self.metrics.set_responsive(true);
        self.metrics.set_process_stopped(false);
        self.set_state(State::Running(connection));
    }

    fn launch(&self) -> Launch<'_> {
        Launch {
            config: &self.config,
            name: &self.name,
        }
    }

    /// One attempt at a live connection: spawn the child, or find and connect to the service.
    async fn connect_once(self: &Arc<Self>) -> Result<Arc<Connection>> {
        let deadline = Instant::now() + self.config.start_timeout;
        match &self.config.target {
            Target::Spawn(spec) => {
                let supervisor = Arc::downgrade(self);
                let on_exit = move |connection: &Arc<Connection>| {
                    if let Some(supervisor) = supervisor.upgrade() {
                        supervisor.restart_if_current(connection);
                    }
                };
                let (connection, process) = self.launch().spawn(spec, deadline, on_exit).await?;
                *self.process.lock().expect("process lock") = Some(process);
                Ok(connection)
            }
            Target::Endpoint(endpoint) => self.launch().connect(endpoint, deadline).await,
            Target::Service {
                id,
                discovery_timeout,
            } => {
                let registry = self.config.registry()?;
                let entry = registry.discover(id, *discovery_timeout).await?;
                let endpoint = format!("tcp://127.0.0.1:{}", entry.port);
                self.launch().connect(&endpoint, deadline).await
            }
        }
    }

    /// With auto-restart on, replaces the child behind `dead` (if it is still the live one).
    fn restart_if_current(self: &Arc<Self>, dead: &Arc<Connection>) {
        if self.config.auto_restart {
            self.replace(dead);
        }
    }

    /// Replaces the child behind `dead` in spawn mode (if it is still the live one).
    fn replace(self: &Arc<Self>, dead: &Arc<Connection>) {
        if !matches!(self.config.target, Target::Spawn(_)) {
            return;
        }
        let supervisor = self.clone();
        let dead = dead.clone();
        tokio::spawn(async move { supervisor.restart(dead).await });
    }

    /// Replaces the child behind `dead`, unless it was replaced or stopped meanwhile; a
    /// `stop()` cancels it wherever it is (backoff, spawn, readiness probe).
    async fn restart(self: Arc<Self>, dead: Arc<Connection>) {
        let mut stops = self.stops.subscribe();
        let _lifecycle = self.lifecycle.lock().await;
        match self.state() {
            State::Running(current) if Arc::ptr_eq(&current, &dead) => {}
            _ => return, // Stopped, or already replaced.
        }
        tokio::select! {
            () = self.restart_attempts() => {}
            _ = stops.changed() => {
                tracing::info!(worker = %self.name, "restart cancelled by stop()");
            }
        }
    }

    async fn restart_attempts(self: &Arc<Self>) {
        let old = self.process.lock().expect("process lock").take();
        if let Some(mut old) = old {
            old.kill().await;
        }
        loop {
            let attempt = self.restart_streak.fetch_add(1, Ordering::Relaxed) + 1;
            if attempt > self.config.max_restart_attempts {
                let reason = format!(
                    "gave up after {} restart attempts in a row",
                    self.config.max_restart_attempts
                );
                tracing::error!(worker = %self.name, "{reason}");
                self.set_state(State::Failed(reason.into()));
                return;
            }
            tokio::time::sleep(backoff(attempt)).await;
            match self.connect_once().await {
                Ok(connection) => {
                    self.metrics.restarts.fetch_add(1, Ordering::Relaxed);
                    self.breaker.close();
                    self.go_live(connection);
                    tracing::info!(worker = %self.name, pid = ?self.pid(), attempt, "worker restarted");
                    return;
                }
                Err(err) => {
                    tracing::warn!(worker = %self.name, attempt, error = %err, "restart failed")
                }
            }
        }
    }

    /// Nothing came from the worker for `restart_on_unresponsive`: its calls fail, and it is
    /// replaced (spawn mode) or disconnected (connect mode: the next call connects again).
    fn replace_silent(self: &Arc<Self>, connection: &Arc<Connection>, misses: u32) {
        tracing::warn!(worker = %self.name, misses, "worker silent for too long; replacing it");
        let worker = self.name.clone();
        connection.close(move || Error::Unresponsive {
            worker: worker.to_string(),
            misses,
        });
        self.replace(connection);
    }

    /// Stops the worker: `shutdown`, a short wait for a clean exit, then a kill. In connect mode
    /// it only disconnects. Returns the process's exit status in spawn mode.
    pub async fn stop(&self) -> Option<ExitStatus> {
        // A restart in progress holds the lifecycle lock: make it give up first.
        self.stops.send_modify(|count| *count += 1);
        let _lifecycle = self.lifecycle.lock().await;
        let previous = self.set_state(State::Stopped);
        let process = self.process.lock().expect("process lock").take();
        let State::Running(connection) = previous else {
            return None;
        };
        let mut status = None;
        if let Some(mut process) = process {
            // A Rust child sends what it printed before its replies: once this heartbeat is
            // echoed, its output so far has arrived (a worker too busy to echo is not waited
            // for long).
            let _ = connection.heartbeat(Duration::from_millis(500)).await;
            connection.expect_exit();
            let _ = connection.send_shutdown();
            status = match tokio::time::timeout(self.config.stop_timeout, process.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    tracing::warn!(worker = %self.name, "worker did not exit after shutdown; killing it");
                    process.kill().await
                }
            };
            // And what it wrote to its own stdout and stderr, up to their end.
            process.pipes.finished(Duration::from_secs(1)).await;
        }
        let worker = self.name.clone();
        connection.close(move || Error::Stopped {
            worker: worker.to_string(),
        });
        tracing::info!(worker = %self.name, status = ?status, "worker stopped");
        status
    }
}

/// Counts a call whose future is dropped before it ends.
struct DropRecord<'a> {
    metrics: &'a Metrics,
    started: Instant,
    ended: bool,
}

impl Drop for DropRecord<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.metrics.call_dropped(self.started.elapsed());
        }
    }
}

/// Delay before restart attempt `attempt` (1-based): 100 ms doubling, at most 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.saturating_sub(1).min(6)))
        .min(Duration::from_secs(5))
}

/// Sends a heartbeat every `interval` on its own task, so a long call never delays it, and
/// keeps the worker's health up to date. Missed heartbeats alone never fail a call nor open the
/// circuit (a worker that runs one call at a time answers none while busy): after
/// `heartbeat_max_misses` with nothing else heard, the worker is marked unresponsive; only
/// `restart_on_unresponsive` acts on silence, and only after that long.
async fn heartbeat_loop(
    supervisor: Weak<Supervisor>,
    connection: Arc<Connection>,
    interval: Duration,
    pid: Option<u32>,
) {
    let mut misses = 0u32;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(timeout) = supervisor.upgrade().map(|s| s.config.heartbeat_timeout) else {
            return;
        };
        // Whatever the child sent before now is dated here, so only what comes while this
        // heartbeat is out can move the time on.
        let heard_before = connection.last_heard();
        let outcome = connection.heartbeat(timeout).await;
        let Some(supervisor) = supervisor.upgrade() else {
            return;
        };
        let heard_meanwhile = connection.last_heard() > heard_before;
        match outcome {
            Err(Error::Timeout { .. }) if !heard_meanwhile => {
                misses += 1;
                supervisor.metrics.heartbeat_missed();
                tracing::debug!(worker = %supervisor.name, misses, "heartbeat missed");
                supervisor.note_process_state(pid);
                if misses == supervisor.config.heartbeat_max_misses
                    && supervisor.metrics.set_responsive(false)
                {
                    tracing::warn!(worker = %supervisor.name, misses, "worker unresponsive: no heartbeat answered and nothing else heard; calls in flight keep waiting");
                }
                if let Some(silence) = supervisor.config.restart_on_unresponsive {
                    if connection.last_heard().elapsed() >= silence {
                        supervisor.replace_silent(&connection, misses);
                        return;
                    }
                }
            }
            Ok(_) | Err(Error::Timeout { .. }) => {
                if let Ok(rtt) = outcome {
                    supervisor.metrics.heartbeat_answered(rtt);
                    supervisor.breaker.on_heartbeat();
                    supervisor.restart_streak.store(0, Ordering::Relaxed);
                }
                misses = 0;
                if !supervisor.metrics.set_responsive(true) {
                    tracing::info!(worker = %supervisor.name, "worker responsive again");
                }
                supervisor.note_process_state(pid);
            }
            Err(_) => return, // The connection is closed.
        }
    }
}

impl Supervisor {
    /// Spawn mode: tells a stopped process (SIGSTOP, state `T` or `t` in /proc) from a busy
    /// one, and reports a change.
    fn note_process_state(&self, pid: Option<u32>) {
        let Some(pid) = pid else { return };
        let stopped = process_is_stopped(pid);
        if self.metrics.set_process_stopped(stopped) != stopped {
            if stopped {
                tracing::warn!(worker = %self.name, pid, "worker process is stopped (SIGSTOP?): it cannot answer until it is continued");
            } else {
                tracing::info!(worker = %self.name, pid, "worker process runs again");
            }
        }
    }
}

/// Whether `/proc/<pid>/stat` says the process is stopped or traced.
fn process_is_stopped(pid: u32) -> bool {
    crate::procfs::state(pid).is_some_and(|state| state == "T" || state == "t")
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // The last handle is gone: kill the child (ProcessWatch's drop) and stop the tasks.
        self.process.lock().map(|mut p| p.take()).ok();
        if let Ok(State::Running(connection)) = self.state.get_mut() {
            let worker = self.name.clone();
            connection.close(move || Error::Stopped {
                worker: worker.to_string(),
            });
        }
    }
}
