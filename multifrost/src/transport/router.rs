//! A child's ROUTER: the parents connected to it, each over its own ZMTP connection
//! ([`zmtp`]), known by a routing id this end gives it.
//!
//! In spawn mode the child connects to its parent's port: one peer. In connect mode it listens
//! and takes every parent that connects. Each connection's messages are read by a task of its
//! own and handed to [`Router::recv_many`] through one bounded queue, so a parent that sends faster
//! than the child serves waits in its socket, not in this process's memory. A reply goes
//! straight into its parent's outbox (no task, no wait).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::task::AbortHandle;

use super::zmtp::{self, Role};

/// How many received messages wait for the serve loop, over all peers, before their readers
/// stop reading.
const RECEIVED_QUEUE: usize = 1024;
/// How long a connection may take to finish its handshake: a process that connects and says
/// nothing holds no more than its socket, for no longer than this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many connections may be in their handshake at once; the next ones wait in the
/// listener's backlog.
const MAX_HANDSHAKES: usize = 64;
/// How long the listener waits after a failed accept (out of descriptors, say) before it tries
/// again: the connection it could not take is still there, and trying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The connected peers, by routing id.
#[derive(Default)]
struct Peers {
    senders: Mutex<HashMap<Bytes, Arc<zmtp::Sender>>>,
    next_id: AtomicU64,
    /// Set by `close` and drop: a handshake that ends later is not added.
    closed: AtomicBool,
    /// The listener's task and each peer's reader.
    tasks: Mutex<Vec<AbortHandle>>,
    /// Each peer's writer, which ends once its sender is dropped and what it holds is written.
    writers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Told whenever a peer leaves.
    left: Notify,
}

impl Peers {
    /// Takes a connection that shook hands: gives it a routing id (a zero byte and a counter,
    /// as libzmq does), starts its reader and writer.
    fn add(self: &Arc<Self>, peer: zmtp::Peer, received: mpsc::Sender<(Bytes, Bytes)>) {
        if self.closed.load(Ordering::Acquire) {
            return; // dropped: the router is closed
        }
        let number = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut id = vec![0u8];
        id.extend_from_slice(&number.to_be_bytes());
        let id = Bytes::from(id);
        let zmtp::Peer {
            sender,
            mut receiver,
            writer,
            gone,
        } = peer;
        self.senders
            .lock()
            .expect("peers lock")
            .insert(id.clone(), Arc::new(sender));
        let writer = tokio::spawn(writer.run());
        let peers = self.clone();
        let reader = tokio::spawn(async move {
            while let Some(payload) = receiver.recv().await {
                if received.send((id.clone(), payload)).await.is_err() {
                    break; // nobody serves any more
                }
            }
            let reason = gone.borrow().clone();
            tracing::debug!(routing_id = ?id, reason = reason.as_deref(), "a parent's connection ended");
            peers.senders.lock().expect("peers lock").remove(&id);
            peers.left.notify_waiters();
        });
        self.track(reader.abort_handle());
        let mut writers = self.writers.lock().expect("peers lock");
        writers.retain(|writer| !writer.is_finished());
        writers.push(writer);
    }

    /// Keeps `task` to be stopped with the router (and forgets those that ended).
    fn track(&self, task: AbortHandle) {
        let mut tasks = self.tasks.lock().expect("peers lock");
        tasks.retain(|task| !task.is_finished());
        tasks.push(task);
    }

    /// Stops listening, handshakes and reading, and lets the peers' senders go: a writer then
    /// ends once it has written what it holds.
    fn stop(&self) {
        self.closed.store(true, Ordering::Release);
        for task in self.tasks.lock().expect("peers lock").drain(..) {
            task.abort();
        }
        self.senders.lock().expect("peers lock").clear();
    }
}

/// Shakes hands as a ROUTER on `stream`, within [`HANDSHAKE_TIMEOUT`].
async fn shake(stream: TcpStream) -> Result<zmtp::Peer, String> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, zmtp::handshake(stream, Role::Router))
        .await
        .map_err(|_| format!("no ZMTP handshake within {HANDSHAKE_TIMEOUT:?}"))?
}

/// Sends to the router's peers; cheap to clone, usable from any thread.
#[derive(Clone)]
pub(crate) struct RouterSender {
    peers: Arc<Peers>,
}

impl RouterSender {
    /// The peer with this routing id, while it is connected.
    pub fn peer(&self, routing_id: &[u8]) -> Option<Arc<zmtp::Sender>> {
        self.peers
            .senders
            .lock()
            .expect("peers lock")
            .get(routing_id)
            .cloned()
    }

    /// Waits until no peer is connected (at once if none is).
    pub async fn until_alone(&self) {
        loop {
            let left = self.peers.left.notified();
            if self.peers.senders.lock().expect("peers lock").is_empty() {
                return;
            }
            left.await;
        }
    }
}

/// A child's ROUTER.
pub(crate) struct Router {
    peers: Arc<Peers>,
    received: mpsc::Receiver<(Bytes, Bytes)>,
    /// Kept so that `recv_many` never ends while the router listens or has a peer.
    _keep: mpsc::Sender<(Bytes, Bytes)>,
}

impl Router {
    fn new() -> (Router, mpsc::Sender<(Bytes, Bytes)>) {
        let (sender, received) = mpsc::channel(RECEIVED_QUEUE);
        let router = Router {
            peers: Arc::default(),
            received,
            _keep: sender.clone(),
        };
        (router, sender)
    }

    /// Spawn mode: connects to the parent at 127.0.0.1:`port`.
    pub async fn connect(port: u16) -> Result<Router, String> {
        let (router, received) = Router::new();
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|err| err.to_string())?;
        let peer = shake(stream).await?;
        router.peers.add(peer, received);
        Ok(router)
    }

    /// Connect mode: listens on `address:port` and takes every parent that connects and
    /// shakes hands.
    pub async fn bind(address: std::net::IpAddr, port: u16) -> Result<Router, String> {
        let (router, received) = Router::new();
        let listener = TcpListener::bind((address, port))
            .await
            .map_err(|err| err.to_string())?;
        let peers = router.peers.clone();
        let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        let accepting = tokio::spawn(async move {
            loop {
                let Ok(permit) = handshakes.clone().acquire_owned().await else {
                    return;
                };
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        // Out of descriptors, say: the next accept may work, later.
                        tracing::warn!("accepting a connection failed: {err}");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                let received = received.clone();
                let adding = peers.clone();
                let shaking = tokio::spawn(async move {
                    let _permit = permit;
                    let peers = adding;
                    match shake(stream).await {
                        Ok(peer) => peers.add(peer, received),
                        Err(reason) => tracing::warn!("refused a connection: {reason}"),
                    }
                });
                peers.track(shaking.abort_handle());
            }
        });
        router.peers.track(accepting.abort_handle());
        Ok(router)
    }

    /// Waits for the next message from any peer, then appends it and those that came after it
    /// (up to `limit` in all) to `messages`: each a routing id and a payload.
    pub async fn recv_many(&mut self, messages: &mut Vec<(Bytes, Bytes)>, limit: usize) {
        self.received.recv_many(messages, limit).await;
    }

    pub fn sender(&self) -> RouterSender {
        RouterSender {
            peers: self.peers.clone(),
        }
    }

    /// Stops listening and reading, and gives every peer's writer up to `within` to write
    /// what it holds; a writer still at it then is stopped.
    pub async fn close(self, within: Duration) {
        self.peers.stop();
        let mut writers = std::mem::take(&mut *self.peers.writers.lock().expect("peers lock"));
        let flushed = tokio::time::timeout(within, async {
            for writer in &mut writers {
                let _ = writer.await;
            }
        })
        .await;
        if flushed.is_err() {
            // A peer that does not read: what it would not take is dropped with it.
            for writer in writers {
                writer.abort();
            }
        }
    }
}

impl Drop for Router {
    /// Stops listening and ends every connection.
    fn drop(&mut self) {
        self.peers.stop();
        for writer in self.peers.writers.lock().expect("peers lock").drain(..) {
            writer.abort();
        }
    }
}
