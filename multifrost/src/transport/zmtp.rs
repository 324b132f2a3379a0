//! One ZMTP 3.0 connection over a TCP stream, with the NULL mechanism (ZeroMQ RFC 23), as a
//! parent's DEALER or as one peer of a child's ROUTER: written here rather than taken from the
//! zeromq crate.
//!
//! A parent has exactly one peer, its worker's ROUTER, and a child answers each parent on the
//! connection its call came on, so neither needs a socket's machinery for many peers: no fair
//! queue to receive from, no round robin to send to. Through the zeromq crate each message
//! cost a hashed fair-queue poll, a queue node, two boxed `async_trait` futures and a frame
//! queue, about a third of the parent's instructions per call (bench/PROFILE.md, eighth round).
//!
//! What goes over the wire is what the zeromq crate sends (libzmq 4.2 and later greet as 3.1
//! and then speak 3.0 to a 3.0 peer): the 64-byte greeting (version 3.0, `NULL`, not as
//! server), a `READY` command with our `Socket-Type` and no `Identity`, then messages of two frames, `[empty, payload]`, both ways (a ROUTER takes the
//! routing id off before it writes). Of what comes in, the last frame of each message is its
//! payload; a `PING` command gets its `PONG`, an `ERROR` command ends the connection, and
//! other commands are ignored.
//!
//! Sending never waits: a message is appended to the connection's outbox. The first message
//! since the writer task last ran, and any that makes 8 KiB wait, are written at once, as far
//! as the socket takes them; the rest is written by the connection's writer task, many
//! messages per write when calls come faster than one task switch. The outbox has no limit of
//! its own: a parent's in-flight budget bounds what its calls put in it; a child drops replies
//! to a peer whose outbox holds too much, or waits for room ([`Sender::room`]) before it sends
//! output; a `PING` gets no `PONG` while 64 KiB wait.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};

const MORE: u8 = 0x01;
const LONG: u8 = 0x02;
const COMMAND: u8 = 0x04;

/// A payload at least this long is queued as it is, not copied into the outbox's buffer.
const OWN_CHUNK: usize = 16 * 1024;
/// The largest command frame read (a `READY` with its properties, a `PING`).
const MAX_COMMAND: usize = 64 * 1024;
/// How much may wait to be written before a `PING` goes unanswered.
const PONG_ROOM: usize = 64 * 1024;
/// Once this much waits to be written, the sender writes it.
const FLUSH_AT: usize = 8 * 1024;
/// What the receive buffer grows by for small messages, and what the writer's buffer is
/// brought back to after a burst.
const READ_CHUNK: usize = 64 * 1024;
/// The most a frame's buffer grows by at once; past it, it doubles as the bytes arrive, so an
/// announced size costs nothing until it is sent.
const GROW_AT_ONCE: usize = 16 * 1024 * 1024;
/// The largest frame read: a message of 4 GiB or more is refused as too large by any limit
/// (see `RawMessage::parse`), so a peer that announces more is broken, not large.
const MAX_FRAME: u64 = u32::MAX as u64;

/// The greeting: signature, version 3.0, the NULL mechanism, not as server, filler.
fn greeting() -> [u8; 64] {
    let mut greeting = [0u8; 64];
    greeting[0] = 0xff;
    greeting[9] = 0x7f;
    greeting[10] = 3;
    greeting[11] = 0;
    greeting[12..16].copy_from_slice(b"NULL");
    greeting
}

/// A command frame of `name` and `body`, short (all of ours are).
fn command(name: &[u8], body: &[u8]) -> Vec<u8> {
    let len = 1 + name.len() + body.len();
    debug_assert!(len <= 255);
    let mut frame = Vec::with_capacity(2 + len);
    frame.extend_from_slice(&[COMMAND, len as u8, name.len() as u8]);
    frame.extend_from_slice(name);
    frame.extend_from_slice(body);
    frame
}

/// The two ends this crate speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// A parent's end: its peer must be a ROUTER (or a DEALER).
    Dealer,
    /// A child's end of one parent's connection: its peer must be a DEALER (or a ROUTER).
    Router,
}

impl Role {
    fn socket_type(self) -> &'static [u8] {
        match self {
            Role::Dealer => b"DEALER",
            Role::Router => b"ROUTER",
        }
    }

    /// What the peer must be, as the error says it.
    fn wanted(self) -> &'static str {
        match self {
            Role::Dealer => "ROUTER",
            Role::Router => "DEALER",
        }
    }
}

/// `READY` with our `Socket-Type`.
fn ready(role: Role) -> Vec<u8> {
    let socket_type = role.socket_type();
    let mut body = Vec::with_capacity(32);
    body.push(11);
    body.extend_from_slice(b"Socket-Type");
    body.extend_from_slice(&(socket_type.len() as u32).to_be_bytes());
    body.extend_from_slice(socket_type);
    command(b"READY", &body)
}

/// A command frame's name and what follows it, if its name fits in the frame.
fn split_command(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&name_len, rest) = body.split_first()?;
    rest.split_at_checked(name_len as usize)
}

/// The reason an `ERROR` command gives (what follows its name: a length byte, then the text),
/// as the connection's end says it.
fn peer_error(rest: &[u8]) -> String {
    let reason = rest.get(1..).unwrap_or_default();
    format!("the peer sent ERROR: {}", String::from_utf8_lossy(reason))
}

/// The value of the property `wanted` (its name compared without case) in a `READY` body
/// after the command's name.
fn property<'a>(mut body: &'a [u8], wanted: &[u8]) -> Result<Option<&'a [u8]>, String> {
    while let Some((&name_len, rest)) = body.split_first() {
        let name_len = name_len as usize;
        if rest.len() < name_len + 4 {
            return Err("a READY property runs past its command".into());
        }
        let (name, rest) = rest.split_at(name_len);
        let (value_len, rest) = rest.split_at(4);
        let value_len = u32::from_be_bytes(value_len.try_into().expect("4 bytes")) as usize;
        if rest.len() < value_len {
            return Err("a READY property's value runs past its command".into());
        }
        let (value, rest) = rest.split_at(value_len);
        if name.eq_ignore_ascii_case(wanted) {
            return Ok(Some(value));
        }
        body = rest;
    }
    Ok(None)
}

/// A frame's header at the start of `buf`: (flags, header length, body length), or `None`
/// until it is all there.
fn frame_header(buf: &[u8]) -> Result<Option<(u8, usize, usize)>, String> {
    let Some(&flags) = buf.first() else {
        return Ok(None);
    };
    if flags & !(MORE | LONG | COMMAND) != 0 {
        return Err(format!("a frame with reserved flags set ({flags:#04x})"));
    }
    if flags & LONG == 0 {
        return Ok(buf.get(1).map(|&len| (flags, 2, len as usize)));
    }
    let Some(len) = buf.get(1..9) else {
        return Ok(None);
    };
    let len = u64::from_be_bytes(len.try_into().expect("8 bytes"));
    if len > MAX_FRAME {
        return Err(format!(
            "a frame announcing {len} bytes, more than any message can be"
        ));
    }
    Ok(Some((flags, 9, len as usize)))
}

/// Why a connection ended, once it did.
pub(crate) type Gone = watch::Receiver<Option<Arc<str>>>;

/// What one connection shares between its sender, its receiver and its
/// writer task.
struct Shared {
    outbox: Mutex<Outbox>,
    /// Written to only with the outbox locked, so that writes never interleave. `None` for a
    /// sender of no connection.
    write: Option<OwnedWriteHalf>,
    /// Tells the writer task that the outbox has something, or that the sender is gone.
    wake: Notify,
    /// Told by the writer task whenever it wrote something (see [`Sender::room`]).
    drained: Notify,
    gone: watch::Sender<Option<Arc<str>>>,
}

impl Shared {
    fn new(write: Option<OwnedWriteHalf>) -> (Arc<Shared>, Gone) {
        let (gone_sender, gone) = watch::channel(None);
        let shared = Arc::new(Shared {
            outbox: Mutex::default(),
            write,
            wake: Notify::new(),
            drained: Notify::new(),
            gone: gone_sender,
        });
        (shared, gone)
    }

    /// Records that the connection ended, and why (the first reason stays).
    fn end(&self, reason: impl Into<Arc<str>>) {
        let reason = reason.into();
        self.gone.send_if_modified(|gone| {
            if gone.is_some() {
                return false;
            }
            *gone = Some(reason);
            true
        });
        self.outbox.lock().expect("outbox lock").ended = true;
        self.wake.notify_one();
        self.drained.notify_waiters();
    }

    fn unwritten(&self) -> usize {
        let outbox = self.outbox.lock().expect("outbox lock");
        outbox.waiting + outbox.tail.len() - outbox.written
    }

    fn reason(&self) -> Arc<str> {
        self.gone
            .borrow()
            .clone()
            .unwrap_or_else(|| "the connection closed".into())
    }

    /// Queues one frame header and body. The first since the writer task last ran, and any
    /// that makes `FLUSH_AT` bytes wait, are written at once, as far as the socket takes them;
    /// the rest waits for the writer task, which the first wakes (it runs once the tasks ready
    /// before it have run: many messages go in one write).
    fn queue(
        &self,
        header: &[u8],
        body: Vec<u8>,
        leftovers: Option<Box<dyn Send>>,
    ) -> Result<(), Arc<str>> {
        let mut outbox = self.outbox.lock().expect("outbox lock");
        if outbox.ended {
            drop(outbox);
            return Err(self.reason());
        }
        if let Some(leftovers) = leftovers {
            outbox.leftovers.push(leftovers);
        }
        outbox.tail.extend_from_slice(header);
        if body.len() < OWN_CHUNK {
            outbox.tail.extend_from_slice(&body);
        } else {
            let before = std::mem::take(&mut outbox.tail);
            outbox.waiting += before.len() + body.len();
            outbox.chunks.push_back(before);
            outbox.chunks.push_back(body);
        }
        // The first message since the writer last ran goes at once (a lone call waits for no
        // task); the ones after it wait for the writer, or for `FLUSH_AT` bytes.
        let first = !outbox.scheduled;
        if !outbox.blocked && (first || outbox.waiting + outbox.tail.len() >= FLUSH_AT) {
            if let Some(write) = &self.write {
                match outbox.flush(write) {
                    // The writer drops what the senders left, on its thread.
                    Ok(true) if !first && outbox.leftovers.is_empty() => return Ok(()),
                    Ok(true) => {}
                    Ok(false) => outbox.blocked = true,
                    Err(err) => {
                        drop(outbox);
                        self.end(format!("writing to the connection failed: {err}"));
                        return Ok(()); // As if written: the connection's end fails the call.
                    }
                }
            }
        }
        // Past the writer's last run (`first`), nobody has woken it yet.
        outbox.scheduled = true;
        drop(outbox);
        if first {
            self.wake.notify_one();
        }
        Ok(())
    }
}

/// Bytes not yet written, in order: `chunks`, then `tail`.
#[derive(Default)]
struct Outbox {
    chunks: VecDeque<Vec<u8>>,
    /// How many bytes `chunks` hold, the written start of the first one included.
    waiting: usize,
    tail: Vec<u8>,
    /// How many bytes of the first chunk (or of `tail` when there is none) are written.
    written: usize,
    /// The writer was woken and has not yet found the outbox empty.
    scheduled: bool,
    /// The socket took less than it was given: only the writer task writes, once it can.
    blocked: bool,
    /// Nothing more is sent: the connection ended, or the sender was dropped.
    ended: bool,
    /// What senders on other threads hand back, for the writer task to drop on its own
    /// thread (see [`Sender::send_returning`]).
    leftovers: Vec<Box<dyn Send>>,
}

impl Outbox {
    /// Writes what the socket takes without waiting: `Ok(true)` when all of it went.
    fn flush(&mut self, write: &OwnedWriteHalf) -> std::io::Result<bool> {
        loop {
            let front = match self.chunks.front() {
                Some(chunk) => chunk,
                None if self.tail.is_empty() => return Ok(true),
                None => &self.tail,
            };
            if self.written == front.len() {
                if self.chunks.pop_front().is_some() {
                    self.waiting -= self.written;
                } else if self.tail.capacity() > 16 * READ_CHUNK {
                    self.tail = Vec::new(); // after a burst
                } else {
                    self.tail.clear();
                }
                self.written = 0;
                continue;
            }
            match write.try_write(&front[self.written..]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }
}

/// Sends messages to the peer. Dropping it lets the writer finish what is queued.
pub(crate) struct Sender {
    shared: Arc<Shared>,
}

impl Sender {
    /// Queues the message `[empty, payload]`. Fails only once the connection has ended, with
    /// its reason.
    pub fn send(&self, payload: Vec<u8>) -> Result<(), Arc<str>> {
        self.queue_message(payload, None)
    }

    /// [`send`](Self::send), handing `leftovers` to the writer task to drop once the message
    /// is on its way: how a message sent from another thread gives back what the runtime's
    /// thread allocated for it.
    pub fn send_returning(
        &self,
        payload: Vec<u8>,
        leftovers: Box<dyn Send>,
    ) -> Result<(), Arc<str>> {
        self.queue_message(payload, Some(leftovers))
    }

    /// How many bytes wait to be written.
    pub fn unwritten(&self) -> usize {
        self.shared.unwritten()
    }

    /// Waits until fewer than `limit` bytes wait to be written (at once if they do), or the
    /// connection ended.
    pub async fn room(&self, limit: usize) {
        while self.shared.unwritten() >= limit {
            let drained = self.shared.drained.notified();
            if self.shared.unwritten() < limit || self.shared.gone.borrow().is_some() {
                return;
            }
            drained.await;
        }
    }

    /// Ends the connection now: what waits is not written, the socket is shut both ways (the
    /// peer sees it end, this end's reader too), and every later send fails.
    pub fn close(&self, reason: &str) {
        self.shared.end(reason);
        if let Some(write) = &self.shared.write {
            use std::os::fd::AsRawFd;
            let stream: &TcpStream = write.as_ref();
            // SAFETY: the descriptor is the stream's own and open as long as `write` lives;
            // shutdown only changes the connection's state.
            unsafe { libc::shutdown(stream.as_raw_fd(), libc::SHUT_RDWR) };
        }
    }

    fn queue_message(
        &self,
        payload: Vec<u8>,
        leftovers: Option<Box<dyn Send>>,
    ) -> Result<(), Arc<str>> {
        let len = payload.len();
        let mut header = [0u8; 11];
        header[0] = MORE; // the empty delimiter, then the payload's frame
        let header = if len <= 255 {
            header[3] = len as u8;
            &header[..4]
        } else {
            header[2] = LONG;
            header[3..11].copy_from_slice(&(len as u64).to_be_bytes());
            &header[..]
        };
        self.shared.queue(header, payload, leftovers)
    }

    /// A sender of no connection: every send fails. For tests of what surrounds a connection.
    #[cfg(test)]
    pub fn unconnected() -> Sender {
        let (shared, _) = Shared::new(None);
        shared.end("not connected");
        Sender { shared }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.shared.outbox.lock().expect("outbox lock").ended = true;
        self.shared.wake.notify_one();
    }
}

/// Receives the peer's messages.
pub(crate) struct Receiver {
    read: OwnedReadHalf,
    buf: BytesMut,
    shared: Arc<Shared>,
}

impl Receiver {
    /// The payload of the next message (its last frame), or `None` once the connection ended
    /// (its [`Gone`] then says why).
    pub async fn recv(&mut self) -> Option<Bytes> {
        match self.next_message().await {
            Ok(payload) => Some(payload),
            Err(reason) => {
                self.shared.end(reason);
                None
            }
        }
    }

    async fn next_message(&mut self) -> Result<Bytes, String> {
        loop {
            let (flags, body) = self.next_frame().await?;
            if flags & COMMAND != 0 {
                self.command(&body)?;
            } else if flags & MORE == 0 {
                return Ok(body.freeze());
            }
        }
    }

    /// The next frame: its flags and body.
    async fn next_frame(&mut self) -> Result<(u8, BytesMut), String> {
        loop {
            let needed = match frame_header(&self.buf)? {
                Some((flags, _, body)) if flags & COMMAND != 0 && body > MAX_COMMAND => {
                    return Err(format!(
                        "a command frame of {body} bytes (commands are small: at most {MAX_COMMAND})"
                    ));
                }
                Some((flags, header, body)) if self.buf.len() >= header + body => {
                    self.buf.advance(header);
                    let frame = self.buf.split_to(body);
                    if body > READ_CHUNK && self.buf.len() < READ_CHUNK {
                        // The rest of the read moves to a buffer of the usual size, so that
                        // a large frame's memory goes once the frame does.
                        let mut rest = BytesMut::with_capacity(READ_CHUNK);
                        rest.extend_from_slice(&self.buf);
                        self.buf = rest;
                    }
                    return Ok((flags, frame));
                }
                Some((_, header, body)) => header + body,
                None if self.buf.first().is_some_and(|flags| flags & LONG != 0) => 9,
                None => 2,
            };
            self.fill(needed).await?;
        }
    }

    /// Reads until `buf` holds at least `needed` bytes, or more.
    async fn fill(&mut self, needed: usize) -> Result<(), String> {
        while self.buf.len() < needed {
            let missing = needed - self.buf.len();
            let grow = missing.clamp(READ_CHUNK, GROW_AT_ONCE.max(self.buf.len()));
            let spare = self.buf.capacity() - self.buf.len();
            if spare < missing || spare < 4096 {
                self.buf.reserve(grow);
            }
            match self.read.read_buf(&mut self.buf).await {
                Ok(0) if self.buf.is_empty() => return Err("the peer closed the connection".into()),
                Ok(0) => {
                    return Err(format!(
                    "the peer closed the connection in the middle of a frame ({} bytes of it came)",
                    self.buf.len()
                ))
                }
                Ok(_) => {}
                Err(err) => return Err(format!("reading from the connection failed: {err}")),
            }
        }
        Ok(())
    }

    /// A command after the handshake: `PING` is answered, `ERROR` ends the connection.
    fn command(&self, body: &[u8]) -> Result<(), String> {
        let Some((name, rest)) = split_command(body) else {
            return Err(if body.is_empty() {
                "an empty command frame".into()
            } else {
                "a command whose name runs past its frame".into()
            });
        };
        match name {
            b"PING" => {
                // A 16-bit TTL, then up to 16 bytes of context that the PONG carries back.
                let context = rest.get(2..).unwrap_or_default();
                let context = &context[..context.len().min(16)];
                // A peer that pings and does not read gets no more PONGs once a few wait:
                // what it sends cannot make this end hold more than that.
                if self.shared.unwritten() < PONG_ROOM {
                    let pong = command(b"PONG", context);
                    // An ended connection needs no PONG.
                    let _ = self.shared.queue(&pong, Vec::new(), None);
                }
                Ok(())
            }
            b"ERROR" => Err(peer_error(rest)),
            _ => Ok(()),
        }
    }
}

/// The parts of a connection after its handshake.
pub(crate) struct Peer {
    pub sender: Sender,
    pub receiver: Receiver,
    /// The task that writes what `sender` queues and could not write at once: the caller
    /// spawns it.
    pub writer: WriteLoop,
    pub gone: Gone,
}

/// The writer of a connection, to be spawned.
pub(crate) struct WriteLoop {
    shared: Arc<Shared>,
}

impl WriteLoop {
    /// Writes the outbox out whenever it is woken, waiting for the socket when it is full,
    /// until the sender is dropped or the stream fails.
    pub async fn run(self) {
        let shared = self.shared;
        let Some(write) = &shared.write else {
            return;
        };
        let mut leftovers = Vec::new();
        loop {
            let flushed = {
                let mut outbox = shared.outbox.lock().expect("outbox lock");
                std::mem::swap(&mut leftovers, &mut outbox.leftovers);
                match outbox.flush(write) {
                    Ok(true) => {
                        outbox.scheduled = false;
                        outbox.blocked = false;
                        if outbox.ended {
                            return;
                        }
                        Ok(true)
                    }
                    Ok(false) => {
                        outbox.blocked = true;
                        Ok(false)
                    }
                    Err(err) => Err(err),
                }
            };
            leftovers.clear(); // dropped here, on the writer's thread, outside the lock
            shared.drained.notify_waiters();
            let waited = match flushed {
                Ok(true) => {
                    shared.wake.notified().await;
                    Ok(())
                }
                Ok(false) => write.writable().await,
                Err(err) => Err(err),
            };
            if let Err(err) = waited {
                shared.end(format!("writing to the connection failed: {err}"));
                return;
            }
        }
    }
}

/// Greets the peer on `stream` as `role` and waits for its greeting and `READY`, which must
/// announce a socket that `role` talks to (ROUTER and DEALER talk to either). The error says
/// what went wrong.
pub(crate) async fn handshake(mut stream: TcpStream, role: Role) -> Result<Peer, String> {
    stream
        .set_nodelay(true)
        .map_err(|err| format!("cannot set TCP_NODELAY: {err}"))?;
    let io = |err: std::io::Error| format!("the ZMTP handshake failed: {err}");
    stream.write_all(&greeting()).await.map_err(io)?;
    let mut theirs = [0u8; 64];
    stream.read_exact(&mut theirs).await.map_err(io)?;
    if theirs[0] != 0xff || theirs[9] & 0x01 == 0 {
        return Err("the peer does not speak ZMTP 3 (no ZMTP signature)".into());
    }
    if theirs[10] < 3 {
        return Err(format!(
            "the peer speaks ZMTP {}.{}, not 3",
            theirs[10], theirs[11]
        ));
    }
    let mechanism = &theirs[12..32];
    let mechanism = &mechanism[..mechanism.iter().position(|&b| b == 0).unwrap_or(20)];
    if mechanism != b"NULL" {
        return Err(format!(
            "the peer asks for the {} security mechanism; only NULL is spoken",
            String::from_utf8_lossy(mechanism)
        ));
    }
    stream.write_all(&ready(role)).await.map_err(io)?;

    let (read, write) = stream.into_split();
    let (shared, gone) = Shared::new(Some(write));
    let mut receiver = Receiver {
        read,
        buf: BytesMut::with_capacity(READ_CHUNK),
        shared: shared.clone(),
    };
    let (flags, body) = receiver.next_frame().await?;
    if flags & COMMAND == 0 {
        return Err("the peer sent a message before its READY".into());
    }
    let rest = match split_command(&body) {
        Some((b"READY", rest)) => rest,
        Some((b"ERROR", rest)) => return Err(peer_error(rest)),
        _ => {
            return Err(format!(
                "the peer's first command is not READY: {:?}",
                String::from_utf8_lossy(&body[..body.len().min(32)])
            ))
        }
    };
    let socket_type =
        property(rest, b"Socket-Type")?.ok_or("the peer's READY names no Socket-Type")?;
    if socket_type != b"ROUTER" && socket_type != b"DEALER" {
        return Err(format!(
            "the peer is a {} socket, not a {}",
            String::from_utf8_lossy(socket_type),
            role.wanted()
        ));
    }
    Ok(Peer {
        sender: Sender {
            shared: shared.clone(),
        },
        receiver,
        writer: WriteLoop { shared },
        gone,
    })
}

/// Connects to `endpoint` (`tcp://host:port`) and shakes hands as `role`.
pub(crate) async fn connect(endpoint: &str, role: Role) -> Result<Peer, ConnectError> {
    let failed = |reason: String| ConnectError {
        refused: false,
        reason,
    };
    let address = endpoint
        .strip_prefix("tcp://")
        .ok_or_else(|| failed("only tcp:// endpoints are supported".into()))?;
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| failed("the endpoint has no port".into()))?;
    let port: u16 = port
        .parse()
        .map_err(|_| failed(format!("{port:?} is not a port")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|err| ConnectError {
            refused: err.kind() == std::io::ErrorKind::ConnectionRefused,
            reason: err.to_string(),
        })?;
    handshake(stream, role).await.map_err(failed)
}

/// Why [`connect`] failed.
#[derive(Debug)]
pub(crate) struct ConnectError {
    /// Nothing listened at the endpoint: it may be about to (a service is in the registry
    /// before it listens).
    pub refused: bool,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_headers_short_long_and_refused() {
        assert_eq!(frame_header(&[]).unwrap(), None);
        assert_eq!(frame_header(&[0x01]).unwrap(), None);
        assert_eq!(frame_header(&[0x01, 0]).unwrap(), Some((0x01, 2, 0)));
        assert_eq!(frame_header(&[0x04, 7]).unwrap(), Some((0x04, 2, 7)));
        assert_eq!(frame_header(&[0x02, 0, 0, 0]).unwrap(), None);
        let mut long = vec![0x02];
        long.extend_from_slice(&300u64.to_be_bytes());
        assert_eq!(frame_header(&long).unwrap(), Some((0x02, 9, 300)));
        let mut huge = vec![0x02];
        huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
        assert!(frame_header(&huge)
            .unwrap_err()
            .contains("more than any message"));
        assert!(frame_header(&[0x08, 0])
            .unwrap_err()
            .contains("reserved flags"));
    }

    #[test]
    fn ready_properties_are_read_and_checked() {
        let ready = ready(Role::Dealer);
        assert_eq!(&ready[..2], &[COMMAND, ready.len() as u8 - 2]);
        assert_eq!(&ready[2..8], b"\x05READY");
        assert_eq!(
            property(&ready[8..], b"socket-type").unwrap(),
            Some(&b"DEALER"[..])
        );
        assert_eq!(property(&ready[8..], b"Identity").unwrap(), None);
        assert!(property(&[11, b'S'], b"Socket-Type").is_err());
        assert!(property(&[1, b'a', 0, 0, 0, 9, b'x'], b"Socket-Type").is_err());
    }
}
