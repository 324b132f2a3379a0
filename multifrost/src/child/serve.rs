//! Serving a [`Worker`]: the receive loop, dispatch rules and replies (PROTOCOL.md section 4).

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, Notify};

use super::output::{capture_stdio, OutputLine};
use super::worker::{CallContext, CallError, IncomingCall, Worker};
use crate::error::{Error, Result};
use crate::protocol::{
    encode_error, encode_heartbeat_reply, encode_output, encode_response, Limits, MessageKind,
    RawMessage, DEFAULT_NAMESPACE,
};
use crate::registry::Registry;
use crate::transport::{
    self, RouterSendHalf, RouterSocket, Socket, SocketEvent, SocketRecv, SocketSend,
};

/// The environment variable that carries the parent's port in spawn mode.
pub const PORT_ENV: &str = "COMLINK_ZMQ_PORT";

/// The environment variable a child reads its shared token from.
pub const AUTH_TOKEN_ENV: &str = "MULTIFROST_AUTH_TOKEN";
/// The metadata key that carries the shared token.
pub const AUTH_TOKEN_KEY: &str = "auth_token";

/// How many distinct parents a child remembers for forwarding its output.
const MAX_KNOWN_PARENTS: usize = 16;

/// Serves a worker until the parent sends `shutdown`, goes away, or the process gets SIGTERM or
/// SIGINT. On a fatal error (a bad `COMLINK_ZMQ_PORT`, no parent to connect to) it prints the
/// reason to stderr and exits the process with status 1.
///
/// In spawn mode (`COMLINK_ZMQ_PORT` set by the parent) the child's own stdout and stderr are
/// captured and forwarded to the parent as `stdout` / `stderr` messages.
pub async fn run<W: Worker>(worker: W) {
    ChildRunner::new(worker).run().await
}

fn fatal(err: &Error) -> ! {
    eprintln!("multifrost worker: fatal: {err}");
    std::process::exit(1)
}

/// Options for serving a worker; [`run`] uses the defaults.
pub struct ChildRunner<W> {
    worker: Arc<W>,
    limits: Limits,
    capture_output: bool,
    service_id: Option<String>,
    auth_token: Option<String>,
    bind_address: std::net::IpAddr,
    registry: Option<Registry>,
}

impl<W: Worker> ChildRunner<W> {
    /// Serves `worker` with the default options.
    pub fn new(worker: W) -> Self {
        ChildRunner {
            worker: Arc::new(worker),
            limits: Limits::default(),
            capture_output: true,
            service_id: None,
            auth_token: std::env::var(AUTH_TOKEN_ENV).ok().filter(|t| !t.is_empty()),
            bind_address: std::net::Ipv4Addr::LOCALHOST.into(),
            registry: None,
        }
    }

    /// Limits applied to received calls (defaults: those of the Python implementation).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether spawn mode captures the process's stdout/stderr and forwards them (default true).
    pub fn capture_output(mut self, capture: bool) -> Self {
        self.capture_output = capture;
        self
    }

    /// The service id to register under when started on its own (connect mode).
    pub fn service_id(mut self, id: impl Into<String>) -> Self {
        self.service_id = Some(id.into());
        self
    }

    /// Require this shared token in every call's `metadata.auth_token` (default: the value of
    /// `MULTIFROST_AUTH_TOKEN`, if set). Calls without it get an error reply. A guard against
    /// accidental cross-talk, not cryptography: the token travels in clear text.
    pub fn auth_token(mut self, token: impl Into<String>) -> Self {
        self.auth_token = Some(token.into());
        self
    }

    /// The address a connect-mode service binds (default `127.0.0.1`). The protocol has no
    /// authentication: binding another interface exposes every method to that network, so it
    /// is an explicit choice (see also [`auth_token`](Self::auth_token)).
    pub fn bind_address(mut self, address: std::net::IpAddr) -> Self {
        self.bind_address = address;
        self
    }

    /// The registry to register in (default `~/.multifrost`, honouring `HOME`).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Serves until shutdown; on a fatal error prints it to stderr and exits with status 1.
    pub async fn run(self) {
        if let Err(err) = self.serve().await {
            fatal(&err);
        }
    }

    /// Serves until shutdown; returns the fatal error instead of exiting.
    ///
    /// Spawn mode when `COMLINK_ZMQ_PORT` is set and non-empty (it wins over a service id);
    /// otherwise connect mode under the [`service_id`](Self::service_id).
    pub async fn serve(self) -> Result<()> {
        match spawn_mode_port()? {
            Some(port) => self.serve_spawned(port).await,
            None => match self.service_id.clone() {
                Some(id) => self.serve_service(&id).await,
                None => Err(Error::Config(format!(
                    "{PORT_ENV} is not set and no service id was given: start this worker from a \
                     multifrost parent (spawn mode) or give it a service id (connect mode)"
                ))),
            },
        }
    }

    async fn serve_spawned(self, port: u16) -> Result<()> {
        let output = if self.capture_output {
            Some(capture_stdio().map_err(|e| Error::io("capturing stdout/stderr", e))?)
        } else {
            None
        };
        let mut socket = RouterSocket::new();
        let monitor = socket.monitor();
        let endpoint = format!("tcp://127.0.0.1:{port}");
        socket
            .connect(&endpoint)
            .await
            .map_err(|e| Error::Transport(format!("cannot reach the parent at {endpoint}: {e}")))?;
        Server::new(self.worker, self.limits, self.auth_token)
            .serve(socket, monitor, output, true)
            .await
    }

    /// Connect mode: register the id, bind, serve, and unregister however serving ends.
    async fn serve_service(self, service_id: &str) -> Result<()> {
        let registry = match self.registry.clone() {
            Some(registry) => registry,
            None => Registry::default_location()?,
        };
        let pid = std::process::id();
        let port = registry.register(service_id, pid).await?;
        let mut socket = RouterSocket::new();
        let monitor = socket.monitor();
        let endpoint = format!("tcp://{}:{port}", self.bind_address);
        let served = match socket.bind(&endpoint).await {
            Ok(_) => {
                tracing::info!(service_id, %endpoint, "service registered and listening");
                Server::new(self.worker, self.limits, self.auth_token)
                    .serve(socket, monitor, None, false)
                    .await
            }
            Err(err) => Err(Error::Transport(format!(
                "cannot listen on {endpoint}: {err}"
            ))),
        };
        if let Err(err) = registry.unregister(service_id, pid).await {
            tracing::warn!(service_id, "could not unregister: {err}");
        }
        served
    }
}

/// The port from `COMLINK_ZMQ_PORT`, `None` when unset or empty, an error when invalid.
fn spawn_mode_port() -> Result<Option<u16>> {
    let Ok(text) = std::env::var(PORT_ENV) else {
        return Ok(None);
    };
    if text.is_empty() {
        return Ok(None);
    }
    match text.trim().parse::<u32>() {
        Ok(port @ 1024..=65535) => Ok(Some(port as u16)),
        _ => Err(Error::Config(format!(
            "{PORT_ENV}={text:?} is not a port number in 1024..=65535"
        ))),
    }
}

/// The state shared by the receive loop and the tasks running calls.
struct Server<W> {
    worker: Arc<W>,
    functions: HashSet<String>,
    namespace: String,
    limits: Limits,
    auth_token: Option<String>,
    parents: Mutex<Vec<Bytes>>,
    stop: Notify,
}

impl<W: Worker> Server<W> {
    fn new(worker: Arc<W>, limits: Limits, auth_token: Option<String>) -> Arc<Self> {
        Arc::new(Server {
            functions: worker.list_functions().into_iter().collect(),
            namespace: worker.namespace().to_owned(),
            worker,
            limits,
            auth_token,
            parents: Mutex::new(Vec::new()),
            stop: Notify::new(),
        })
    }

    async fn serve(
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
        let message = match RawMessage::parse(payload, &self.limits) {
            Ok(message) => message,
            Err(err) => {
                tracing::warn!("ignoring a malformed message: {err}");
                return;
            }
        };
        if !message.is_current_protocol() {
            return;
        }
        self.remember_parent(&routing_id);
        match message.kind {
            MessageKind::Call => self.handle_call(routing_id, message, sender),
            // A heartbeat echoes its metadata: not one that broke a limit.
            MessageKind::Heartbeat if message.violation.is_some() => {
                tracing::warn!("ignoring a heartbeat over a limit");
            }
            MessageKind::Heartbeat => {
                let reply = encode_heartbeat_reply(&message);
                self.reply(routing_id, reply, sender);
            }
            MessageKind::Shutdown => {
                tracing::info!("shutdown requested by the parent");
                self.stop.notify_one();
            }
            _ => {}
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

    fn handle_call(
        self: &Arc<Self>,
        routing_id: Bytes,
        message: RawMessage,
        sender: &RouterSendHalf,
    ) {
        let Some(id) = message.id.clone() else {
            tracing::warn!("ignoring a call without 'id': nobody could match its reply");
            return;
        };
        let refuse = |error: CallError| {
            self.reply(
                routing_id.clone(),
                encode_error(&id, error.message()),
                sender,
            )
        };
        if id.is_empty() {
            return refuse(CallError::new("Message missing 'id' field"));
        }
        if let Some(violation) = &message.violation {
            return refuse(CallError::new(format!("Message rejected: {violation}")));
        }
        match &message.namespace {
            None => {}
            Some(Some(ns)) if *ns == self.namespace => {}
            Some(other) => {
                return refuse(CallError::new(format!(
                    "Namespace mismatch: call for namespace '{}' reached worker in namespace '{}'",
                    other.as_deref().unwrap_or("nil"),
                    self.namespace
                )))
            }
        }
        let Some(function) = message.function.clone() else {
            return refuse(CallError::new("Message missing 'function' field"));
        };
        if function.starts_with('_') {
            return refuse(CallError::private_method(&function));
        }
        if !self.functions.contains(&function) {
            return refuse(CallError::function_not_found(&function));
        }
        let metadata = message.metadata();
        if let Some(expected) = &self.auth_token {
            let given = metadata
                .iter()
                .find(|(k, _)| k.as_str() == Some(AUTH_TOKEN_KEY))
                .and_then(|(_, v)| v.as_str());
            if given != Some(expected.as_str()) {
                return refuse(CallError::new(
                    "Unauthorized: this worker requires a shared token in metadata.auth_token",
                ));
            }
        }
        let call = IncomingCall {
            args: message.args().unwrap_or_default(),
            context: CallContext {
                id: id.clone(),
                namespace: message
                    .namespace
                    .clone()
                    .flatten()
                    .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
                client_name: message.client_name.clone(),
                metadata,
            },
            function,
        };
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
