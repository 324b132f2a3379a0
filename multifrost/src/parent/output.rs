//! The worker's output, as the parent sees it: its stdout/stderr pipes, and the `stdout` /
//! `stderr` messages a child sends over the socket.

use std::sync::Arc;

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    /// The worker's standard output.
    Stdout,
    /// The worker's standard error.
    Stderr,
}

impl OutputStream {
    /// `STDOUT` or `STDERR`, as the prefix of a printed line says it.
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
    /// The stream the line was written to.
    pub stream: OutputStream,
    /// The text, without its line ending.
    pub text: &'a str,
    /// True when it came as a `stdout`/`stderr` message rather than from the process's pipes.
    pub from_message: bool,
}

/// A user's output callback.
type OutputCallback = Arc<dyn Fn(&OutputEvent<'_>) + Send + Sync>;

/// Whether a `tracing` subscriber is installed (globally, or for this thread).
fn tracing_is_on() -> bool {
    tracing::dispatcher::get_default(|dispatch| !dispatch.is::<tracing::subscriber::NoSubscriber>())
}

/// The user's output callback, or the default: `tracing` events when a subscriber is
/// installed, else lines on the parent's stderr.
#[derive(Clone, Default)]
pub(crate) struct OutputHandler(Option<OutputCallback>);

impl OutputHandler {
    pub fn new(handler: impl Fn(&OutputEvent<'_>) + Send + Sync + 'static) -> Self {
        OutputHandler(Some(Arc::new(handler)))
    }

    pub fn emit(&self, event: OutputEvent<'_>) {
        match &self.0 {
            Some(handler) => handler(&event),
            None if tracing_is_on() => tracing::info!(
                target: "multifrost::output",
                "[{} {}]: {}",
                event.worker,
                event.stream.as_str(),
                event.text
            ),
            // No subscriber would show the event: print the line as the Python implementation
            // does, so a worker's output and panics are never invisible.
            None => eprintln!(
                "[{} {}]: {}",
                event.worker,
                event.stream.as_str(),
                event.text
            ),
        }
    }
}
