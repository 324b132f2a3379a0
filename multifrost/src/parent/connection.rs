//! One live connection to a worker: sending, the round trip of a call or heartbeat, and the
//! task that receives replies and output.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::AbortHandle;

use super::in_flight::{InFlightBudget, Slot, TimedOut};
use super::options::{check_call, CallOptions};
use super::output::{OutputEvent, OutputHandler, OutputStream};
use super::pending::{self, PendingCalls, Received, ReplyWait};
use crate::error::Error;
use crate::protocol::{
    encode_cancel, encode_heartbeat, encode_shutdown, unix_at, unix_now, EncodedValue, Limits,
    MessageKind, OutgoingCall, RawMessage, DEFAULT_NAMESPACE,
};
use crate::transport::zmtp::{self, Gone};

/// A connected worker.
pub(crate) struct Connection {
    pub worker: Arc<str>,
    sender: zmtp::Sender,
    pub pending: PendingCalls,
    budget: InFlightBudget,
    /// Send order of calls and heartbeats: a reply to message n proves the child has read
    /// every message sent before it (a connection delivers in order).
    next_seq: AtomicU64,
    tasks: std::sync::Mutex<Vec<AbortHandle>>,
    /// `metadata.auth_token` of every call, already encoded.
    auth_token: Option<EncodedValue>,
    /// When the connection was made: the origin of `last_heard_ns`.
    born: Instant,
    /// Set by every message the child sends (a reply, output, a late heartbeat echo): proof of
    /// life, dated by [`last_heard`](Self::last_heard) (no clock read per message).
    heard: AtomicBool,
    /// When `last_heard` last found `heard` set, in nanoseconds since `born`.
    last_heard_ns: AtomicU64,
    /// Set by `stop()`: the child's exit is expected.
    stopping: AtomicBool,
}

impl Connection {
    pub fn new(
        worker: Arc<str>,
        sender: zmtp::Sender,
        max_in_flight: usize,
        max_in_flight_bytes: usize,
        auth_token: Option<&str>,
    ) -> Arc<Connection> {
        Arc::new(Connection {
            worker,
            sender,
            pending: PendingCalls::default(),
            budget: InFlightBudget::new(max_in_flight, max_in_flight_bytes),
            next_seq: AtomicU64::new(0),
            tasks: std::sync::Mutex::new(Vec::new()),
            auth_token: auth_token.map(|token| EncodedValue::encode(token).expect("a str encodes")),
            born: Instant::now(),
            heard: AtomicBool::new(false),
            last_heard_ns: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
        })
    }

    /// Marks the child's coming exit as expected (`stop()` asked for it).
    pub fn expect_exit(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Whether `stop()` asked the child to exit.
    pub fn exit_expected(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Records that the child just sent something.
    fn heard(&self) {
        self.heard.store(true, Ordering::Relaxed);
    }

    /// When the child last sent anything (the connection's start if it never did), as far as
    /// this method has seen: a message is dated when this method first finds it, so the time
    /// is never earlier than the message, and later by at most the time between two calls
    /// (the heartbeat loop calls it about once per heartbeat).
    pub fn last_heard(&self) -> Instant {
        if self.heard.swap(false, Ordering::Relaxed) {
            let now = self.born.elapsed().as_nanos().min(u64::MAX as u128) as u64;
            self.last_heard_ns.fetch_max(now, Ordering::Relaxed);
        }
        self.born + Duration::from_nanos(self.last_heard_ns.load(Ordering::Relaxed))
    }

    /// Starts the task that reads replies and output messages.
    pub fn start_receiving(
        self: &Arc<Self>,
        receiver: zmtp::Receiver,
        limits: Limits,
        output: OutputHandler,
    ) {
        let task = tokio::spawn(receive_loop(self.clone(), receiver, limits, output));
        self.add_task(task.abort_handle());
    }

    /// Starts the task that fails every call when the connection ends: `on_disconnect` gets
    /// the reason.
    pub fn watch_disconnect(
        self: &Arc<Self>,
        mut gone: Gone,
        on_disconnect: impl FnOnce(Arc<str>) + Send + 'static,
    ) {
        let worker = self.worker.clone();
        let task = tokio::spawn(async move {
            let reason = match gone.wait_for(Option::is_some).await {
                Ok(reason) => reason.clone().unwrap_or_default(),
                Err(_) => return, // the connection's parts are gone: it was closed already
            };
            tracing::debug!(worker = %worker, reason = &*reason, "connection ended");
            on_disconnect(reason);
        });
        self.add_task(task.abort_handle());
    }

    pub fn add_task(&self, task: AbortHandle) {
        self.tasks.lock().expect("tasks lock").push(task);
    }

    /// Fails every pending and future call with `error()`, ends the connection (the worker
    /// sees it end at once) and stops the tasks.
    pub fn close(&self, error: impl Fn() -> Error + Send + Sync + 'static) {
        self.pending.close(error);
        self.sender.close("the parent closed the connection");
        for task in self.tasks.lock().expect("tasks lock").drain(..) {
            task.abort();
        }
    }

    /// Queues `payload` for the worker: it never waits (the in-flight budget bounds the queue).
    fn send(&self, payload: Vec<u8>) -> Result<(), Error> {
        self.sender.send(payload).map_err(|reason| {
            Error::Transport(format!(
                "sending to worker '{}' failed: {reason}",
                self.worker
            ))
        })
    }

    /// Sends `payload`, the message that `reply` waits for, and waits for its reply until
    /// `deadline`.
    async fn round_trip(
        &self,
        reply: ReplyWait<'_>,
        payload: Vec<u8>,
        deadline: Option<Instant>,
    ) -> Result<Received, Error> {
        // Dropped unanswered (a timeout, a send that failed), it leaves the table.
        self.send(payload)?;
        let exchange = async { reply.await.map_err(|error| *error) };
        match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline.into(), exchange)
                .await
                .unwrap_or_else(|_| Err(self.timeout_error("", Duration::ZERO))),
            None => exchange.await,
        }
    }

    fn timeout_error(&self, function: &str, timeout: Duration) -> Error {
        Error::Timeout {
            worker: self.worker.to_string(),
            function: function.to_owned(),
            timeout,
        }
    }

    /// Calls `function` with already-built arguments and returns its encoded result. The call
    /// started at `started` (a clock read of the caller's: `deadline` is `timeout` after it).
    pub async fn call(
        self: &Arc<Self>,
        function: &str,
        args: &EncodedValue,
        options: &CallOptions,
        timeout: Option<Duration>,
        started: Instant,
        deadline: Option<Instant>,
    ) -> Result<EncodedValue, Error> {
        let timed_out = || self.timeout_error(function, timeout.unwrap_or_default());
        check_call(function, args, options)?;
        // Room now, the usual case: the call goes out at the time it started. The wait is
        // boxed: its futures would make every call's future larger.
        let size = args.encoded_len();
        let (slot, sent) = match self.budget.try_acquire(size) {
            Some(slot) => (slot, started),
            None => {
                let slot = Box::pin(self.budget.acquire(size, deadline))
                    .await
                    .map_err(|TimedOut| timed_out())?;
                (slot, Instant::now())
            }
        };
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let (id, reply) = self.pending.register(seq, true)?;
        let id = id.as_str();
        let payload = OutgoingCall {
            id,
            function,
            args,
            namespace: options.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE),
            client_name: options.client_name.as_deref(),
            // What is left of it: the child's deadline is this call's.
            timeout: deadline.map(|deadline| deadline.saturating_duration_since(sent)),
            metadata: &options.metadata,
            auth_token: self.auth_token.as_ref(),
        }
        .encode_at(unix_at(sent));
        // Until the reply comes, the call keeps its slot even when it times out or its future is
        // dropped (see `Unanswered`).
        let mut unanswered = Unanswered {
            connection: self,
            id,
            seq,
            slot: Some(slot),
        };
        let reply = match self.round_trip(reply, payload, deadline).await {
            Ok(reply) => reply,
            Err(Error::Timeout { .. }) => return Err(timed_out()),
            Err(err) => {
                // The connection is gone: no message of it is queued any more.
                unanswered.slot = None;
                return Err(err);
            }
        };
        unanswered.slot = None;
        match reply {
            Received::Result(result) => Ok(result),
            Received::Error(reply) => Err(Error::remote(
                &self.worker,
                function,
                reply
                    .error()
                    .unwrap_or("error reply without an 'error' text"),
                reply.error_data(),
            )),
            Received::Heartbeat => Err(Error::protocol(&self.worker, "unexpected reply type")),
        }
    }

    /// Sends a heartbeat and returns its round-trip time.
    pub async fn heartbeat(&self, timeout: Duration) -> Result<Duration, Error> {
        let started = Instant::now();
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let (id, reply) = self.pending.register(seq, false)?;
        self.round_trip(
            reply,
            encode_heartbeat(id.as_str(), unix_now()),
            Some(Instant::now() + timeout),
        )
        .await
        .map_err(|err| match err {
            Error::Timeout { .. } => self.timeout_error("heartbeat", timeout),
            other => other,
        })?;
        Ok(started.elapsed())
    }

    /// Asks the worker to exit; no reply is expected.
    pub fn send_shutdown(&self) -> Result<(), Error> {
        self.send(encode_shutdown(self.auth_token.as_ref()))
    }
}

/// A call sent and not answered (yet): if it ends without its reply (it timed out, or its
/// future was dropped), its slot stays taken until the child has read past its message, which
/// may still sit in the transport's queue, and the child is told to cancel it.
struct Unanswered<'a> {
    connection: &'a Arc<Connection>,
    id: &'a str,
    seq: u64,
    /// `None` once the reply came (or the connection closed).
    slot: Option<Slot>,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else {
            return;
        };
        self.connection.budget.expire(self.id, self.seq, slot);
        // Queued at once: sending never waits, and needs no runtime.
        let _ = self
            .connection
            .send(encode_cancel(self.id, self.connection.auth_token.as_ref()));
    }
}

async fn receive_loop(
    connection: Arc<Connection>,
    mut receiver: zmtp::Receiver,
    limits: Limits,
    output: OutputHandler,
) {
    // `None` once the connection ended: `watch_disconnect` hears why.
    while let Some(payload) = receiver.recv().await {
        // Whatever it is, the child sent it: it is alive.
        connection.heard();
        let message = match RawMessage::parse(payload, &limits) {
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
                // Every message of ours has a 36-byte id: a reply with another one answers
                // nothing that waits. The id is copied out, as the message itself is handed on.
                // Compared as bytes with ids of ours, which are ASCII: no UTF-8 check.
                let Some(key) = message.id_bytes().and_then(pending::key) else {
                    tracing::debug!(worker = %connection.worker, id = message.id(), "reply for a call nobody waits for");
                    continue;
                };
                let reply = match &message.violation {
                    None => match Received::of(message) {
                        Some(received) => Ok(received),
                        None => continue, // Not a reply: the arm's types all are.
                    },
                    Some(violation) => Err(Box::new(Error::protocol(
                        &connection.worker,
                        format!("reply rejected: {violation}"),
                    ))),
                };
                let seq = connection.pending.complete(&key, reply);
                if seq.is_none() {
                    tracing::debug!(worker = %connection.worker, id = std::str::from_utf8(&key).ok(), "reply for a call nobody waits for");
                }
                connection.budget.child_read_up_to(&key, seq);
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
                    text: message.output().unwrap_or(""),
                    from_message: true,
                });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_message_is_dated_when_first_seen_never_before_it_arrived() {
        let connection = Connection::new("w".into(), zmtp::Sender::unconnected(), 1, 1024, None);
        // Nothing heard yet: the connection's start.
        let born = connection.last_heard();
        assert_eq!(connection.last_heard(), born);
        connection.heard();
        let after_message = Instant::now();
        let first = connection.last_heard();
        assert!(first >= after_message, "dated when seen, not earlier");
        // Nothing new: the date stays.
        assert_eq!(connection.last_heard(), first);
        connection.heard();
        assert!(
            connection.last_heard() > first,
            "a later message moves it on"
        );
    }
}
