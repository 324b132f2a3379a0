//! What `#[multifrost::worker]` expansions call, reached as `multifrost::__private`: decoding
//! positional arguments, running sync methods off the runtime, encoding results and turning a
//! method's error into a [`CallError`]. Not a public API: it changes with the macro.

use std::fmt::Display;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::child::panic::{self, CaughtPanic};
use crate::child::CallError;

use crate::protocol::{EncodedValue, ValueError};
/// The typed clients serialize their arguments with it, whatever the user's crate depends on.
pub use serde;

/// The exposed names, for `Worker::list_functions`.
pub fn function_list(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

/// A call's positional arguments, decoded one by one into the method's parameter types, with
/// errors that name the function, the argument's position and name, and what arrived.
pub struct Args {
    function: &'static str,
    names: &'static [&'static str],
    values: std::vec::IntoIter<EncodedValue>,
    /// How many arguments were taken so far.
    taken: usize,
}

impl Args {
    /// Checks the arity: at least `required` arguments (the parameters up to the last one that
    /// is not a trailing `Option`) and at most one per name.
    pub fn new(
        function: &'static str,
        values: Vec<EncodedValue>,
        required: usize,
        names: &'static [&'static str],
    ) -> Result<Args, CallError> {
        let got = values.len();
        if got < required || got > names.len() {
            return Err(CallError::new(format!(
                "{function}: expected {}, got {got}",
                expected_arguments(required, names)
            )));
        }
        Ok(Args {
            function,
            names,
            values: values.into_iter(),
            taken: 0,
        })
    }

    /// Decodes the next argument.
    pub fn decode_next<T: DeserializeOwned>(&mut self) -> Result<T, CallError> {
        match self.values.next() {
            Some(value) => self.decode(&value),
            None => Err(CallError::new(format!(
                "{}: missing argument {}",
                self.function,
                self.describe_position(self.taken)
            ))),
        }
    }

    /// Decodes the next argument of a trailing `Option<T>` parameter: `None` when the caller
    /// left it out.
    pub fn decode_optional<T: DeserializeOwned>(&mut self) -> Result<Option<T>, CallError> {
        match self.values.next() {
            Some(value) => self.decode(&value),
            None => {
                self.taken += 1;
                Ok(None)
            }
        }
    }

    fn decode<T: DeserializeOwned>(&mut self, value: &EncodedValue) -> Result<T, CallError> {
        let position = self.taken;
        self.taken += 1;
        value.decode().map_err(|error| {
            CallError::new(format!(
                "{}: argument {}: {}",
                self.function,
                self.describe_position(position),
                mismatch(&error)
            ))
        })
    }

    /// `2 (b)`.
    fn describe_position(&self, index: usize) -> String {
        match self.names.get(index) {
            Some(name) => format!("{} ({name})", index + 1),
            None => (index + 1).to_string(),
        }
    }
}

/// `expected i64, got str "x"`, plus the decoder's explanation when it says more than that (a
/// missing field, a mismatch deeper inside the value).
fn mismatch(error: &ValueError) -> String {
    let ValueError {
        expected,
        got,
        detail,
    } = error;
    let says_more = !(detail.is_empty()
        || detail.starts_with("invalid type")
        || detail.starts_with("wrong msgpack marker"));
    if says_more {
        format!("expected {expected}, got {got} ({detail})")
    } else {
        format!("expected {expected}, got {got}")
    }
}

/// `2 arguments (a, b)`, `1 to 2 arguments (p, scale)`, `1 argument (n)`, `no arguments`.
fn expected_arguments(required: usize, names: &[&str]) -> String {
    let total = names.len();
    let count = match (required, total) {
        (_, 0) => return "no arguments".to_owned(),
        (1, 1) => "1 argument".to_owned(),
        (required, total) if required == total => format!("{total} arguments"),
        (required, total) => format!("{required} to {total} arguments"),
    };
    format!("{count} ({})", names.join(", "))
}

/// Runs a sync method on tokio's blocking pool, so the runtime keeps serving heartbeats and
/// other calls meanwhile. A panic becomes an error naming the function, worded like the one
/// the runtime sends for a panic in an async method, with where it happened as traceback: it
/// is caught on the blocking thread, where the panic hook recorded its location.
pub async fn run_blocking<R, F>(function: &str, method: F) -> Result<R, CallError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    panic::install_hook();
    let caught = tokio::task::spawn_blocking(move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(method)).map_err(CaughtPanic::take)
    });
    match caught.await {
        Ok(Ok(returned)) => Ok(returned),
        Ok(Err(panic)) => Err(panic.into_call_error(function)),
        Err(join) => Err(CallError::new(format!("{function}: cancelled: {join}"))),
    }
}

/// Encodes what a method returned.
pub fn encode_return<T: Serialize + ?Sized>(
    function: &str,
    value: &T,
) -> Result<EncodedValue, CallError> {
    EncodedValue::encode(value)
        .map_err(|error| CallError::new(format!("{function}: cannot encode the result: {error}")))
}

// How a method's `Err(e)` becomes a `CallError`, chosen at compile time for the concrete error
// type by autoref specialization: the expansion calls
// `(&&&&ErrorWrap(&error)).multifrost_error_kind().into_call_error(error)`, and method lookup
// tries the receiver with the most references first, so the first kind that applies wins, in
// this order:
//
// 1. `Into<CallError>`: `CallError` itself, `multifrost::Error` (remote errors keep their
//    traceback), and any error type the user converts explicitly.
// 2. `std::error::Error`: its message and chain of sources.
// 3. A pointer to a `dyn Error` (`Box<dyn Error + Send + Sync>`, `anyhow::Error`): the same.
// 4. `Display`: its text.
//
// The wrapper keeps the blanket impls from matching the references themselves (`&E` is
// `Display` whenever `E` is).

/// The error being converted, as the receiver of `multifrost_error_kind`.
pub struct ErrorWrap<'a, E>(pub &'a E);

/// Tag of kind 1; see above.
pub struct IntoCallErrorTag;
/// Tag of kind 2; see above.
pub struct StdErrorTag;
/// Tag of kind 3; see above.
pub struct DerefErrorTag;
/// Tag of kind 4; see above.
pub struct DisplayErrorTag;

/// Kind 1: the error converts into a `CallError`.
pub trait IntoCallErrorKind {
    fn multifrost_error_kind(&self) -> IntoCallErrorTag {
        IntoCallErrorTag
    }
}
impl<E: Into<CallError>> IntoCallErrorKind for &&&ErrorWrap<'_, E> {}

/// Kind 2: the error is a `std::error::Error`.
pub trait StdErrorKind {
    fn multifrost_error_kind(&self) -> StdErrorTag {
        StdErrorTag
    }
}
impl<E: std::error::Error + 'static> StdErrorKind for &&ErrorWrap<'_, E> {}

/// Kind 3: the error points to a `dyn std::error::Error`.
pub trait DerefErrorKind {
    fn multifrost_error_kind(&self) -> DerefErrorTag {
        DerefErrorTag
    }
}
impl<E> DerefErrorKind for &ErrorWrap<'_, E> where
    E: std::ops::Deref<Target = dyn std::error::Error + Send + Sync + 'static>
{
}

/// Kind 4: the error can only be displayed. It matches any type, so that a type that cannot be
/// displayed either fails on `DisplayErrorTag::into_call_error`'s bound, with a message that
/// says what to do, rather than on the method lookup.
pub trait DisplayErrorKind {
    fn multifrost_error_kind(&self) -> DisplayErrorTag {
        DisplayErrorTag
    }
}
impl<E> DisplayErrorKind for ErrorWrap<'_, E> {}

/// The bound that names the problem when a method's error type cannot become an error reply.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be sent as an error reply: it does not implement `Display`",
    label = "the error type of an exposed method",
    note = "implement `Display` or `std::error::Error` for it, or `From<{Self}> for multifrost::CallError`"
)]
pub trait ErrorReply {
    fn reply_text(&self) -> String;
}
impl<E: Display> ErrorReply for E {
    fn reply_text(&self) -> String {
        self.to_string()
    }
}

impl IntoCallErrorTag {
    pub fn into_call_error<E: Into<CallError>>(self, error: E) -> CallError {
        error.into()
    }
}

impl StdErrorTag {
    pub fn into_call_error<E: std::error::Error + 'static>(self, error: E) -> CallError {
        CallError::from_error(&error)
    }
}

impl DerefErrorTag {
    pub fn into_call_error<E>(self, error: E) -> CallError
    where
        E: std::ops::Deref<Target = dyn std::error::Error + Send + Sync + 'static>,
    {
        CallError::from_error(&*error)
    }
}

impl DisplayErrorTag {
    pub fn into_call_error<E: ErrorReply>(self, error: E) -> CallError {
        CallError::new(error.reply_text())
    }
}

// Whether a method's `Err(e)` also travels as data (`error_data`), chosen the same way: the
// expansion calls `(&&ErrorData(&error)).multifrost_error_data()` before converting the error,
// and gets the error encoded when its type is `Serialize`, nothing otherwise. The reply's text
// is the same either way.

/// The error whose data is taken, as the receiver of `multifrost_error_data`.
pub struct ErrorData<'a, E>(pub &'a E);

/// The error is `Serialize`: it is sent as data too.
pub trait SerializeErrorData {
    fn multifrost_error_data(&self) -> Option<EncodedValue>;
}
impl<E: Serialize> SerializeErrorData for &ErrorData<'_, E> {
    fn multifrost_error_data(&self) -> Option<EncodedValue> {
        EncodedValue::encode(self.0)
            .inspect_err(|error| tracing::debug!("error data left out of the reply: {error}"))
            .ok()
    }
}

/// Any other error: text only.
pub trait NoErrorData {
    fn multifrost_error_data(&self) -> Option<EncodedValue> {
        None
    }
}
impl<E> NoErrorData for ErrorData<'_, E> {}

/// `error` with `data` attached, unless the conversion attached some already (a remote error
/// forwarded from a nested call keeps the data it came with).
pub fn with_error_data(error: CallError, data: Option<EncodedValue>) -> CallError {
    match data {
        Some(data) if error.data().is_none() => error.with_data(data),
        _ => error,
    }
}
