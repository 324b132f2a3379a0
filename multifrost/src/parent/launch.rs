//! Bringing a connection up: in spawn mode bind, spawn the child, accept its connection and stop
//! listening; in connect mode connect to a listening worker. Either way, readiness is proven by
//! a heartbeat that gets its echo before the connection is handed out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::{SpawnSpec, WorkerConfig};
use super::connection::Connection;
use super::peers::check_accepted;
use super::process::{forward_pipes, spawn_child, ProcessWatch};
use crate::error::{Error, ExitStatus, Result};
use crate::transport::zmtp::{self, Peer, Role};

/// How long a refused connection to a service waits before it is tried again.
const REFUSED_RETRY: Duration = Duration::from_millis(20);

/// How a spawned child's start-up ended before it connected.
enum Early {
    Exited(Option<ExitStatus>),
    Failed(Error),
}

/// Starts connections for one worker.
pub(crate) struct Launch<'a> {
    pub config: &'a WorkerConfig,
    pub name: &'a Arc<str>,
}

impl Launch<'_> {
    fn failed(&self, reason: impl std::fmt::Display) -> Error {
        Error::StartFailed {
            worker: self.name.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Spawn mode: bind, start the child, wait until it connects and answers a heartbeat.
    pub async fn spawn(
        &self,
        spec: &SpawnSpec,
        deadline: Instant,
        on_exit: impl FnOnce(&Arc<Connection>) + Send + 'static,
    ) -> Result<(Arc<Connection>, ProcessWatch)> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| self.failed(format!("cannot bind a port on 127.0.0.1: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| self.failed(format!("the bound port is unknown: {e}")))?
            .port();

        // Spawned from a runtime task, so the parent-death signal is tied to a runtime thread
        // rather than to whatever thread happens to poll `start`.
        let spawn = {
            let spec = spec.clone();
            let name = self.name.clone();
            let output = self.config.output.clone();
            tokio::spawn(async move {
                let mut child = spawn_child(&spec, port, &name)?;
                let pipes = forward_pipes(&mut child, &name, &output);
                Ok::<_, Error>((child, pipes))
            })
        };
        let (child, pipes) = spawn.await.map_err(|e| self.failed(e))??;
        // The connection exists only once the child connected; the exit watcher finds it here.
        let live: Arc<std::sync::OnceLock<Arc<Connection>>> = Arc::default();
        let watch_exit = {
            let live = live.clone();
            let worker = self.name.clone();
            move |status: ExitStatus| {
                let Some(connection) = live.get() else {
                    // During start-up: the start error says so.
                    tracing::debug!(worker = %worker, %status, "worker process exited");
                    return;
                };
                if connection.exit_expected() {
                    tracing::debug!(worker = %worker, %status, "worker process exited");
                } else {
                    tracing::warn!(worker = %worker, %status, "worker process exited");
                }
                connection.close(move || Error::ChildExited {
                    worker: worker.to_string(),
                    status,
                });
                on_exit(connection);
            }
        };
        let mut process = ProcessWatch::start(child, pipes, watch_exit);

        // The child connects to us: wait for its connection, or for the child to die.
        let accepted = tokio::time::timeout_at(deadline.into(), async {
            tokio::select! {
                accepted = listener.accept() => accepted
                    .map(|(stream, _)| stream)
                    .map_err(|e| Early::Failed(self.failed(format!("accepting the child's connection failed: {e}")))),
                status = process.wait() => Err(Early::Exited(status)),
            }
        })
        .await;
        let accepted = match accepted {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(Early::Failed(err))) => Err(err),
            Ok(Err(Early::Exited(status))) => {
                // What it said on its way out explains why: read its pipes to their end.
                process.pipes.finished(Duration::from_secs(1)).await;
                let said = process.pipes.recent_stderr();
                let status = status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string());
                Err(self.failed(if said.is_empty() {
                    format!("the process exited during start-up ({status})")
                } else {
                    format!(
                        "the process exited during start-up ({status}); its last stderr lines:\n{}",
                        said.join("\n")
                    )
                }))
            }
            Err(_) => Err(self.failed(format!(
                "the process did not connect within {:?}",
                self.config.start_timeout
            ))),
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(err) => {
                process.kill().await;
                return Err(err);
            }
        };
        // Someone connected: stop listening, so that no other local process can connect to this
        // port (a connection waiting to be accepted is refused with it)...
        drop(listener);
        // ... and before sending anything, check that every peer is the child (or one of its
        // descendants, behind a launcher).
        if let Some(pid) = process.pid {
            if let Err(stranger) = check_accepted(port, pid) {
                process.kill().await;
                let who = stranger
                    .pid
                    .map_or_else(String::new, |pid| format!(" (pid {pid})"));
                tracing::warn!(worker = %self.name, peer = %stranger.peer, "refused a process that is not the child");
                return Err(self.failed(format!(
                    "a process that is not the child{who} connected to the parent's port from {}: \
                     refused, nothing was sent to it",
                    stranger.peer
                )));
            }
        }
        // ... and greet it only now.
        let peer =
            match tokio::time::timeout_at(deadline.into(), zmtp::handshake(stream, Role::Dealer))
                .await
            {
                Ok(Ok(peer)) => peer,
                Ok(Err(reason)) => {
                    process.kill().await;
                    return Err(self.failed(format!("the child's connection failed: {reason}")));
                }
                Err(_) => {
                    process.kill().await;
                    return Err(self.failed(format!(
                        "the child connected but did not finish the ZMTP handshake within {:?}",
                        self.config.start_timeout
                    )));
                }
            };
        let (connection, gone) = self.open_connection(peer);
        let _ = live.set(connection.clone());
        let ready = if process.exited.borrow().is_some() {
            Err(self.failed("the process exited during start-up"))
        } else {
            self.probe(&connection, deadline).await
        };
        if let Err(err) = ready {
            process.kill().await;
            connection.close(|| Error::Disconnected {
                worker: String::new(),
                reason: "the start failed".into(),
            });
            return Err(err);
        }
        let worker = self.name.clone();
        let watched = connection.clone();
        let mut exited = process.exited.clone();
        connection.watch_disconnect(gone, move |ended| {
            // The process watcher reports the exit status; give it a moment to do so first.
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), exited.wait_for(Option::is_some))
                        .await;
                watched.close(move || Error::Disconnected {
                    worker: worker.to_string(),
                    reason: format!("the child's connection ended: {ended}"),
                });
            });
        });
        Ok((connection, process))
    }

    /// Connect mode: connect to a listening worker and wait until it answers a heartbeat.
    ///
    /// A refused connection is tried again until the deadline: every implementation, this one
    /// too, puts a service in the registry before it listens, so a parent may find it in
    /// between (as libzmq does, which connects again until it gets through).
    pub async fn connect(&self, endpoint: &str, deadline: Instant) -> Result<Arc<Connection>> {
        let peer = loop {
            match tokio::time::timeout_at(deadline.into(), zmtp::connect(endpoint, Role::Dealer))
                .await
            {
                Ok(Ok(peer)) => break peer,
                Ok(Err(err)) if err.refused && Instant::now() + REFUSED_RETRY < deadline => {
                    tokio::time::sleep(REFUSED_RETRY).await;
                }
                Ok(Err(err)) if err.refused => {
                    return Err(self.failed(format!(
                        "cannot connect to {endpoint}: {} (tried for {:?})",
                        err.reason, self.config.start_timeout
                    )))
                }
                Ok(Err(err)) => {
                    return Err(self.failed(format!("cannot connect to {endpoint}: {}", err.reason)))
                }
                Err(_) => {
                    return Err(self.failed(format!(
                        "{endpoint} did not answer within {:?}",
                        self.config.start_timeout
                    )))
                }
            }
        };
        let (connection, gone) = self.open_connection(peer);
        if let Err(err) = self.probe(&connection, deadline).await {
            connection.close(|| Error::Disconnected {
                worker: String::new(),
                reason: "the start failed".into(),
            });
            return Err(err);
        }
        let worker = self.name.clone();
        let watched = connection.clone();
        connection.watch_disconnect(gone, move |ended| {
            watched.close(move || Error::Disconnected {
                worker: worker.to_string(),
                reason: format!("the service's connection ended: {ended}"),
            })
        });
        Ok(connection)
    }

    /// A connection over a connection that shook hands, already receiving, and what says when
    /// it ends.
    fn open_connection(&self, peer: Peer) -> (Arc<Connection>, zmtp::Gone) {
        let Peer {
            sender,
            receiver,
            writer,
            gone,
        } = peer;
        let connection = Connection::new(
            self.name.clone(),
            sender,
            self.config.max_in_flight,
            self.config.max_in_flight_bytes,
            self.config.auth_token.as_deref(),
        );
        connection.add_task(tokio::spawn(writer.run()).abort_handle());
        connection.start_receiving(receiver, self.config.limits, self.config.output.clone());
        (connection, gone)
    }

    /// Proves the worker serves: a heartbeat that gets its echo.
    async fn probe(&self, connection: &Connection, deadline: Instant) -> Result<()> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.failed(format!(
                    "no answer to heartbeats within {:?}",
                    self.config.start_timeout
                )));
            }
            match connection.heartbeat(left.min(Duration::from_secs(1))).await {
                Ok(_) => return Ok(()),
                Err(Error::Timeout { .. }) => continue,
                Err(err) => return Err(self.failed(err)),
            }
        }
    }
}
