//! Where a worker's method panicked, for the error reply's traceback.
//!
//! A panic payload says what, not where: only the panic hook sees the location. The hook
//! (installed once, chained to the one before it) records the message and location in a
//! thread-local of the panicking thread; the catch site, which runs on that same thread right
//! after the unwind (in the same poll for an async method, inside the blocking task for a sync
//! one), takes the record and keeps its location when the message is the payload's.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Once;

use super::worker::CallError;

thread_local! {
    /// The last panic on this thread that nobody has taken yet.
    static LAST_PANIC: RefCell<Option<Recorded>> = const { RefCell::new(None) };
}

/// What the hook saw of a panic.
struct Recorded {
    /// The payload's text, if it has one.
    message: Option<String>,
    /// `file:line:column`.
    location: String,
}

/// Installs the recording hook, once per process, in front of the hook already set (the
/// default one prints the panic to stderr, which a spawned child forwards to its parent).
pub(crate) fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(location) = info.location() {
                let recorded = Recorded {
                    message: info
                        .payload()
                        .downcast_ref::<&str>()
                        .map(|text| (*text).to_owned())
                        .or_else(|| info.payload().downcast_ref::<String>().cloned()),
                    location: location.to_string(),
                };
                // `try_with`: a panic while the thread-local is being destroyed records nothing.
                let _ = LAST_PANIC.try_with(|last| *last.borrow_mut() = Some(recorded));
            }
            previous(info);
        }));
    });
}

/// A caught panic: its message and, when the hook recorded it, where it happened.
pub(crate) struct CaughtPanic {
    message: String,
    location: Option<String>,
}

impl CaughtPanic {
    /// Reads a payload just caught on this thread, with the location the hook recorded for it.
    pub(crate) fn take(payload: Box<dyn Any + Send>) -> CaughtPanic {
        let text = payload
            .downcast_ref::<&str>()
            .map(|text| (*text).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned());
        let recorded = LAST_PANIC
            .try_with(|last| last.borrow_mut().take())
            .ok()
            .flatten();
        // A record for another message is stale: that panic was caught elsewhere, and this
        // one did not pass the hook (`resume_unwind`).
        let location = recorded
            .filter(|recorded| recorded.message == text)
            .map(|recorded| recorded.location);
        CaughtPanic {
            message: text.unwrap_or_else(|| "panic with a non-text payload".to_owned()),
            location,
        }
    }

    /// `<function>: panicked: <message>`, with `  at <file>:<line>:<column>` as traceback.
    pub(crate) fn into_call_error(self, function: &str) -> CallError {
        let error = CallError::new(format!("{function}: panicked: {}", self.message));
        match self.location {
            Some(location) => error.with_traceback(format!("  at {location}")),
            None => error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catch(run: impl FnOnce() + std::panic::UnwindSafe) -> CallError {
        install_hook();
        let payload = std::panic::catch_unwind(run).unwrap_err();
        CaughtPanic::take(payload).into_call_error("f")
    }

    #[test]
    fn a_panic_is_reported_with_its_location() {
        let line = line!() + 1;
        let error = catch(|| panic!("boom {}", 7));
        assert_eq!(error.message(), "f: panicked: boom 7");
        let expected = format!("  at multifrost/src/child/panic.rs:{line}:30");
        assert_eq!(error.traceback(), Some(expected.as_str()));
        assert_eq!(
            error.reply_text(),
            format!("f: panicked: boom 7\n{expected}")
        );
    }

    #[test]
    fn a_resumed_panic_does_not_take_a_stale_location() {
        install_hook();
        // Caught by someone else: its record stays behind.
        let _ = std::panic::catch_unwind(|| panic!("first"));
        let error = catch(|| std::panic::resume_unwind(Box::new("second")));
        assert_eq!(error.message(), "f: panicked: second");
        assert_eq!(error.traceback(), None);
    }
}
