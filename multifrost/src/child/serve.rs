//! Serving a [`Worker`]: the receive loop, signals, output forwarding, and running calls and
//! sending their replies. What to do with each message is decided by [`super::rules`].

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot, Notify};

use std::collections::{HashMap, VecDeque};

use super::output::{CapturedStdio, OutputLine, OUTPUT_BACKLOG};
use super::panic::CaughtPanic;
use super::rules::{check_reply, Decision, DispatchRules, Ignored};
use super::worker::{BlockingCall, CallError, IncomingCall, Worker};
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
    /// The calls running now, by parent and id, each with what cancels it.
    running: Mutex<HashMap<(Bytes, String), Cancel>>,
}

/// How a running call is cancelled.
enum Cancel {
    /// A call on a task of its own: dropping its dispatch, which ends it where it waits.
    Task(oneshot::Sender<()>),
    /// A sync method on the threads for sync methods, which runs to its end: its reply is not
    /// sent (whoever sets `answered` first answers), and its context says it was cancelled.
    Blocking {
        answered: Arc<AtomicBool>,
        cancelled: Arc<AtomicBool>,
    },
}

impl Cancel {
    fn cancel(self) {
        match self {
            Cancel::Task(cancel) => {
                let _ = cancel.send(());
            }
            Cancel::Blocking {
                answered,
                cancelled,
            } => {
                answered.store(true, Ordering::Release);
                cancelled.store(true, Ordering::Relaxed);
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
            running: Mutex::new(HashMap::new()),
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
        loop {
            tokio::select! {
                (routing_id, payload) = router.recv() => {
                    self.handle_message(routing_id, payload, &replies, current_thread)
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
        loop {
            tokio::select! {
                biased;
                reply = replies.recv() => {
                    let mut batch: Vec<_> = reply.into_iter().collect();
                    while let Ok(more) = replies.try_recv() {
                        batch.push(more);
                    }
                    output.drain(&mut lines);
                    self.send_lines(&mut lines, &mut dropped, &sender).await;
                    if batch.is_empty() {
                        return; // Serving stopped: all is sent.
                    }
                    for Reply { routing_id, payload, leftovers } in batch {
                        // A parent that does not read holds up this queue, and with it the
                        // output pipes, and so the worker's prints: nothing piles up here.
                        let Some(parent) = sender.peer(&routing_id) else {
                            tracing::debug!("dropping a reply to a parent that is gone");
                            continue;
                        };
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

    fn handle_message(
        self: &Arc<Self>,
        routing_id: Bytes,
        payload: Bytes,
        replies: &Replies,
        current_thread: bool,
    ) {
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
                self.remember_parent(&routing_id);
                self.run_call(routing_id, call, replies, current_thread);
            }
            Decision::Cancel(id) => {
                let cancel = self
                    .running
                    .lock()
                    .expect("running lock")
                    .remove(&(routing_id, id));
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
    /// A call to a sync method without a deadline is run by its job on the threads for sync
    /// methods, which answers it from there (see [`Server::run_blocking_call`]).
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
        let cancelled = call.context.cancel_flag();
        let deadline = call.context.deadline();
        let debug = tracing::enabled!(tracing::Level::DEBUG);
        let answer = Answer {
            routing_id,
            id: call.context.id.clone(),
            correlation_id: debug
                .then(|| call.context.correlation_id().map(str::to_owned))
                .flatten(),
            // Read only for the log lines and the message of a call abandoned at its deadline.
            started: (debug || deadline.is_some()).then(std::time::Instant::now),
        };
        tracing::debug!(
            function = call.function.as_str(),
            correlation_id = answer.correlation_id.as_deref(),
            "call received"
        );
        // A call with a deadline needs a timer to be abandoned at it: it goes the way below.
        if deadline.is_none() {
            if let Some(job) = self.worker.dispatch_blocking(&call.function) {
                self.run_blocking_call(job, call, answer, cancelled, replies);
                return;
            }
        }
        let function = call.function.clone();
        // The location is taken in the poll that caught the panic, on its thread.
        let mut dispatch = AssertUnwindSafe(self.worker.clone().dispatch(call))
            .catch_unwind()
            .map(|outcome| outcome.map_err(CaughtPanic::take));
        if current_thread {
            let mut context = std::task::Context::from_waker(futures_util::task::noop_waker_ref());
            if let std::task::Poll::Ready(outcome) = dispatch.poll_unpin(&mut context) {
                let payload = answer.reply(outcome, &function, self.wide_integers);
                replies.send(answer.routing_id, payload);
                return;
            }
        }
        let key = (answer.routing_id.clone(), answer.id.clone());
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
                    cancelled.store(true, std::sync::atomic::Ordering::Relaxed);
                    tracing::debug!(function, correlation_id, "call abandoned at its deadline");
                    server.running.lock().expect("running lock").remove(&key);
                    let message = format!(
                        "{function}: abandoned: its deadline passed after {:.3} s (metadata.deadline)",
                        answer.started.map_or(0.0, |started| started.elapsed().as_secs_f64())
                    );
                    replies.send(answer.routing_id, encode_error(&answer.id, &message));
                    return;
                }
            };
            let Some(outcome) = outcome else {
                // Cancelled by the parent, which waits for no reply.
                cancelled.store(true, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(function, correlation_id, "call cancelled by the parent");
                return;
            };
            server.running.lock().expect("running lock").remove(&key);
            let payload = answer.reply(outcome, &function, server.wide_integers);
            replies.send(answer.routing_id, payload);
        });
    }
}

/// Where a call's answer goes, and what its log lines say.
struct Answer {
    routing_id: Bytes,
    id: String,
    correlation_id: Option<String>,
    /// When the call arrived, if anything will ask (see `run_call`).
    started: Option<std::time::Instant>,
}

impl Answer {
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
    /// Runs a sync method's job on the threads for sync methods, which sends its reply from
    /// there: no task, no channel back to the runtime, no hop through its scheduler (on the
    /// outbox, replies finished together wake the runtime once). A parent's cancel still
    /// stops the reply (see [`Cancel::Blocking`]).
    fn run_blocking_call(
        self: &Arc<Self>,
        job: BlockingCall<W>,
        call: IncomingCall,
        answer: Answer,
        cancelled: Arc<AtomicBool>,
        replies: &Replies,
    ) {
        let answered = Arc::new(AtomicBool::new(false));
        let key = (answer.routing_id.clone(), answer.id.clone());
        self.running.lock().expect("running lock").insert(
            key,
            Cancel::Blocking {
                answered: answered.clone(),
                cancelled,
            },
        );
        super::blocking::pool().submit(Box::new(SyncCall {
            server: self.clone(),
            job,
            call,
            answer,
            answered,
            replies: replies.clone(),
        }));
    }
}

/// A call to a sync method, as the threads for sync methods run it. Everything in it was made
/// by the runtime's thread, and goes back there with the reply to be dropped (see
/// [`Replies::send_returning`]): memory freed on another thread than the one that allocated
/// it takes a lock of glibc's allocator, which the runtime's thread, allocating for the next
/// calls, held often enough that the two threads woke each other through the kernel about once
/// a call (bench/PROFILE.md).
struct SyncCall<W: Worker> {
    server: Arc<Server<W>>,
    job: BlockingCall<W>,
    call: IncomingCall,
    answer: Answer,
    /// Set by whichever comes first, the reply or the parent's cancel.
    answered: Arc<AtomicBool>,
    replies: Replies,
}

impl<W: Worker> Drop for SyncCall<W> {
    /// Takes the call's entry out of `running`, on the runtime's thread like the rest (the
    /// table stays in its cache). Until then a cancel finds the call answered and does nothing.
    fn drop(&mut self) {
        let key = (
            std::mem::take(&mut self.answer.routing_id),
            std::mem::take(&mut self.answer.id),
        );
        let mut running = self.server.running.lock().expect("running lock");
        if let std::collections::hash_map::Entry::Occupied(entry) = running.entry(key) {
            // Only its own: a peer may have sent another call with the same id since.
            if matches!(entry.get(), Cancel::Blocking { answered, .. } if Arc::ptr_eq(answered, &self.answered))
            {
                entry.remove();
            }
        }
    }
}

impl<W: Worker> super::blocking::Run for SyncCall<W> {
    fn run(self: Box<Self>) {
        let function = self.job.function;
        // The location is taken by the panic hook, on this thread.
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            (self.job.run)(&self.server.worker, &self.call)
        }))
        .map_err(CaughtPanic::take);
        if self.answered.load(Ordering::Acquire) {
            // Cancelled (the cancel took its entry out of `running`): its reply would not be
            // sent, so it is not built either. (Dropped here, on this thread: a rare case.)
            let correlation_id = self.answer.correlation_id.as_deref();
            tracing::debug!(function, correlation_id, "call cancelled by the parent");
            return;
        }
        let payload = self
            .answer
            .reply(outcome, function, self.server.wide_integers);
        if !self.answered.swap(true, Ordering::AcqRel) {
            let replies = self.replies.clone();
            replies.send_returning(self.answer.routing_id.clone(), payload, Some(self));
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
