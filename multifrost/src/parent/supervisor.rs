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
    pub async fn connection(&self) -> Result<Arc<Connection>> {
        let state = match self.state() {
            State::NotStarted => {
                drop(self.lifecycle.lock().await);
                self.state()
            }
            State::Running(connection) if connection.pending.closed_error().is_some() => {
                match self.config.target {
                    // The child died and a restart is under way: wait for its outcome.
                    Target::Spawn(_) if self.config.auto_restart => {
                        self.wait_for_restart(&connection).await
                    }
                    Target::Spawn(_) => State::Running(connection),
                    // A service may have come back, maybe on another port: look again.
                    _ => return self.reconnect(connection).await,
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
                            worker: format!("{} (the service is no longer registered)", self.name),
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
        matches!(self.state(), State::Running(ref c) if c.pending.closed_error().is_none())
            && self.breaker.state() == CircuitState::Closed
    }

    /// One call through the breaker, with metrics and tracing.
    pub async fn call(
        &self,
        function: &str,
        args: &EncodedValue,
        options: &CallOptions,
    ) -> Result<EncodedValue> {
        // The connection first: a call made during a restart waits for it, and a successful
        // restart closes the circuit.
        let connection = self.connection().await;
        let Some(admission) = self.breaker.admit() else {
            return Err(Error::CircuitOpen {
                worker: self.name.to_string(),
            });
        };
        let namespace = options.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
        let correlation_id = options.correlation_id_value();
        tracing::trace!(worker = %self.name, function, namespace, correlation_id, "call start");
        let started = Instant::now();
        let _in_flight = self.metrics.call_started();
        let result = match connection {
            Ok(connection) => connection.call(function, args, options).await,
            Err(err) => Err(err),
        };
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

    /// Starts the worker unless it is already running; returns once it answered a heartbeat.
    /// With auto-restart on, a failing start is retried like a restart.
    pub async fn start(self: &Arc<Self>) -> Result<()> {
        let _lifecycle = self.lifecycle.lock().await;
        if let State::Running(connection) = self.state() {
            if connection.pending.closed_error().is_none() {
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
            ));
            connection.add_task(task.abort_handle());
        }
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
        if !self.config.auto_restart || !matches!(self.config.target, Target::Spawn(_)) {
            return;
        }
        let shared = self.clone();
        let dead = dead.clone();
        tokio::spawn(async move { shared.restart(dead).await });
    }

    async fn restart(self: Arc<Self>, dead: Arc<Connection>) {
        let _lifecycle = self.lifecycle.lock().await;
        match self.state() {
            State::Running(current) if Arc::ptr_eq(&current, &dead) => {}
            _ => return, // Stopped, or already replaced.
        }
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

    /// Heartbeats were exhausted: fail what is in flight, open the circuit, maybe restart.
    fn unresponsive(self: &Arc<Self>, connection: &Arc<Connection>, misses: u32) {
        tracing::warn!(worker = %self.name, misses, "worker unresponsive");
        let worker = self.name.clone();
        connection.pending.fail_all(|| Error::Unresponsive {
            worker: worker.to_string(),
            misses,
        });
        self.breaker.trip();
        if self.config.auto_restart {
            let worker = self.name.clone();
            connection.close(move || Error::Unresponsive {
                worker: worker.to_string(),
                misses,
            });
            self.restart_if_current(connection);
        }
    }

    /// Stops the worker: `shutdown`, a short wait for a clean exit, then a kill. In connect mode
    /// it only disconnects. Returns the process's exit status in spawn mode.
    pub async fn stop(&self) -> Option<ExitStatus> {
        let _lifecycle = self.lifecycle.lock().await;
        let previous = self.set_state(State::Stopped);
        let process = self.process.lock().expect("process lock").take();
        let State::Running(connection) = previous else {
            return None;
        };
        let mut status = None;
        if let Some(mut process) = process {
            let _ = tokio::time::timeout(Duration::from_secs(1), connection.send_shutdown()).await;
            status = match tokio::time::timeout(self.config.stop_timeout, process.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    tracing::warn!(worker = %self.name, "worker did not exit after shutdown; killing it");
                    process.kill().await
                }
            };
        }
        let worker = self.name.clone();
        connection.close(move || Error::Stopped {
            worker: worker.to_string(),
        });
        tracing::info!(worker = %self.name, status = ?status, "worker stopped");
        status
    }
}

/// Delay before restart attempt `attempt` (1-based): 100 ms doubling, at most 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.saturating_sub(1).min(6)))
        .min(Duration::from_secs(5))
}

/// Sends a heartbeat every `interval` on its own task, so a long call never delays it.
async fn heartbeat_loop(shared: Weak<Supervisor>, connection: Arc<Connection>, interval: Duration) {
    let mut misses = 0u32;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(timeout) = shared.upgrade().map(|s| s.config.heartbeat_timeout) else {
            return;
        };
        let outcome = connection.heartbeat(timeout).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match outcome {
            Ok(rtt) => {
                misses = 0;
                shared.metrics.heartbeat_answered(rtt);
                shared.breaker.on_heartbeat();
                shared.restart_streak.store(0, Ordering::Relaxed);
            }
            Err(Error::Timeout { .. }) => {
                misses += 1;
                shared.metrics.heartbeat_missed();
                tracing::warn!(worker = %shared.name, misses, "heartbeat missed");
                if misses >= shared.config.heartbeat_max_misses {
                    shared.unresponsive(&connection, misses);
                }
            }
            Err(_) => return, // The connection is closed.
        }
    }
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
