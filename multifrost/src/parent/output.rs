//! The worker's output, as the parent sees it: its stdout/stderr pipes, and the `stdout` /
//! `stderr` messages a child sends over the socket.

use std::sync::Arc;

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

impl OutputStream {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputStream::Stdout => "STDOUT",
            OutputStream::Stderr => "STDERR",
        }
    }
}

/// One line of a worker's output.
#[derive(Debug, Clone, Copy)]
pub struct OutputEvent<'a> {
    /// The worker's name.
    pub worker: &'a str,
    pub stream: OutputStream,
    /// The text, without its line ending.
    pub text: &'a str,
    /// True when it came as a `stdout`/`stderr` message rather than from the process's pipes.
    pub from_message: bool,
}

/// A user's output callback.
type OutputCallback = Arc<dyn Fn(&OutputEvent<'_>) + Send + Sync>;

/// The user's output callback, or the default that emits `tracing` events.
#[derive(Clone, Default)]
pub(crate) struct OutputHandler(Option<OutputCallback>);

impl OutputHandler {
    pub fn new(handler: impl Fn(&OutputEvent<'_>) + Send + Sync + 'static) -> Self {
        OutputHandler(Some(Arc::new(handler)))
    }

    pub fn emit(&self, event: OutputEvent<'_>) {
        match &self.0 {
            Some(handler) => handler(&event),
            None => tracing::info!(
                target: "multifrost::output",
                "[{} {}]: {}",
                event.worker,
                event.stream.as_str(),
                event.text
            ),
        }
    }
}
