//! What `#[multifrost::worker]` expansions call, reached as `multifrost::__private`: decoding
//! positional arguments, running sync methods off the runtime, encoding results, turning a
//! method's error into a [`CallError`] (with the error as data when it is `Serialize`), and
//! sending byte strings as msgpack bin ([`BinValue`], also used by the typed clients). Not a
//! public API: it changes with the macro.

use std::fmt::Display;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::child::panic::{self, CaughtPanic};
use crate::child::{BlockingCall, CallError, Description, MethodDescription, ParamDescription};

use crate::protocol::{describe, EncodedValue, ValueError};
/// `bytes::Bytes`, which the macro sends as bin, whatever the user's crate depends on.
pub use bytes;
/// The typed clients serialize their arguments with it, whatever the user's crate depends on.
pub use serde;

/// One exposed method, as the expansion describes it.
pub struct MethodInfo {
    /// Its wire name.
    pub name: &'static str,
    /// Its positional parameters: name, type as written, whether it may be left out.
    pub params: &'static [(&'static str, &'static str, bool)],
    /// The type it returns (for `Result<T, E>`, `T`), or `None` for nothing.
    pub returns: Option<&'static str>,
    /// The first line of its doc comment.
    pub doc: Option<&'static str>,
}

/// What `Worker::describe` returns for the described methods.
pub fn description(namespace: &str, methods: &[MethodInfo]) -> Description {
    Description {
        namespace: namespace.to_owned(),
        methods: methods
            .iter()
            .map(|method| MethodDescription {
                name: method.name.to_owned(),
                params: Some(
                    method
                        .params
                        .iter()
                        .map(|&(name, ty, optional)| ParamDescription {
                            name: name.to_owned(),
                            ty: ty.to_owned(),
                            optional,
                        })
                        .collect(),
                ),
                returns: Some(method.returns.unwrap_or("()").to_owned()),
                doc: method.doc.map(str::to_owned),
            })
            .collect(),
    }
}

/// The exposed names, for `Worker::list_functions`.
pub fn function_list(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

/// A call's positional arguments, decoded one by one into the method's parameter types, with
/// errors that name the function, the argument's position and name, and what arrived. Each
/// decode is handed the arguments, which stay the call's: a sync method's call is dropped by
/// the runtime's thread, which made it (see `SyncCall` in `child/serve.rs`).
pub struct Args {
    function: &'static str,
    names: &'static [&'static str],
    /// How many arguments were taken so far.
    taken: usize,
}

impl Args {
    /// Checks the arity: at least `required` arguments (the parameters up to the last one that
    /// is not a trailing `Option`) and at most one per name.
    pub fn new(
        function: &'static str,
        values: &[EncodedValue],
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
            taken: 0,
        })
    }

    /// Decodes the next argument.
    pub fn decode_next<T: DeserializeOwned>(
        &mut self,
        values: &[EncodedValue],
    ) -> Result<T, CallError> {
        self.next_required(values, EncodedValue::decode)
    }

    /// Decodes the next argument of a trailing `Option<T>` parameter: `None` when the caller
    /// left it out.
    pub fn decode_optional<T: DeserializeOwned>(
        &mut self,
        values: &[EncodedValue],
    ) -> Result<Option<T>, CallError> {
        self.next_optional(values, EncodedValue::decode)
    }

    /// Decodes the next argument of a byte-string parameter (see [`BinValue`]).
    pub fn decode_next_bin<T: BinValue>(
        &mut self,
        values: &[EncodedValue],
    ) -> Result<T, CallError> {
        self.next_required(values, decode_bin)
    }

    /// Decodes the next argument of a trailing `Option` byte-string parameter: `None` when the
    /// caller left it out or sent nil.
    pub fn decode_optional_bin<T: BinValue>(
        &mut self,
        values: &[EncodedValue],
    ) -> Result<Option<T>, CallError> {
        self.next_optional(values, decode_bin)
    }

    /// The next argument, decoded by `decode`; an error when the caller left it out.
    fn next_required<T>(
        &mut self,
        values: &[EncodedValue],
        decode: impl FnOnce(&EncodedValue) -> Result<T, ValueError>,
    ) -> Result<T, CallError> {
        match values.get(self.taken) {
            Some(value) => self.decode(value, decode),
            None => Err(self.missing()),
        }
    }

    /// The next argument of a trailing `Option` parameter, decoded by `decode`; `None` when
    /// the caller left it out.
    fn next_optional<T>(
        &mut self,
        values: &[EncodedValue],
        decode: impl FnOnce(&EncodedValue) -> Result<Option<T>, ValueError>,
    ) -> Result<Option<T>, CallError> {
        match values.get(self.taken) {
            Some(value) => self.decode(value, decode),
            None => {
                self.taken += 1;
                Ok(None)
            }
        }
    }

    /// Takes `value` as the next argument and decodes it, with an error naming its position.
    fn decode<T>(
        &mut self,
        value: &EncodedValue,
        decode: impl FnOnce(&EncodedValue) -> Result<T, ValueError>,
    ) -> Result<T, CallError> {
        let position = self.taken;
        self.taken += 1;
        decode(value).map_err(|error| {
            CallError::new(format!(
                "{}: argument {}: {}",
                self.function,
                self.describe_position(position),
                mismatch(&error)
            ))
        })
    }

    /// The error for a required argument the caller left out.
    fn missing(&self) -> CallError {
        CallError::new(format!(
            "{}: missing argument {}",
            self.function,
            self.describe_position(self.taken)
        ))
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

/// Runs a sync method on the threads kept for sync methods (see `child/blocking.rs`), so the
/// runtime keeps serving heartbeats and other calls meanwhile. A panic becomes an error naming
/// the function, worded like the one the runtime sends for a panic in an async method, with
/// where it happened as traceback: it is caught on the method's thread, where the panic hook
/// recorded its location.
pub async fn run_blocking<R, F>(function: &str, method: F) -> Result<R, CallError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    panic::install_hook();
    let (done, outcome) = tokio::sync::oneshot::channel();
    crate::child::blocking::pool().submit(Box::new(move || {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(method))
            .map_err(CaughtPanic::take);
        let _ = done.send(caught);
    }));
    match outcome.await {
        Ok(Ok(returned)) => Ok(returned),
        Ok(Err(panic)) => Err(panic.into_call_error(function)),
        Err(_) => Err(CallError::new(format!(
            "{function}: the method's thread ended without an answer"
        ))),
    }
}

/// Runs a sync method's job (see `Worker::dispatch_blocking`) on `call` on the threads kept
/// for sync methods and waits for it: how `dispatch` answers a call to a sync method.
pub async fn run_blocking_call<W: Send + Sync + 'static>(
    worker: std::sync::Arc<W>,
    call: crate::IncomingCall,
    job: BlockingCall<W>,
) -> Result<EncodedValue, CallError> {
    run_blocking(job.function, move || (job.run)(&worker, &call)).await?
}

/// Encodes what a method returned.
pub fn encode_return<T: Serialize + ?Sized>(
    function: &str,
    value: &T,
) -> Result<EncodedValue, CallError> {
    EncodedValue::encode(value)
        .map_err(|error| CallError::new(format!("{function}: cannot encode the result: {error}")))
}

/// Encodes what a method returned as a byte string: msgpack bin (nil for `None`), without
/// copying a large one.
pub fn encode_bin_return<T: BinValue>(function: &str, value: T) -> Result<EncodedValue, CallError> {
    encode_bin(value)
        .map_err(|error| CallError::new(format!("{function}: cannot encode the result: {error}")))
}

// Byte strings. serde sends a `Vec<u8>` as an array of integers (a Python parent gets a list);
// the macro sends the types below as msgpack bin instead, in arguments and results, both in the
// worker and in the client, without `serde_bytes`. It decides by the type's name as written
// (`syntax::is_bin` in the macro crate), so these are all the types that name can stand for.
// Decoding also accepts an array of integers, from callers that do not send bin.

/// A byte string sent as msgpack bin: `Vec<u8>`, `Box<[u8]>`, `bytes::Bytes`, `[u8; N]`, and
/// an `Option` of one (nil for `None`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is sent as msgpack bin because of its name, but it is not a byte string",
    label = "a parameter or result named like a byte string",
    note = "the macro sends `Vec<u8>`, `Box<[u8]>`, `bytes::Bytes`, `[u8; N]` and an `Option` of one as bin; \
            a type of your own named `Bytes` needs another name (or `use ... as`)"
)]
pub trait BinValue: Sized {
    /// The bytes to send; `None` sends nil.
    fn bin_bytes(&self) -> Option<&[u8]>;

    /// The bytes to send, owned; `None` sends nil. No copy for `Vec<u8>`, `Box<[u8]>` and
    /// `bytes::Bytes`.
    fn into_bin(self) -> Option<bytes::Bytes> {
        self.bin_bytes().map(bytes::Bytes::copy_from_slice)
    }

    /// From the bytes of a received bin.
    fn from_bin(bytes: &[u8]) -> Result<Self, String>;

    /// From bytes already collected (an array of integers): no copy for a `Vec<u8>`.
    fn from_vec(bytes: Vec<u8>) -> Result<Self, String> {
        Self::from_bin(&bytes)
    }

    /// From a received bin, as a view into the message it arrived in: no copy for
    /// `bytes::Bytes` (which then keeps that message's buffer alive while it lives).
    fn from_shared(bytes: bytes::Bytes) -> Result<Self, String> {
        Self::from_bin(&bytes)
    }

    /// From a received nil, for the types that have a value for it (`Option`).
    fn from_nil() -> Option<Self> {
        None
    }
}

impl BinValue for Vec<u8> {
    fn bin_bytes(&self) -> Option<&[u8]> {
        Some(self)
    }
    fn from_bin(bytes: &[u8]) -> Result<Self, String> {
        Ok(bytes.to_vec())
    }
    fn from_vec(bytes: Vec<u8>) -> Result<Self, String> {
        Ok(bytes)
    }
    fn into_bin(self) -> Option<bytes::Bytes> {
        Some(self.into())
    }
}

impl BinValue for Box<[u8]> {
    fn bin_bytes(&self) -> Option<&[u8]> {
        Some(self)
    }
    fn from_bin(bytes: &[u8]) -> Result<Self, String> {
        Ok(bytes.into())
    }
    fn from_vec(bytes: Vec<u8>) -> Result<Self, String> {
        Ok(bytes.into_boxed_slice())
    }
    fn into_bin(self) -> Option<bytes::Bytes> {
        Some(self.into())
    }
}

impl BinValue for bytes::Bytes {
    fn bin_bytes(&self) -> Option<&[u8]> {
        Some(self)
    }
    fn from_bin(bytes: &[u8]) -> Result<Self, String> {
        Ok(bytes::Bytes::copy_from_slice(bytes))
    }
    fn from_vec(bytes: Vec<u8>) -> Result<Self, String> {
        Ok(bytes.into())
    }
    fn from_shared(bytes: bytes::Bytes) -> Result<Self, String> {
        Ok(bytes)
    }
    fn into_bin(self) -> Option<bytes::Bytes> {
        Some(self)
    }
}

impl<const N: usize> BinValue for [u8; N] {
    fn bin_bytes(&self) -> Option<&[u8]> {
        Some(self)
    }
    fn from_bin(bytes: &[u8]) -> Result<Self, String> {
        bytes
            .try_into()
            .map_err(|_| format!("bin of exactly {N} bytes"))
    }
}

impl<T: BinValue> BinValue for Option<T> {
    fn bin_bytes(&self) -> Option<&[u8]> {
        self.as_ref().and_then(T::bin_bytes)
    }
    fn from_bin(bytes: &[u8]) -> Result<Self, String> {
        T::from_bin(bytes).map(Some)
    }
    fn from_vec(bytes: Vec<u8>) -> Result<Self, String> {
        T::from_vec(bytes).map(Some)
    }
    fn from_shared(bytes: bytes::Bytes) -> Result<Self, String> {
        T::from_shared(bytes).map(Some)
    }
    fn into_bin(self) -> Option<bytes::Bytes> {
        self.and_then(T::into_bin)
    }
    fn from_nil() -> Option<Self> {
        Some(None)
    }
}

/// Encodes a byte string as msgpack bin (nil for `None`); a large one is sent from where it
/// is, not copied (see `EncodedValue::bin`).
pub fn encode_bin<T: BinValue>(value: T) -> Result<EncodedValue, String> {
    match value.into_bin() {
        Some(bytes) => EncodedValue::bin(bytes),
        None => Ok(EncodedValue::nil()),
    }
}

/// Decodes a byte string: from a bin, copied once straight from the received message (or, for
/// `bytes::Bytes`, not copied: a view into it); or, for lenient callers, from an array of
/// integers in 0..=255; nil only into an `Option`.
pub fn decode_bin<T: BinValue>(value: &EncodedValue) -> Result<T, ValueError> {
    let encoded = value.as_bytes();
    let mut reader = encoded;
    let mismatch = |detail: String| ValueError {
        expected: "bin".to_owned(),
        got: describe(&value.to_value()),
        detail,
    };
    match encoded.first() {
        Some(0xc4..=0xc6) => {
            let len = rmp::decode::read_bin_len(&mut reader)
                .map_err(|error| mismatch(error.to_string()))? as usize;
            let start = encoded.len() - reader.len();
            if reader.len() < len {
                return Err(mismatch("truncated bin".to_owned()));
            }
            T::from_shared(value.shared_slice(start..start + len)).map_err(|detail| ValueError {
                expected: detail,
                ..mismatch(String::new())
            })
        }
        Some(0xc0) => T::from_nil().ok_or_else(|| mismatch(String::new())),
        Some(0x90..=0x9f | 0xdc | 0xdd) => {
            let bytes: Vec<u8> = value.decode().map_err(|error| ValueError {
                expected: "bin or array of integers in 0..=255".to_owned(),
                ..error
            })?;
            let len = bytes.len();
            T::from_vec(bytes).map_err(|detail| ValueError {
                expected: detail,
                got: format!("array of {len} items"),
                detail: String::new(),
            })
        }
        _ => Err(mismatch(String::new())),
    }
}

/// A byte-string argument as a typed client sends it: msgpack bin (nil for `None`).
pub struct BinArg<'a, T>(pub &'a T);

impl<T: BinValue> Serialize for BinArg<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.bin_bytes() {
            Some(bytes) => serializer.serialize_bytes(bytes),
            None => serializer.serialize_none(),
        }
    }
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
    /// This kind's tag, found by method lookup (see above).
    fn multifrost_error_kind(&self) -> IntoCallErrorTag {
        IntoCallErrorTag
    }
}
impl<E: Into<CallError>> IntoCallErrorKind for &&&ErrorWrap<'_, E> {}

/// Kind 2: the error is a `std::error::Error`.
pub trait StdErrorKind {
    /// This kind's tag, found by method lookup (see above).
    fn multifrost_error_kind(&self) -> StdErrorTag {
        StdErrorTag
    }
}
impl<E: std::error::Error + 'static> StdErrorKind for &&ErrorWrap<'_, E> {}

/// Kind 3: the error points to a `dyn std::error::Error`.
pub trait DerefErrorKind {
    /// This kind's tag, found by method lookup (see above).
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
    /// This kind's tag, found by method lookup (see above).
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
    /// The text of the error reply.
    fn reply_text(&self) -> String;
}
impl<E: Display> ErrorReply for E {
    fn reply_text(&self) -> String {
        self.to_string()
    }
}

impl IntoCallErrorTag {
    /// The error reply for `error`.
    pub fn into_call_error<E: Into<CallError>>(self, error: E) -> CallError {
        error.into()
    }
}

impl StdErrorTag {
    /// The error reply for `error`.
    pub fn into_call_error<E: std::error::Error + 'static>(self, error: E) -> CallError {
        CallError::from_error(&error)
    }
}

impl DerefErrorTag {
    /// The error reply for `error`.
    pub fn into_call_error<E>(self, error: E) -> CallError
    where
        E: std::ops::Deref<Target = dyn std::error::Error + Send + Sync + 'static>,
    {
        CallError::from_error(&*error)
    }
}

impl DisplayErrorTag {
    /// The error reply for `error`.
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
    /// The error as data beside its text, when its type is `Serialize`.
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
    /// The error as data beside its text, when its type is `Serialize`.
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
