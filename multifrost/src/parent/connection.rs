//! One live connection to a worker: the DEALER socket, the receive task and the pending calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::{Mutex, Semaphore};
use tokio::task::AbortHandle;

use super::output::{OutputEvent, OutputHandler, OutputStream};
use super::pending::{PendingCalls, PendingGuard};
use crate::child::AUTH_TOKEN_KEY;
use crate::error::Error;
use crate::protocol::{
    encode_heartbeat, encode_shutdown, new_id, unix_now, EncodedValue, Limits, MessageKind,
    MessageWriter, RawMessage,
};
use crate::transport::{self, DealerRecvHalf, DealerSendHalf, SocketEvent, SocketRecv, SocketSend};

/// Per-call options: timeout, namespace, client name and metadata.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    pub(crate) timeout: Option<Option<Duration>>,
    pub(crate) namespace: Option<String>,
    pub(crate) client_name: Option<String>,
    pub(crate) metadata: Vec<(String, EncodedValue)>,
    pub(crate) correlation_id: Option<String>,
}

impl CallOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Fail the call with [`Error::Timeout`] when no reply arrives within `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(Some(timeout));
        self
    }

    /// Wait for the reply however long it takes (overrides the worker's default timeout).
    pub fn no_timeout(mut self) -> Self {
        self.timeout = Some(None);
        self
    }

    /// The namespace to call in (default `"default"`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// The `client_name` the worker sees.
    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = Some(name.into());
        self
    }

    /// A metadata entry the worker sees in its call context. Values that cannot be encoded are
    /// sent as nil.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let value = EncodedValue::encode(&value).unwrap_or_else(|_| EncodedValue::nil());
        self.metadata.push((key.into(), value));
        self
    }

    /// The correlation id set with [`correlation_id`](Self::correlation_id), if any.
    pub fn correlation_id_value(&self) -> Option<&str> {
        self.correlation_id.as_deref()
    }

    /// A correlation id, sent as `metadata.correlation_id` (traced on both sides).
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        let id = id.into();
        self.correlation_id = Some(id.clone());
        self.metadata("correlation_id", id)
    }
}

/// A connected worker.
pub(crate) struct Connection {
    pub worker: Arc<str>,
    sender: Mutex<DealerSendHalf>,
    pub pending: PendingCalls,
    slots: Semaphore,
    tasks: std::sync::Mutex<Vec<AbortHandle>>,
    default_timeout: Option<Duration>,
    /// `metadata.auth_token` of every call, already encoded.
    auth_token: Option<EncodedValue>,
}

impl Connection {
    pub fn new(
        worker: Arc<str>,
        sender: DealerSendHalf,
        max_in_flight: usize,
        default_timeout: Option<Duration>,
        auth_token: Option<&str>,
    ) -> Arc<Connection> {
        Arc::new(Connection {
            worker,
            sender: Mutex::new(sender),
            pending: PendingCalls::default(),
            slots: Semaphore::new(max_in_flight),
            tasks: std::sync::Mutex::new(Vec::new()),
            default_timeout,
            auth_token: auth_token.map(|token| EncodedValue::encode(token).expect("a str encodes")),
        })
    }

    /// Starts the task that reads replies and output messages.
    pub fn start_receiving(self: &Arc<Self>, receiver: DealerRecvHalf, limits: Limits, output: OutputHandler) {
        let task = tokio::spawn(receive_loop(self.clone(), receiver, limits, output));
        self.add_task(task.abort_handle());
    }

    /// Starts the task that fails every call when the transport reports the peer gone.
    pub fn watch_disconnect(
        self: &Arc<Self>,
        mut monitor: futures_channel::mpsc::Receiver<SocketEvent>,
        on_disconnect: impl FnOnce() + Send + 'static,
    ) {
        let task = tokio::spawn(async move {
            while let Some(event) = monitor.next().await {
                if let SocketEvent::Disconnected(_) = event {
                    on_disconnect();
                    return;
                }
            }
        });
        self.add_task(task.abort_handle());
    }

    pub fn add_task(&self, task: AbortHandle) {
        self.tasks.lock().expect("tasks lock").push(task);
    }

    /// Fails every pending and future call with `error()` and stops the tasks.
    pub fn close(&self, error: impl Fn() -> Error + Send + Sync + 'static) {
        self.pending.close(error);
        for task in self.tasks.lock().expect("tasks lock").drain(..) {
            task.abort();
        }
    }

    async fn send(&self, payload: Vec<u8>) -> Result<(), Error> {
        let mut sender = self.sender.lock().await;
        sender
            .send(transport::parent_frames(payload))
            .await
            .map_err(|err| Error::Transport(format!("sending to worker '{}' failed: {err}", self.worker)))
    }

    /// Sends `payload` as message `id` and waits for its reply, within `timeout`.
    async fn round_trip(
        &self,
        id: &str,
        payload: Vec<u8>,
        timeout: Option<Duration>,
        function: &str,
    ) -> Result<RawMessage, Error> {
        let reply = self.pending.register(id)?;
        let _guard = PendingGuard {
            pending: &self.pending,
            id,
        };
        self.send(payload).await?;
        let outcome = match timeout {
            Some(limit) => tokio::time::timeout(limit, reply).await.map_err(|_| Error::Timeout {
                worker: self.worker.to_string(),
                function: function.to_owned(),
                timeout: limit,
            })?,
            None => reply.await,
        };
        match outcome {
            Ok(reply) => reply,
            // The table was dropped without an answer: the connection is gone.
            Err(_) => Err(self.pending.closed_error().unwrap_or(Error::Disconnected {
                worker: self.worker.to_string(),
            })),
        }
    }

    /// Calls `function` with already-built arguments and returns its encoded result.
    pub async fn call(
        &self,
        function: &str,
        args: &EncodedValue,
        options: &CallOptions,
    ) -> Result<EncodedValue, Error> {
        let timeout = options.timeout.unwrap_or(self.default_timeout);
        let started = Instant::now();
        let _slot = match timeout {
            Some(limit) => tokio::time::timeout(limit, self.slots.acquire())
                .await
                .map_err(|_| Error::Timeout {
                    worker: self.worker.to_string(),
                    function: function.to_owned(),
                    timeout: limit,
                })?,
            None => self.slots.acquire().await,
        }
        .map_err(|_| Error::Disconnected {
            worker: self.worker.to_string(),
        })?;
        let id = new_id();
        let payload = encode_call(&id, function, args, options, timeout, self.auth_token.as_ref())?;
        let remaining = timeout.map(|limit| limit.saturating_sub(started.elapsed()));
        let reply = self.round_trip(&id, payload, remaining, function).await?;
        match reply.kind {
            MessageKind::Response => Ok(reply.result()),
            MessageKind::Error => Err(Error::remote(
                &self.worker,
                function,
                reply.error.as_deref().unwrap_or("error reply without an 'error' text"),
            )),
            _ => Err(Error::protocol(&self.worker, "unexpected reply type")),
        }
    }

    /// Sends a heartbeat and returns its round-trip time.
    pub async fn heartbeat(&self, timeout: Duration) -> Result<Duration, Error> {
        let id = new_id();
        let started = Instant::now();
        self.round_trip(&id, encode_heartbeat(&id, unix_now()), Some(timeout), "heartbeat")
            .await?;
        Ok(started.elapsed())
    }

    /// Asks the worker to exit; no reply is expected.
    pub async fn send_shutdown(&self) -> Result<(), Error> {
        self.send(encode_shutdown()).await
    }
}

/// Encodes the positional arguments of a call: a tuple, a `Vec`, or `()` for none.
pub(crate) fn encode_args(function: &str, args: impl Serialize) -> Result<EncodedValue, Error> {
    EncodedValue::encode(&args).map_err(|err| Error::Encode {
        function: function.to_owned(),
        reason: err.to_string(),
    })
}

/// Encodes a `call` message. `args` must be a sequence (or nil, for no arguments).
fn encode_call(
    id: &str,
    function: &str,
    args: &EncodedValue,
    options: &CallOptions,
    timeout: Option<Duration>,
    auth_token: Option<&EncodedValue>,
) -> Result<Vec<u8>, Error> {
    let args_bytes = match args.as_bytes()[0] {
        0x90..=0x9f | 0xdc | 0xdd => args.as_bytes(),
        0xc0 => &[0x90][..],
        _ => {
            return Err(Error::Encode {
                function: function.to_owned(),
                reason: "arguments must be a tuple or a sequence of positional arguments \
                         (use `(x,)` for a single argument)"
                    .into(),
            })
        }
    };
    let extra = 4 + options.client_name.is_some() as u32;
    let mut writer = MessageWriter::new(MessageKind::Call, id, extra, args_bytes.len() + 64);
    writer.str_field("function", function);
    writer.raw_field("args", args_bytes);
    writer.str_field(
        "namespace",
        options.namespace.as_deref().unwrap_or(crate::protocol::DEFAULT_NAMESPACE),
    );
    if let Some(name) = &options.client_name {
        writer.str_field("client_name", name);
    }
    let now = unix_now();
    let mut stamp = Vec::with_capacity(9);
    rmp::encode::write_f64(&mut stamp, now).expect("Vec write");
    let mut deadline = Vec::new();
    let mut metadata: Vec<(&str, &[u8])> = vec![("timestamp_sent", &stamp)];
    if let Some(limit) = timeout {
        rmp::encode::write_f64(&mut deadline, now + limit.as_secs_f64()).expect("Vec write");
        metadata.push(("deadline", &deadline));
    }
    metadata.extend(options.metadata.iter().map(|(k, v)| (k.as_str(), v.as_bytes())));
    if let Some(token) = auth_token {
        metadata.push((AUTH_TOKEN_KEY, token.as_bytes()));
    }
    writer.map_field("metadata", metadata.into_iter());
    Ok(writer.finish())
}

async fn receive_loop(
    connection: Arc<Connection>,
    mut receiver: DealerRecvHalf,
    limits: Limits,
    output: OutputHandler,
) {
    loop {
        let frames = match receiver.recv().await {
            Ok(frames) => frames,
            Err(err) => {
                tracing::debug!(worker = %connection.worker, "receive ended: {err}");
                return;
            }
        };
        let message = match RawMessage::parse(transport::payload(&frames), &limits) {
            Ok(message) => message,
            Err(err) => {
                tracing::warn!(worker = %connection.worker, "ignoring a malformed message: {err}");
                continue;
            }
        };
        if !message.is_current_protocol() {
            continue;
        }
        match message.kind {
            MessageKind::Response | MessageKind::Error | MessageKind::Heartbeat => {
                let Some(id) = message.id.clone() else { continue };
                let reply = match &message.violation {
                    None => Ok(message),
                    Some(violation) => Err(Error::protocol(&connection.worker, format!("reply rejected: {violation}"))),
                };
                if !connection.pending.complete(&id, reply) {
                    tracing::debug!(worker = %connection.worker, id, "reply for a call nobody waits for");
                }
            }
            MessageKind::Stdout | MessageKind::Stderr => {
                let stream = if message.kind == MessageKind::Stdout {
                    OutputStream::Stdout
                } else {
                    OutputStream::Stderr
                };
                output.emit(OutputEvent {
                    worker: &connection.worker,
                    stream,
                    text: message.output.as_deref().unwrap_or(""),
                    from_message: true,
                });
            }
            _ => {}
        }
    }
}
