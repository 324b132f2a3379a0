//! Serving a [`Worker`]: the receive loop, signals, output forwarding, and running calls and
//! sending their replies. What to do with each message is decided by [`super::rules`].

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, Notify};

use super::output::OutputLine;
use super::rules::{Decision, DispatchRules, Ignored};
use super::worker::{IncomingCall, Worker};
use crate::error::{Error, Result};
use crate::protocol::{encode_error, encode_output, encode_response, Limits};
use crate::transport::{self, RouterSendHalf, RouterSocket, SocketEvent, SocketRecv, SocketSend};

/// How many distinct parents a child remembers for forwarding its output.
const MAX_KNOWN_PARENTS: usize = 16;

/// The state shared by the receive loop and the tasks running calls.
pub(crate) struct Server<W> {
    worker: Arc<W>,
    rules: DispatchRules,
    parents: Mutex<Vec<Bytes>>,
    stop: Notify,
}

impl<W: Worker> Server<W> {
    pub fn new(worker: Arc<W>, limits: Limits, auth_token: Option<String>) -> Arc<Self> {
        Arc::new(Server {
            rules: DispatchRules::new(
                worker.list_functions(),
                worker.namespace(),
                auth_token,
                limits,
            ),
            worker,
            parents: Mutex::new(Vec::new()),
            stop: Notify::new(),
        })
    }

    pub async fn serve(
        self: Arc<Self>,
        socket: RouterSocket,
        monitor: futures_channel::mpsc::Receiver<SocketEvent>,
        output: Option<mpsc::Receiver<OutputLine>>,
        exit_when_parent_leaves: bool,
    ) -> Result<()> {
        let (sender, mut receiver) = socket.split();
        let mut background = Vec::new();
        background.push(tokio::spawn(self.clone().watch_signals()));
        if exit_when_parent_leaves {
            background.push(tokio::spawn(self.clone().watch_parent(monitor)));
        }
        if let Some(output) = output {
            background.push(tokio::spawn(
                self.clone().forward_output(output, sender.clone()),
            ));
        }
        let result = loop {
            tokio::select! {
                message = receiver.recv() => match message {
                    Ok(message) => self.handle_frames(message, &sender),
                    Err(err) => break Err(Error::Transport(format!("receive failed: {err}"))),
                },
                _ = self.stop.notified() => break Ok(()),
            }
        };
        for task in background {
            task.abort();
        }
        result
    }

    /// Stops on SIGTERM or SIGINT (Python parents stop children with SIGTERM).
    async fn watch_signals(self: Arc<Self>) {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("worker stopping on signal");
        self.stop.notify_one();
    }

    /// In spawn mode the parent is the only peer: once it disconnects nobody can call again.
    async fn watch_parent(
        self: Arc<Self>,
        mut monitor: futures_channel::mpsc::Receiver<SocketEvent>,
    ) {
        while let Some(event) = monitor.next().await {
            if let SocketEvent::Disconnected(_) = event {
                tracing::info!("parent disconnected; worker stopping");
                self.stop.notify_one();
                return;
            }
        }
    }

    async fn forward_output(
        self: Arc<Self>,
        mut lines: mpsc::Receiver<OutputLine>,
        mut sender: RouterSendHalf,
    ) {
        // Wait for a parent to send to: lines queue (bounded) until the first message arrives.
        while let Some(line) = lines.recv().await {
            let payload = encode_output(line.kind, &line.text);
            loop {
                let parents = self.parents.lock().expect("parents lock").clone();
                if parents.is_empty() {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
                for parent in parents {
                    let _ = sender
                        .send(transport::child_frames(parent, payload.clone()))
                        .await;
                }
                break;
            }
        }
    }

    fn remember_parent(&self, routing_id: &Bytes) {
        let mut parents = self.parents.lock().expect("parents lock");
        if !parents.contains(routing_id) {
            if parents.len() == MAX_KNOWN_PARENTS {
                parents.remove(0);
            }
            parents.push(routing_id.clone());
        }
    }

    fn handle_frames(self: &Arc<Self>, frames: zeromq::ZmqMessage, sender: &RouterSendHalf) {
        let Some((routing_id, payload)) = transport::routed(frames) else {
            tracing::debug!("ignoring a message without routing id and payload");
            return;
        };
        match self.rules.decide(payload) {
            Decision::Ignore(why @ (Ignored::Malformed(_) | Ignored::UnauthorizedShutdown)) => {
                tracing::warn!("ignoring {why}")
            }
            Decision::Ignore(why @ (Ignored::NoId | Ignored::HeartbeatOverLimit)) => {
                self.remember_parent(&routing_id);
                tracing::warn!("ignoring {why}");
            }
            Decision::Ignore(Ignored::OtherProtocol) => {}
            Decision::Ignore(Ignored::NotForAChild) => self.remember_parent(&routing_id),
            Decision::Refuse { id, error } => {
                self.remember_parent(&routing_id);
                self.reply(routing_id, encode_error(&id, error.message()), sender);
            }
            Decision::Heartbeat(reply) => {
                self.remember_parent(&routing_id);
                self.reply(routing_id, reply, sender);
            }
            Decision::Stop => {
                self.remember_parent(&routing_id);
                tracing::info!("shutdown requested by the parent");
                self.stop.notify_one();
            }
            Decision::Dispatch(call) => {
                self.remember_parent(&routing_id);
                self.run_call(routing_id, call, sender);
            }
        }
    }

    fn reply(&self, routing_id: Bytes, payload: Vec<u8>, sender: &RouterSendHalf) {
        let mut sender = sender.clone();
        tokio::spawn(async move {
            if let Err(err) = sender
                .send(transport::child_frames(routing_id, payload))
                .await
            {
                tracing::warn!("could not send a reply: {err}");
            }
        });
    }

    /// Runs one call on its own task and sends its reply.
    fn run_call(&self, routing_id: Bytes, call: IncomingCall, sender: &RouterSendHalf) {
        let id = call.context.id.clone();
        let worker = self.worker.clone();
        let mut sender = sender.clone();
        tokio::spawn(async move {
            let function = call.function.clone();
            let correlation_id = call.context.correlation_id().map(str::to_owned);
            tracing::debug!(function, correlation_id, "call received");
            let started = std::time::Instant::now();
            let outcome = AssertUnwindSafe(worker.dispatch(call)).catch_unwind().await;
            let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            let payload = match outcome {
                Ok(Ok(result)) => {
                    tracing::debug!(function, correlation_id, duration_ms, "call answered");
                    encode_response(&id, &result)
                }
                Ok(Err(error)) => {
                    tracing::debug!(
                        function,
                        correlation_id,
                        duration_ms,
                        error = error.message(),
                        "call answered with an error"
                    );
                    encode_error(&id, error.message())
                }
                Err(panic) => {
                    let message = format!("{function}: panicked: {}", panic_message(&panic));
                    tracing::warn!(function, correlation_id, "{message}");
                    encode_error(&id, &message)
                }
            };
            if let Err(err) = sender
                .send(transport::child_frames(routing_id, payload))
                .await
            {
                tracing::warn!("could not send the reply to '{function}': {err}");
            }
        });
    }
}

/// The text of a panic payload.
fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-text payload".to_owned()
    }
}
