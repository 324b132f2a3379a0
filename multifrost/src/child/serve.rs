//! Serving a [`Worker`]: the receive loop, signals, output forwarding, and running calls and
//! sending their replies. What to do with each message is decided by [`super::rules`].

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot, Notify};

use std::collections::{HashMap, VecDeque};

use super::output::{CapturedStdio, OutputLine, OUTPUT_BACKLOG};
use super::panic::CaughtPanic;
use super::rules::{check_reply, Admission, AdmittedCall, Decision, DispatchRules, Ignored};
use super::worker::{BlockingCall, CallError, CallFlags, IncomingCall, Worker};
use crate::error::Result;
use crate::protocol::{
    encode_error, encode_error_with_data, encode_output, encode_response, EncodedValue, Limits,
    MessageKind,
};
use crate::transport::router::{Router, RouterSender};

/// How many distinct parents a child remembers for forwarding its output.
const MAX_KNOWN_PARENTS: usize = 16;

/// The most bytes of replies a service holds for one peer that does not read them; past it,
/// that peer's further replies are dropped (it is the one that loses, never the service).
const MAX_PEER_BACKLOG: usize = 64 * 1024 * 1024;
/// With captured output, how much may wait to be written to a parent before the outbox waits
/// for it to read (and, the pipes filling, the worker's prints wait too).
const OUTPUT_ROOM: usize = 8 * 1024 * 1024;

/// At most this many received messages are taken at once.
const RECEIVE_BATCH: usize = 64;

/// At most this many replies are taken from the outbox's queue at once.
const REPLY_BATCH: usize = 1024;

/// A call is abandoned this long after its `metadata.deadline`: by then its parent's own
/// timeout has fired, so that the parent reports the timeout it set rather than racing this
/// reply (the two clocks and timers are not the same).
const ABANDON_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The state shared by the receive loop and the tasks running calls.
pub(crate) struct Server<W> {
    worker: Arc<W>,
    /// Whether results may hold integers outside i64 (see `ChildRunner::wide_integers`).
    wide_integers: bool,
    rules: DispatchRules,
    parents: Mutex<Vec<Bytes>>,
    stop: Notify,
    /// The calls running now, by parent and id, each with what cancels it. Hashed with
    /// foldhash, seeded per process (SipHash took a tenth of the runtime's thread with sync
    /// methods).
    running: Mutex<HashMap<CallKey, Cancel, foldhash::fast::RandomState>>,
}

/// A running call's key: its parent's routing id and its id, copied. A key holding views of
/// them (`Bytes`) counted references that the thread running the call counted too: the two
/// threads took those counts' cache lines from each other several times a call, 8% of the
/// runtime's thread with sync methods. Up to [`INLINE_KEY`] bytes (a 9-byte routing id and a
/// 36-character UUID take 47) need no allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum CallKey {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

/// See [`CallKey`].
const INLINE_KEY: usize = 62;

impl CallKey {
    fn new(routing_id: &[u8], id: &[u8]) -> CallKey {
        // The routing id's length first, so that no two pairs make the same bytes.
        let prefix = u16::try_from(routing_id.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes();
        let routing_id = &routing_id[..routing_id.len().min(u16::MAX as usize)];
        let len = prefix.len() + routing_id.len() + id.len();
        let parts = [&prefix[..], routing_id, id];
        if len <= INLINE_KEY {
            let mut bytes = [0u8; INLINE_KEY];
            let mut at = 0;
            for part in parts {
                bytes[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
            CallKey::Inline {
                len: len as u8,
                bytes,
            }
        } else {
            CallKey::Heap(parts.concat().into_boxed_slice())
        }
    }
}

impl Default for CallKey {
    fn default() -> Self {
        CallKey::Inline {
            len: 0,
            bytes: [0; INLINE_KEY],
        }
    }
}

/// How a running call is cancelled.
enum Cancel {
    /// A call on a task of its own: dropping its dispatch, which ends it where it waits.
    Task(oneshot::Sender<()>),
    /// A sync method on the threads for sync methods, which runs to its end: its reply is not
    /// sent (whoever sets `answered` first answers), and its context says it was cancelled.
    Blocking(Arc<CallFlags>),
}

impl Cancel {
    fn cancel(self) {
        match self {
            Cancel::Task(cancel) => {
                let _ = cancel.send(());
            }
            Cancel::Blocking(flags) => {
                flags.answered.store(true, Ordering::Release);
                flags.cancelled.store(true, Ordering::Relaxed);
            }
        }
    }
}

impl<W: Worker> Server<W> {
    /// Serves `worker`, whose results are checked before they are sent (see `check_reply`;
    /// `wide_integers` lets integers outside i64 through).
    pub fn new(
        worker: Arc<W>,
        wide_integers: bool,
        limits: Limits,
        auth_token: Option<String>,
    ) -> Arc<Self> {
        // So that a panic's reply says where it happened.
        super::panic::install_hook();
        Arc::new(Server {
            rules: DispatchRules::new(
                worker.list_functions(),
                worker.namespace(),
                auth_token,
                limits,
            )
            .describing(&worker.describe()),
            worker,
            wide_integers,
            parents: Mutex::new(Vec::new()),
            stop: Notify::new(),
            running: Mutex::default(),
        })
    }

    pub async fn serve(
        self: Arc<Self>,
        mut router: Router,
        output: Option<CapturedStdio>,
        exit_when_parent_leaves: bool,
    ) -> Result<()> {
        let sender = router.sender();
        let mut background = Vec::new();
        background.push(tokio::spawn(self.clone().watch_signals()));
        if exit_when_parent_leaves {
            background.push(tokio::spawn(self.clone().watch_parent(sender.clone())));
        }
        let mut outbox = None;
        let replies = match output {
            Some(output) => {
                let (replies, queued) = mpsc::unbounded_channel();
                outbox = Some(tokio::spawn(self.clone().outbox(output, queued, sender)));
                Replies::Outbox(replies)
            }
            None => Replies::Direct(sender),
        };
        // Whether calls are polled once before they get a task (see `run_call`).
        let current_thread = tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::CurrentThread;
        // The messages taken at once, and the sync methods' calls they bring, handed to the
        // threads for sync methods together.
        let mut messages = Vec::with_capacity(RECEIVE_BATCH);
        let mut jobs = Vec::new();
        loop {
            tokio::select! {
                () = router.recv_many(&mut messages, RECEIVE_BATCH) => {
                    for (routing_id, payload) in messages.drain(..) {
                        self.handle_message(routing_id, payload, &replies, &mut jobs, current_thread);
                    }
                    super::blocking::pool().submit_all(&mut jobs);
                }
                _ = self.stop.notified() => break,
            }
        }
        for task in background {
            task.abort();
        }
        // The outbox sends what is still queued and printed, then ends with its queue...
        drop(replies);
        if let Some(outbox) = outbox {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), outbox).await;
        }
        // ... and the connections write out what they hold.
        router.close(std::time::Duration::from_secs(2)).await;
        Ok(())
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
    async fn watch_parent(self: Arc<Self>, sender: RouterSender) {
        sender.until_alone().await;
        tracing::info!("parent disconnected; worker stopping");
        self.stop.notify_one();
    }

    /// Sends every reply and every captured line, in order: before a reply, the lines printed
    /// until then. Ends when the reply queue closes (serving stopped), after a last drain.
    async fn outbox(
        self: Arc<Self>,
        mut output: CapturedStdio,
        mut replies: mpsc::UnboundedReceiver<Reply>,
        sender: RouterSender,
    ) {
        let mut lines = VecDeque::new();
        let mut dropped = 0u64;
        // The replies taken at once, in one buffer kept from batch to batch.
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                biased;
                taken = replies.recv_many(&mut batch, REPLY_BATCH) => {
                    output.drain(&mut lines);
                    self.send_lines(&mut lines, &mut dropped, &sender).await;
                    if taken == 0 {
                        return; // Serving stopped: all is sent.
                    }
                    // Replies in a row to one parent look it up once.
                    let mut last: Option<(Bytes, _)> = None;
                    for Reply { routing_id, payload, leftovers } in batch.drain(..) {
                        if !matches!(&last, Some((id, _)) if *id == routing_id) {
                            last = sender.peer(&routing_id).map(|parent| (routing_id, parent));
                        }
                        let Some((_, parent)) = &last else {
                            tracing::debug!("dropping a reply to a parent that is gone");
                            continue;
                        };
                        // A parent that does not read holds up this queue, and with it the
                        // output pipes, and so the worker's prints: nothing piles up here.
                        parent.room(OUTPUT_ROOM).await;
                        if let Err(reason) = parent.send(payload) {
                            tracing::warn!("could not send a reply: {reason}");
                        }
                        drop(leftovers);
                    }
                }
                () = output.readable() => {
                    output.read_available(64 * 1024, &mut lines);
                    self.send_lines(&mut lines, &mut dropped, &sender).await;
                }
            }
        }
    }

    /// Sends the queued lines to every known parent. With no parent yet, they are held (at
    /// most [`OUTPUT_BACKLOG`], older ones dropped and counted) until one appears.
    async fn send_lines(
        &self,
        lines: &mut VecDeque<OutputLine>,
        dropped: &mut u64,
        sender: &RouterSender,
    ) {
        let parents = self.parents.lock().expect("parents lock").clone();
        if parents.is_empty() {
            while lines.len() > OUTPUT_BACKLOG {
                lines.pop_front();
                *dropped += 1;
            }
            return;
        }
        if *dropped > 0 {
            let notice = format!(
                "multifrost: {dropped} lines of output were dropped while no parent was connected"
            );
            lines.push_front(OutputLine {
                kind: MessageKind::Stderr,
                text: notice,
            });
            *dropped = 0;
        }
        while let Some(line) = lines.pop_front() {
            let payload = encode_output(line.kind, &line.text);
            for parent in &parents {
                if let Some(parent) = sender.peer(parent) {
                    parent.room(OUTPUT_ROOM).await;
                    let _ = parent.send(payload.clone());
                }
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

    /// Acts on one message; a sync method's call becomes a job in `jobs`, for the caller to
    /// hand to the threads for sync methods.
    fn handle_message(
        self: &Arc<Self>,
        routing_id: Bytes,
        payload: Bytes,
        replies: &Replies,
        jobs: &mut Vec<super::blocking::Job>,
        current_thread: bool,
    ) {
        let call = match self.rules.admit(payload) {
            Admission::Call(call) => call,
            Admission::Decided(decision) => {
                return self.act(routing_id, decision, replies, current_thread)
            }
        };
        self.remember_parent(&routing_id);
        // A call with a deadline needs a timer to be abandoned at it: it goes the way below.
        if !call.has_deadline() {
            if let Some(job) = self.worker.dispatch_blocking(call.function()) {
                jobs.push(self.blocking_call(job, routing_id, call, replies));
                return;
            }
        }
        match call.build(Arc::default()) {
            Ok(call) => self.run_call(routing_id, call, replies, current_thread),
            Err(refusal) => replies.send(routing_id, encode_error(&refusal.0, refusal.1.message())),
        }
    }

    fn act(
        self: &Arc<Self>,
        routing_id: Bytes,
        decision: Decision,
        replies: &Replies,
        current_thread: bool,
    ) {
        match decision {
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
                replies.send(routing_id, encode_error(&id, error.message()));
            }
            Decision::Reply(reply) => {
                self.remember_parent(&routing_id);
                replies.send(routing_id, reply);
            }
            Decision::Stop => {
                self.remember_parent(&routing_id);
                tracing::info!("shutdown requested by the parent");
                self.stop.notify_one();
            }
            Decision::Dispatch(call) => {
                // (`admit` leaves calls to `handle_message`; this is `decide`'s form of one.)
                self.remember_parent(&routing_id);
                self.run_call(routing_id, call, replies, current_thread);
            }
            Decision::Cancel(id) => {
                let cancel = self
                    .running
                    .lock()
                    .expect("running lock")
                    .remove(&CallKey::new(&routing_id, id.as_bytes()));
                if let Some(cancel) = cancel {
                    cancel.cancel();
                }
            }
            Decision::Ignore(why @ Ignored::UnauthorizedCancel) => tracing::warn!("ignoring {why}"),
        }
    }

    /// Runs one call and sends its reply, unless the parent cancels it first; past its
    /// deadline it is abandoned with an error reply.
    ///
    /// (A call to a sync method without a deadline does not come here: `handle_message` hands
    /// it to [`Server::blocking_call`].)
    ///
    /// On a current-thread runtime the call is first polled here: a call that completes at
    /// once (most async methods do) is answered without a task, a timer or an entry in
    /// `running`. Anything else gets a task of its own, which polls it again at once. (On a
    /// multi-thread runtime every call gets its task, so that calls that compute before their
    /// first await still run side by side.)
    fn run_call(
        self: &Arc<Self>,
        routing_id: Bytes,
        call: IncomingCall,
        replies: &Replies,
        current_thread: bool,
    ) {
        let flags = call.context.flags();
        let deadline = call.context.deadline();
        let answer = Answer::new(&call, deadline.is_some());
        let function = call.function.clone();
        // The location is taken in the poll that caught the panic, on its thread.
        let mut dispatch = AssertUnwindSafe(self.worker.clone().dispatch(call))
            .catch_unwind()
            .map(|outcome| outcome.map_err(CaughtPanic::take));
        if current_thread {
            let mut context = std::task::Context::from_waker(futures_util::task::noop_waker_ref());
            if let std::task::Poll::Ready(outcome) = dispatch.poll_unpin(&mut context) {
                let payload = answer.reply(outcome, &function, self.wide_integers);
                replies.send(routing_id, payload);
                return;
            }
        }
        let key = CallKey::new(&routing_id, answer.id.as_bytes());
        let deadline = deadline.map(|at| {
            let left = at
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            tokio::time::Instant::now() + left + ABANDON_GRACE
        });
        let (cancel, cancel_requested) = oneshot::channel();
        // Registered before the task starts, so that the task's own removal cannot come first.
        self.running
            .lock()
            .expect("running lock")
            .insert(key.clone(), Cancel::Task(cancel));
        let server = self.clone();
        let replies = replies.clone();
        tokio::spawn(async move {
            let correlation_id = answer.correlation_id.as_deref();
            let until_deadline = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            let outcome = tokio::select! {
                outcome = dispatch => Some(outcome),
                _ = cancel_requested => None,
                () = until_deadline => {
                    flags.cancelled.store(true, Ordering::Relaxed);
                    tracing::debug!(function, correlation_id, "call abandoned at its deadline");
                    server.running.lock().expect("running lock").remove(&key);
                    let message = format!(
                        "{function}: abandoned: its deadline passed after {:.3} s (metadata.deadline)",
                        answer.started.map_or(0.0, |started| started.elapsed().as_secs_f64())
                    );
                    replies.send(routing_id, encode_error(&answer.id, &message));
                    return;
                }
            };
            let Some(outcome) = outcome else {
                // Cancelled by the parent, which waits for no reply.
                flags.cancelled.store(true, Ordering::Relaxed);
                tracing::debug!(function, correlation_id, "call cancelled by the parent");
                return;
            };
            server.running.lock().expect("running lock").remove(&key);
            let payload = answer.reply(outcome, &function, server.wide_integers);
            replies.send(routing_id, payload);
        });
    }
}

/// What a call's answer and its log lines say of it.
struct Answer {
    id: String,
    correlation_id: Option<String>,
    /// When the call arrived, if anything will ask (see `run_call`).
    started: Option<std::time::Instant>,
}

impl Answer {
    /// For `call`, which has a deadline or not; logs its arrival.
    fn new(call: &IncomingCall, deadline: bool) -> Answer {
        let debug = tracing::enabled!(tracing::Level::DEBUG);
        let answer = Answer {
            id: call.context.id.clone(),
            correlation_id: debug
                .then(|| call.context.correlation_id().map(str::to_owned))
                .flatten(),
            // Read only for the log lines and the message of a call abandoned at its deadline.
            started: (debug || deadline).then(std::time::Instant::now),
        };
        tracing::debug!(
            function = call.function.as_str(),
            correlation_id = answer.correlation_id.as_deref(),
            "call received"
        );
        answer
    }

    /// The reply to this call of `function` (see [`reply_for`]). Building it runs the check
    /// and the log lines (a subscriber's code): should anything there panic, the caller still
    /// gets an answer, and the thread building it (the runtime's, or one for sync methods)
    /// goes on.
    fn reply(
        &self,
        outcome: std::result::Result<std::result::Result<EncodedValue, CallError>, CaughtPanic>,
        function: &str,
        wide_integers: bool,
    ) -> Vec<u8> {
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            reply_for(
                outcome,
                &self.id,
                function,
                self.correlation_id.as_deref(),
                self.started,
                wide_integers,
            )
        }))
        .unwrap_or_else(|_| {
            encode_error(
                &self.id,
                &format!("{function}: its reply could not be built"),
            )
        })
    }
}

impl<W: Worker> Server<W> {
    /// The job that runs a sync method's call on the threads for sync methods. The call goes as
    /// it came, admitted but not built: the thread that runs it builds it (its strings, its
    /// arguments), frees it and sends the reply, with no task and no channel back. What this
    /// thread made for it (the job, the flags a cancel sets) comes back with the reply to be
    /// dropped here. A parent's cancel still stops the reply (see [`Cancel::Blocking`]).
    fn blocking_call(
        self: &Arc<Self>,
        job: BlockingCall<W>,
        routing_id: Bytes,
        call: AdmittedCall,
        replies: &Replies,
    ) -> super::blocking::Job {
        let flags = Arc::new(CallFlags::default());
        let key = CallKey::new(&routing_id, call.id_bytes());
        self.running
            .lock()
            .expect("running lock")
            .insert(key.clone(), Cancel::Blocking(flags.clone()));
        Box::new(SyncCall {
            server: self.clone(),
            job,
            routing_id,
            key,
            call: Some(call),
            flags,
            replies: Some(replies.clone()),
        })
    }
}

/// A call to a sync method, as the threads for sync methods run it. What the runtime's thread
/// allocated for it goes back there with the reply, to be dropped (see
/// [`Replies::send_returning`]), and what the thread running it allocates (the built call,
/// the result) is dropped where it was made: memory freed on another thread than the one that
/// allocated it takes a lock of glibc's allocator, which the runtime's thread, allocating for
/// the next calls, held often enough that the two threads woke each other through the kernel
/// about once a call (bench/PROFILE.md).
struct SyncCall<W: Worker> {
    server: Arc<Server<W>>,
    job: BlockingCall<W>,
    /// Its key in `running`.
    key: CallKey,
    /// Taken by the thread that runs it, with the routing id and the replies to answer it by.
    call: Option<AdmittedCall>,
    routing_id: Bytes,
    replies: Option<Replies>,
    flags: Arc<CallFlags>,
}

impl<W: Worker> Drop for SyncCall<W> {
    /// Takes the call's entry out of `running`, on the runtime's thread like the rest (the
    /// table stays in its cache). Until then a cancel finds the call answered and does nothing.
    fn drop(&mut self) {
        let key = std::mem::take(&mut self.key);
        let mut running = self.server.running.lock().expect("running lock");
        if let std::collections::hash_map::Entry::Occupied(entry) = running.entry(key) {
            // Only its own: a peer may have sent another call with the same id since.
            if matches!(entry.get(), Cancel::Blocking(flags) if Arc::ptr_eq(flags, &self.flags)) {
                entry.remove();
            }
        }
    }
}

impl<W: Worker> super::blocking::Run for SyncCall<W> {
    fn run(mut self: Box<Self>) {
        let (Some(call), Some(replies)) = (self.call.take(), self.replies.take()) else {
            return;
        };
        let routing_id = std::mem::take(&mut self.routing_id);
        let function = self.job.function;
        let payload = match call.build(self.flags.clone()) {
            Ok(call) => {
                let answer = Answer::new(&call, false);
                // The location is taken by the panic hook, on this thread.
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    (self.job.run)(&self.server.worker, &call)
                }))
                .map_err(CaughtPanic::take);
                drop(call);
                if self.flags.answered.load(Ordering::Acquire) {
                    // Cancelled (the cancel took its entry out of `running`): its reply would
                    // not be sent, so it is not built either. (Dropped here: a rare case.)
                    let correlation_id = answer.correlation_id.as_deref();
                    tracing::debug!(function, correlation_id, "call cancelled by the parent");
                    return;
                }
                answer.reply(outcome, function, self.server.wide_integers)
            }
            Err(refusal) => encode_error(&refusal.0, refusal.1.message()),
        };
        if !self.flags.answered.swap(true, Ordering::AcqRel) {
            replies.send_returning(routing_id, payload, Some(self));
        }
    }
}

/// The reply to the call `id` of `function`, from what its dispatch came to. A result that
/// fails [`check_reply`] is answered with the error saying why instead: no worker, typed or
/// written by hand, can answer with a value its parent would refuse, drop or misread.
fn reply_for(
    outcome: std::result::Result<std::result::Result<EncodedValue, CallError>, CaughtPanic>,
    id: &str,
    function: &str,
    correlation_id: Option<&str>,
    started: Option<std::time::Instant>,
    wide_integers: bool,
) -> Vec<u8> {
    let duration_ms = || started.map(|started| started.elapsed().as_secs_f64() * 1000.0);
    let outcome = outcome.map(|result| {
        result.and_then(|value| check_reply(function, &value, wide_integers).map(|()| value))
    });
    match outcome {
        Ok(Ok(result)) => {
            tracing::debug!(
                function,
                correlation_id,
                duration_ms = duration_ms(),
                "call answered"
            );
            encode_response(id, &result)
        }
        Ok(Err(error)) => {
            tracing::debug!(
                function,
                correlation_id,
                duration_ms = duration_ms(),
                error = error.message(),
                "call answered with an error"
            );
            encode_error_with_data(id, &error.reply_text(), error.data())
        }
        Err(panic) => {
            let error = panic.into_call_error(function);
            tracing::warn!(function, correlation_id, "{}", error.reply_text());
            encode_error(id, &error.reply_text())
        }
    }
}

/// A reply on its way to the outbox.
struct Reply {
    routing_id: Bytes,
    payload: Vec<u8>,
    /// What the call that made it leaves to be dropped on the runtime's thread (see
    /// [`SyncCall`]).
    leftovers: Option<Box<dyn Send>>,
}

/// Where replies go.
#[derive(Clone)]
enum Replies {
    /// Spawn mode with captured output: through the outbox, after what was printed before.
    Outbox(mpsc::UnboundedSender<Reply>),
    /// Sent at once, into the connection's outbox; what waits for one peer is bounded in bytes.
    Direct(RouterSender),
}

impl Replies {
    fn send(&self, routing_id: Bytes, payload: Vec<u8>) {
        self.send_returning(routing_id, payload, None);
    }

    /// [`send`](Self::send), handing `leftovers` (if any) to the runtime's thread to drop once
    /// the reply is on its way: how a reply sent from another thread gives back what the
    /// runtime's thread allocated for its call.
    fn send_returning(
        &self,
        routing_id: Bytes,
        payload: Vec<u8>,
        leftovers: Option<Box<dyn Send>>,
    ) {
        match self {
            Replies::Outbox(queue) => {
                let _ = queue.send(Reply {
                    routing_id,
                    payload,
                    leftovers,
                });
            }
            Replies::Direct(sender) => {
                let Some(peer) = sender.peer(&routing_id) else {
                    tracing::debug!("dropping a reply to a parent that is gone");
                    return;
                };
                let size = payload.len();
                let held = peer.unwritten();
                if held > 0 && held + size > MAX_PEER_BACKLOG {
                    tracing::warn!(
                        held,
                        "dropping a reply of {size} bytes to a peer that does not read its replies"
                    );
                    return;
                }
                let sent = match leftovers {
                    Some(leftovers) => peer.send_returning(payload, leftovers),
                    None => peer.send(payload),
                };
                if let Err(reason) = sent {
                    tracing::warn!("could not send a reply: {reason}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_key_tells_every_routing_id_and_id_apart() {
        let uuid = "0b5d6c3e-2f7a-4d1c-9e8b-5a4f3c2d1e0f";
        let routing_id = [0, 0, 0, 0, 0, 0, 0, 0, 7];
        let key = CallKey::new(&routing_id, uuid.as_bytes());
        assert!(matches!(key, CallKey::Inline { .. }), "{key:?}");
        assert_eq!(key, CallKey::new(&routing_id, uuid.as_bytes()));
        // The same bytes split differently are another pair.
        assert_ne!(CallKey::new(b"ab", b"c"), CallKey::new(b"a", b"bc"));
        assert_ne!(CallKey::new(b"", b"x"), CallKey::new(b"x", b""));
        assert_ne!(key, CallKey::default());
        // Past the inline room, on the heap, told apart alike.
        let long = "i".repeat(200);
        let heap = CallKey::new(&routing_id, long.as_bytes());
        assert!(matches!(heap, CallKey::Heap(_)), "{heap:?}");
        assert_eq!(heap, CallKey::new(&routing_id, long.as_bytes()));
        assert_ne!(heap, CallKey::new(&routing_id, &long.as_bytes()[1..]));
        let mut running: HashMap<CallKey, u32, foldhash::fast::RandomState> = HashMap::default();
        running.insert(key.clone(), 1);
        running.insert(heap.clone(), 2);
        assert_eq!(
            running.get(&CallKey::new(&routing_id, uuid.as_bytes())),
            Some(&1)
        );
        assert_eq!(
            running.get(&CallKey::new(&routing_id, long.as_bytes())),
            Some(&2)
        );
        assert_eq!(running.get(&CallKey::new(&[1], uuid.as_bytes())), None);
    }
}
