//! Capturing the child's own stdout and stderr, and the outbox that forwards them as messages,
//! in order with the replies.
//!
//! A Python parent pipes its child's stdout and stderr and never reads them: a child writing
//! 64 KiB of logs would then block forever. So in spawn mode a Rust child points its descriptors
//! 1 and 2 at pipes of its own, and forwards what arrives there as `stdout` / `stderr` messages
//! (PROTOCOL.md section 5).
//!
//! One task, the outbox, owns the read ends and sends every reply. Before it sends a reply it
//! reads both pipes dry and sends those lines first, so what a call printed reaches the parent
//! before that call's reply. While a parent is connected the outbox reads a pipe only as fast as
//! the parent takes the lines (backpressure: a worker printing faster than the parent reads
//! waits in its `print`); only when no parent is known yet does it hold lines back, and past
//! [`OUTPUT_BACKLOG`] it drops them and says how many once a parent appears.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{PipeReader, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

use tokio::net::unix::pipe;

use crate::protocol::MessageKind;

/// One line of captured output.
pub(crate) struct OutputLine {
    pub kind: MessageKind,
    pub text: String,
}

/// How many lines are held while no parent is known; beyond that they are dropped (counted).
pub(crate) const OUTPUT_BACKLOG: usize = 4096;

/// The most bytes read from the pipes before one reply: a worker that prints without pause
/// cannot hold replies back for ever.
const DRAIN_LIMIT: usize = 4 * 1024 * 1024;

/// The process's stderr as it was before capture, for fatal errors that must reach the parent
/// even though the outbox will not run again.
static ORIGINAL_STDERR: OnceLock<File> = OnceLock::new();

/// Writes a fatal message where the parent (or a terminal) sees it: the stderr the process
/// started with, also when output is captured.
pub(crate) fn write_fatal(message: &str) {
    match ORIGINAL_STDERR.get() {
        Some(mut original) => {
            let _ = writeln!(original, "{message}");
        }
        None => eprintln!("{message}"),
    }
}

/// The read ends of the pipes that replaced descriptors 1 and 2.
pub(crate) struct CapturedStdio {
    streams: Vec<Captured>,
}

struct Captured {
    kind: MessageKind,
    pipe: pipe::Receiver,
    /// The same read end, read directly by `drain`: tokio's `try_read` answers "would block"
    /// from its cached readiness, without reading, until its reactor has seen the pipe become
    /// readable again, so bytes written just before a reply could be left for after it.
    direct: File,
    /// Bytes of a line whose end has not arrived yet.
    partial: Vec<u8>,
    open: bool,
}

/// Replaces descriptors 1 and 2 with pipes; the returned value reads them. Must run inside the
/// tokio runtime that will forward the output.
pub(crate) fn capture_stdio() -> std::io::Result<CapturedStdio> {
    if let Ok(original) = std::io::stderr().as_fd().try_clone_to_owned() {
        let _ = ORIGINAL_STDERR.set(File::from(original));
    }
    let mut streams = Vec::new();
    for (fd, kind) in [(1, MessageKind::Stdout), (2, MessageKind::Stderr)] {
        let read_end: OwnedFd = redirect(fd)?.into();
        let direct = File::from(read_end.try_clone()?);
        streams.push(Captured {
            kind,
            // Makes the pipe non-blocking, for `direct` too (the flag belongs to the pipe's
            // open file, which both descriptors share).
            pipe: pipe::Receiver::from_owned_fd(read_end)?,
            direct,
            partial: Vec::new(),
            open: true,
        });
    }
    Ok(CapturedStdio { streams })
}

/// Points `fd` at the write end of a new pipe and returns the read end.
fn redirect(fd: RawFd) -> std::io::Result<PipeReader> {
    let (read_end, write_end) = std::io::pipe()?;
    // SAFETY: both descriptors are open; dup2 atomically replaces `fd` with a copy of the write
    // end, which then lives on as `fd` (the original is closed when `write_end` drops).
    if unsafe { libc::dup2(write_end.as_raw_fd(), fd) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(read_end)
}

impl CapturedStdio {
    /// Waits until one of the pipes has something to read (never, once both are closed).
    pub async fn readable(&self) {
        let waits = self
            .streams
            .iter()
            .filter(|stream| stream.open)
            .map(|stream| Box::pin(stream.pipe.readable()));
        let waits: Vec<_> = waits.collect();
        if waits.is_empty() {
            return std::future::pending().await;
        }
        let _ = futures_util::future::select_all(waits).await;
    }

    /// Reads what the pipes hold now, without waiting, up to `limit` bytes; the complete lines
    /// go to `lines`.
    pub fn read_available(&mut self, limit: usize, lines: &mut VecDeque<OutputLine>) {
        self.read(limit, lines, false);
    }

    /// Reads up to `limit` bytes, through tokio (which then knows when to wake `readable`
    /// again) or, with `direct`, straight from the pipes (what is in them now, whatever tokio
    /// last saw).
    fn read(&mut self, limit: usize, lines: &mut VecDeque<OutputLine>, direct: bool) {
        let mut budget = limit;
        let mut chunk = [0u8; 16 * 1024];
        for stream in self.streams.iter_mut().filter(|stream| stream.open) {
            while budget > 0 {
                let room = &mut chunk[..budget.min(16 * 1024)];
                let read = if direct {
                    std::io::Read::read(&mut stream.direct, room)
                } else {
                    stream.pipe.try_read(room)
                };
                match read {
                    Ok(0) => {
                        stream.open = false;
                        if !stream.partial.is_empty() {
                            let rest = std::mem::take(&mut stream.partial);
                            lines.push_back(line(stream.kind, &rest));
                        }
                        break;
                    }
                    Ok(read) => {
                        budget -= read;
                        stream.partial.extend_from_slice(&chunk[..read]);
                        split_lines(stream.kind, &mut stream.partial, lines);
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        stream.open = false;
                        break;
                    }
                }
            }
        }
    }

    /// Reads the pipes dry (up to [`DRAIN_LIMIT`]): everything written before this call.
    ///
    /// It asks first, with one `poll` of both pipes, whether either holds anything: a reply to
    /// a call that printed nothing (most replies) costs one system call here, not a read of
    /// each pipe that finds nothing.
    pub fn drain(&mut self, lines: &mut VecDeque<OutputLine>) {
        let mut polled = [libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        }; 2];
        let mut count = 0;
        for stream in self.streams.iter().filter(|stream| stream.open) {
            if let Some(entry) = polled.get_mut(count) {
                entry.fd = stream.direct.as_raw_fd();
                entry.events = libc::POLLIN;
                count += 1;
            }
        }
        if count == 0 {
            return;
        }
        // SAFETY: `polled` holds `count` entries, each of a descriptor `self` keeps open.
        let ready = unsafe { libc::poll(polled.as_mut_ptr(), count as libc::nfds_t, 0) };
        if ready == 0 {
            return; // Nothing to read (an error, or an interruption, reads to find out).
        }
        self.read(DRAIN_LIMIT, lines, true);
    }
}

/// Moves the complete lines at the start of `buffer` to `lines`.
fn split_lines(kind: MessageKind, buffer: &mut Vec<u8>, lines: &mut VecDeque<OutputLine>) {
    let mut start = 0;
    while let Some(end) = buffer[start..].iter().position(|&b| b == b'\n') {
        lines.push_back(line(kind, &buffer[start..start + end]));
        start += end + 1;
    }
    buffer.drain(..start);
}

fn line(kind: MessageKind, bytes: &[u8]) -> OutputLine {
    let mut bytes = bytes;
    while let [rest @ .., b'\r'] = bytes {
        bytes = rest;
    }
    OutputLine {
        kind,
        text: String::from_utf8_lossy(bytes).into_owned(),
    }
}
