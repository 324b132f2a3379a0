//! One live connection to a worker: the DEALER socket, the receive task and the pending calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
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
    /// One permit per call in flight (`max_in_flight`).
    slots: Arc<Semaphore>,
    /// One permit per KiB of calls in flight (`max_in_flight_bytes`).
    bytes: Arc<Semaphore>,
    /// Send order of calls and heartbeats: a reply to message n proves the child has read
    /// every message sent before it (a connection delivers in order).
    next_seq: AtomicU64,
    /// The slots of timed-out calls whose message the child may not have read yet.
    expired: std::sync::Mutex<ExpiredSlots>,
    expired_count: AtomicUsize,
    bytes_capacity: u64,
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
        max_in_flight_bytes: usize,
        default_timeout: Option<Duration>,
        auth_token: Option<&str>,
    ) -> Arc<Connection> {
        let budget_kib = kib(max_in_flight_bytes).min(Semaphore::MAX_PERMITS);
        Arc::new(Connection {
            worker,
            sender: Mutex::new(sender),
            pending: PendingCalls::default(),
            slots: Arc::new(Semaphore::new(max_in_flight)),
            bytes: Arc::new(Semaphore::new(budget_kib)),
            next_seq: AtomicU64::new(0),
            expired: std::sync::Mutex::new(ExpiredSlots::default()),
            expired_count: AtomicUsize::new(0),
            bytes_capacity: budget_kib as u64,
            tasks: std::sync::Mutex::new(Vec::new()),
            default_timeout,
            auth_token: auth_token.map(|token| EncodedValue::encode(token).expect("a str encodes")),
        })
    }

    /// Starts the task that reads replies and output messages.
    pub fn start_receiving(
        self: &Arc<Self>,
        receiver: DealerRecvHalf,
        limits: Limits,
        output: OutputHandler,
    ) {
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
            .map_err(|err| {
                Error::Transport(format!("sending to worker '{}' failed: {err}", self.worker))
            })
    }

    /// Sends `payload` as message `id` and waits for its reply until `deadline`. Sending is
    /// under the deadline too: a full transport queue cannot hold a call past its timeout.
    /// On timeout, returns the message's sequence number with the error.
    async fn round_trip(
        &self,
        id: &str,
        payload: Vec<u8>,
        deadline: Option<Instant>,
    ) -> Result<RawMessage, (Error, Option<u64>)> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let reply = self.pending.register(id, seq).map_err(|e| (e, None))?;
        let _guard = PendingGuard {
            pending: &self.pending,
            id,
        };
        let exchange = async {
            self.send(payload).await?;
            match reply.await {
                Ok(reply) => reply,
                // The table was dropped without an answer: the connection is gone.
                Err(_) => Err(self.pending.closed_error().unwrap_or(Error::Disconnected {
                    worker: self.worker.to_string(),
                })),
            }
        };
        match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline.into(), exchange).await {
                Ok(outcome) => outcome.map_err(|e| (e, None)),
                Err(_) => Err((self.timeout_error("", Duration::ZERO), Some(seq))),
            },
            None => exchange.await.map_err(|e| (e, None)),
        }
    }

    fn timeout_error(&self, function: &str, timeout: Duration) -> Error {
        Error::Timeout {
            worker: self.worker.to_string(),
            function: function.to_owned(),
            timeout,
        }
    }

    /// Waits for a call slot and for room in the byte budget, until `deadline`.
    async fn acquire_slot(
        &self,
        size: usize,
        deadline: Option<Instant>,
    ) -> Result<Slot, Option<()>> {
        let wanted = (kib(size) as u32).clamp(1, self.bytes_total());
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
                Ok(slot) => slot.map_err(|_| Some(())),
                Err(_) => Err(None),
            },
            None => acquire.await.map_err(|_| Some(())),
        }
    }

    /// The byte budget's size in permits: a call larger than the whole budget waits for all
    /// of it.
    fn bytes_total(&self) -> u32 {
        self.bytes_capacity.min(u32::MAX as u64) as u32
    }

    /// A timed-out call's slot stays taken until the child has read past its message: its
    /// bytes sit in the transport's queue until then.
    fn expire(&self, id: &str, seq: u64, slot: Slot) {
        let mut expired = self.expired.lock().expect("expired lock");
        expired.by_seq.insert(seq, (id.to_owned(), slot));
        expired.by_id.insert(id.to_owned(), seq);
        self.expired_count
            .store(expired.by_seq.len(), Ordering::Relaxed);
    }

    /// The child answered message `id` (sequence `seq`, if still waited for): it has read
    /// every message sent before, so their slots are free again.
    fn child_read_up_to(&self, id: &str, seq: Option<u64>) {
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

    /// Calls `function` with already-built arguments and returns its encoded result.
    pub async fn call(
        &self,
        function: &str,
        args: &EncodedValue,
        options: &CallOptions,
    ) -> Result<EncodedValue, Error> {
        let timeout = options.timeout.unwrap_or(self.default_timeout);
        let deadline = timeout.map(|limit| Instant::now() + limit);
        let timed_out = || self.timeout_error(function, timeout.unwrap_or_default());
        let slot = self
            .acquire_slot(args.as_bytes().len(), deadline)
            .await
            .map_err(|closed| match closed {
                Some(()) => Error::Disconnected {
                    worker: self.worker.to_string(),
                },
                None => timed_out(),
            })?;
        let id = new_id();
        let payload = encode_call(
            &id,
            function,
            args,
            options,
            timeout,
            self.auth_token.as_ref(),
        )?;
        let reply = match self.round_trip(&id, payload, deadline).await {
            Ok(reply) => reply,
            Err((Error::Timeout { .. }, seq)) => {
                if let Some(seq) = seq {
                    self.expire(&id, seq, slot);
                }
                return Err(timed_out());
            }
            Err((err, _)) => return Err(err),
        };
        match reply.kind {
            MessageKind::Response => Ok(reply.result()),
            MessageKind::Error => Err(Error::remote(
                &self.worker,
                function,
                reply
                    .error
                    .as_deref()
                    .unwrap_or("error reply without an 'error' text"),
            )),
            _ => Err(Error::protocol(&self.worker, "unexpected reply type")),
        }
    }

    /// Sends a heartbeat and returns its round-trip time.
    pub async fn heartbeat(&self, timeout: Duration) -> Result<Duration, Error> {
        let id = new_id();
        let started = Instant::now();
        self.round_trip(
            &id,
            encode_heartbeat(&id, unix_now()),
            Some(Instant::now() + timeout),
        )
        .await
        .map_err(|(err, _)| match err {
            Error::Timeout { .. } => self.timeout_error("heartbeat", timeout),
            other => other,
        })?;
        Ok(started.elapsed())
    }

    /// Asks the worker to exit; no reply is expected.
    pub async fn send_shutdown(&self) -> Result<(), Error> {
        self.send(encode_shutdown()).await
    }
}

/// The slot a call holds while in flight: one of `max_in_flight`, and its size in the byte
/// budget.
struct Slot {
    _call: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

/// Slots of timed-out calls, by send sequence and by id.
#[derive(Default)]
struct ExpiredSlots {
    by_seq: BTreeMap<u64, (String, Slot)>,
    by_id: HashMap<String, u64>,
}

/// The byte budget counts KiB, so that it fits a semaphore's permits.
fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
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
        options
            .namespace
            .as_deref()
            .unwrap_or(crate::protocol::DEFAULT_NAMESPACE),
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
    metadata.extend(
        options
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes())),
    );
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
                let Some(id) = message.id.clone() else {
                    continue;
                };
                let reply = match &message.violation {
                    None => Ok(message),
                    Some(violation) => Err(Error::protocol(
                        &connection.worker,
                        format!("reply rejected: {violation}"),
                    )),
                };
                let seq = connection.pending.complete(&id, reply);
                if seq.is_none() {
                    tracing::debug!(worker = %connection.worker, id, "reply for a call nobody waits for");
                }
                connection.child_read_up_to(&id, seq);
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
