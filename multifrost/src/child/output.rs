//! Capturing the child's own stdout and stderr and forwarding them as messages.
//!
//! A Python parent pipes its child's stdout and stderr and never reads them: a child writing
//! 64 KiB of logs would then block forever. So in spawn mode a Rust child points its descriptors
//! 1 and 2 at pipes of its own, and forwards what arrives there as `stdout` / `stderr` messages
//! (PROTOCOL.md section 5).

use std::io::{BufRead, BufReader, PipeReader};
use std::os::fd::{AsRawFd, RawFd};

use tokio::sync::mpsc;

use crate::protocol::MessageKind;

/// One chunk of captured output.
pub(crate) struct OutputLine {
    pub kind: MessageKind,
    pub text: String,
}

/// How many lines may wait for a parent to forward them to; older ones are dropped beyond that.
pub(crate) const OUTPUT_BACKLOG: usize = 4096;

/// Replaces descriptors 1 and 2 with pipes and returns the lines written to them.
pub(crate) fn capture_stdio() -> std::io::Result<mpsc::Receiver<OutputLine>> {
    let (sender, receiver) = mpsc::channel(OUTPUT_BACKLOG);
    for (fd, kind) in [(1, MessageKind::Stdout), (2, MessageKind::Stderr)] {
        let read_end = redirect(fd)?;
        let sender = sender.clone();
        std::thread::Builder::new()
            .name(format!("multifrost-{}", kind.as_str()))
            .spawn(move || forward_lines(read_end, kind, sender))?;
    }
    Ok(receiver)
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

fn forward_lines(read_end: PipeReader, kind: MessageKind, sender: mpsc::Sender<OutputLine>) {
    let mut reader = BufReader::new(read_end);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while matches!(line.last(), Some(b'\n' | b'\r')) {
                    line.pop();
                }
                let text = String::from_utf8_lossy(&line).into_owned();
                // A full backlog means nobody is listening: drop rather than block the writer.
                let _ = sender.try_send(OutputLine { kind, text });
            }
        }
    }
}
