//! The state every handle of one worker shares: its lifecycle, process and connection.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::config::{Target, WorkerConfig};
use super::connection::Connection;
use super::process::{forward_pipes, spawn_child, ProcessWatch};
use crate::error::{Error, ExitStatus, Result};
use crate::transport::{self, DealerSocket, Socket, SocketEvent};

/// Where the worker is in its life.
#[derive(Clone)]
enum State {
    NotStarted,
    Running(Arc<Connection>),
    Stopped,
}

pub(crate) struct WorkerShared {
    pub config: WorkerConfig,
    pub name: Arc<str>,
    state: RwLock<State>,
    process: Mutex<Option<ProcessWatch>>,
    /// Serialises `start` and `stop`; calls made during a start wait on it.
    lifecycle: tokio::sync::Mutex<()>,
}

impl WorkerShared {
    pub fn new(config: WorkerConfig) -> Arc<WorkerShared> {
        Arc::new(WorkerShared {
            name: config.name.as_str().into(),
            config,
            state: RwLock::new(State::NotStarted),
            process: Mutex::new(None),
            lifecycle: tokio::sync::Mutex::new(()),
        })
    }

    fn state(&self) -> State {
        self.state.read().expect("state lock").clone()
    }

    /// The live connection, or the reason there is none. A call made while `start` runs waits
    /// for it to finish.
    pub async fn connection(&self) -> Result<Arc<Connection>> {
        if let State::NotStarted = self.state() {
            drop(self.lifecycle.lock().await);
        }
        match self.state() {
            State::Running(connection) => Ok(connection),
            State::NotStarted => Err(Error::NotStarted {
                worker: self.name.to_string(),
            }),
            State::Stopped => Err(Error::Stopped {
                worker: self.name.to_string(),
            }),
        }
    }

    /// The live connection if there is one, without waiting.
    pub fn current_connection(&self) -> Option<Arc<Connection>> {
        match self.state() {
            State::Running(connection) => Some(connection),
            _ => None,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.lock().expect("process lock").as_ref().and_then(|p| p.pid)
    }

    /// Starts the worker unless it is already running; returns once it answered a heartbeat.
    pub async fn start(self: &Arc<Self>) -> Result<()> {
        let _lifecycle = self.lifecycle.lock().await;
        if let State::Running(connection) = self.state() {
            if connection.pending.closed_error().is_none() {
                return Ok(());
            }
        }
        let deadline = Instant::now() + self.config.start_timeout;
        let connection = match &self.config.target {
            Target::Spawn(_) => self.start_spawned(deadline).await?,
            Target::Endpoint(endpoint) => self.start_connected(endpoint, deadline).await?,
        };
        *self.state.write().expect("state lock") = State::Running(connection);
        Ok(())
    }

    fn start_failed(&self, reason: impl std::fmt::Display) -> Error {
        Error::StartFailed {
            worker: self.name.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Spawn mode: bind, start the child, wait until it connects and answers a heartbeat.
    async fn start_spawned(self: &Arc<Self>, deadline: Instant) -> Result<Arc<Connection>> {
        let Target::Spawn(spec) = &self.config.target else {
            unreachable!("start_spawned on a connect-mode worker")
        };
        let mut socket = DealerSocket::new();
        let mut monitor = socket.monitor();
        let endpoint = socket
            .bind("tcp://127.0.0.1:0")
            .await
            .map_err(|e| self.start_failed(format!("cannot bind a port on 127.0.0.1: {e}")))?;
        let port = transport::endpoint_port(&endpoint)
            .ok_or_else(|| self.start_failed("bound endpoint has no port"))?;
        let (sender, receiver) = socket.split();
        let connection = Connection::new(
            self.name.clone(),
            sender,
            self.config.max_in_flight,
            self.config.default_timeout,
        );
        connection.start_receiving(receiver, self.config.limits, self.config.output.clone());

        let mut child = spawn_child(spec, port, &self.name)?;
        forward_pipes(&mut child, &self.name, &self.config.output);
        let on_exit = {
            let connection = connection.clone();
            let worker = self.name.clone();
            move |status: ExitStatus| {
                tracing::info!(worker = %worker, %status, "worker process exited");
                connection.close(move || Error::ChildExited {
                    worker: worker.to_string(),
                    status,
                });
            }
        };
        let mut process = ProcessWatch::start(child, on_exit);

        // The child connects to us: wait for the transport to say so, or for the child to die.
        let accepted = tokio::time::timeout_at(deadline.into(), async {
            loop {
                tokio::select! {
                    event = monitor.next() => match event {
                        Some(SocketEvent::Accepted(..)) => return Ok(()),
                        Some(_) => continue,
                        None => return Err(self.start_failed("socket monitor closed")),
                    },
                    status = process.wait() => {
                        return Err(self.start_failed(format!(
                            "the process exited during start-up ({})",
                            status.map(|s| s.to_string()).unwrap_or_else(|| "unknown status".into())
                        )));
                    }
                }
            }
        })
        .await;
        let ready = match accepted {
            Ok(Ok(())) => self.probe(&connection, deadline).await,
            Ok(Err(err)) => Err(err),
            Err(_) => Err(self.start_failed(format!(
                "the process did not connect within {:?}",
                self.config.start_timeout
            ))),
        };
        if let Err(err) = ready {
            process.kill().await;
            connection.close(|| Error::Disconnected { worker: String::new() });
            return Err(err);
        }
        let worker = self.name.clone();
        let watched = connection.clone();
        let mut exited = process.exited.clone();
        connection.watch_disconnect(monitor, move || {
            // The process watcher reports the exit status; give it a moment to do so first.
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), exited.wait_for(Option::is_some)).await;
                watched.close(move || Error::Disconnected { worker: worker.to_string() });
            });
        });
        *self.process.lock().expect("process lock") = Some(process);
        Ok(connection)
    }

    /// Connect mode: connect to a listening worker and wait until it answers a heartbeat.
    async fn start_connected(self: &Arc<Self>, endpoint: &str, deadline: Instant) -> Result<Arc<Connection>> {
        let mut socket = DealerSocket::new();
        let monitor = socket.monitor();
        match tokio::time::timeout_at(deadline.into(), socket.connect(endpoint)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(self.start_failed(format!("cannot connect to {endpoint}: {err}"))),
            Err(_) => return Err(self.start_failed(format!("{endpoint} did not answer within {:?}", self.config.start_timeout))),
        }
        let (sender, receiver) = socket.split();
        let connection = Connection::new(
            self.name.clone(),
            sender,
            self.config.max_in_flight,
            self.config.default_timeout,
        );
        connection.start_receiving(receiver, self.config.limits, self.config.output.clone());
        if let Err(err) = self.probe(&connection, deadline).await {
            connection.close(|| Error::Disconnected { worker: String::new() });
            return Err(err);
        }
        let worker = self.name.clone();
        let watched = connection.clone();
        connection.watch_disconnect(monitor, move || {
            watched.close(move || Error::Disconnected { worker: worker.to_string() })
        });
        Ok(connection)
    }

    /// Proves the worker serves: a heartbeat that gets its echo.
    async fn probe(&self, connection: &Connection, deadline: Instant) -> Result<()> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.start_failed(format!(
                    "no answer to heartbeats within {:?}",
                    self.config.start_timeout
                )));
            }
            match connection.heartbeat(left.min(Duration::from_secs(1))).await {
                Ok(_) => return Ok(()),
                Err(Error::Timeout { .. }) => continue,
                Err(err) => return Err(self.start_failed(err)),
            }
        }
    }

    /// Stops the worker: `shutdown`, a short wait for a clean exit, then a kill. In connect mode
    /// it only disconnects. Returns the process's exit status in spawn mode.
    pub async fn stop(&self) -> Option<ExitStatus> {
        let _lifecycle = self.lifecycle.lock().await;
        let previous = std::mem::replace(&mut *self.state.write().expect("state lock"), State::Stopped);
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
        connection.close(move || Error::Stopped { worker: worker.to_string() });
        status
    }
}

impl Drop for WorkerShared {
    fn drop(&mut self) {
        // The last handle is gone: kill the child (ProcessWatch's drop) and stop the tasks.
        self.process.lock().map(|mut p| p.take()).ok();
        if let Ok(state) = self.state.get_mut() {
            if let State::Running(connection) = state {
                let worker = self.name.clone();
                connection.close(move || Error::Stopped { worker: worker.to_string() });
            }
        }
    }
}
