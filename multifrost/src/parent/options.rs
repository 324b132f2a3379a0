//! Per-call options, and the encoding of arguments and decoding of results around a call.

use std::borrow::Cow;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::macro_support::{decode_bin, BinValue};
use crate::protocol::contract::CORRELATION_ID_KEY;
use crate::protocol::{EncodeError, EncodedValue, Limits};

/// Per-call options: timeout, namespace, client name, metadata, and whether the worker takes
/// integers outside i64.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    pub(crate) timeout: Option<Option<Duration>>,
    /// A typed client's own namespace is borrowed (no copy per `handle.call()`).
    pub(crate) namespace: Option<Cow<'static, str>>,
    pub(crate) client_name: Option<String>,
    pub(crate) metadata: Vec<(String, EncodedValue)>,
    pub(crate) correlation_id: Option<String>,
    pub(crate) wide_integers: bool,
    /// The first metadata value that could not be encoded: the call fails with it.
    pub(crate) metadata_error: Option<(String, EncodeError)>,
}

impl CallOptions {
    /// Options that change nothing: the worker's default timeout, the typed client's namespace
    /// (or `"default"`), no metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fail the call with [`Error::Timeout`] when no reply arrives within `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(Some(timeout));
        self
    }

    /// Wait for the reply however long it takes (overrides the worker's default timeout).
    pub fn no_timeout(mut self) -> Self {
        self.timeout = Some(None);
        self
    }

    /// The namespace to call in (default `"default"`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(Cow::Owned(namespace.into()));
        self
    }

    /// The `client_name` the worker sees.
    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = Some(name.into());
        self
    }

    /// A metadata entry the worker sees in its call context. A value that cannot be encoded
    /// (over a limit, say) fails the call with [`Error::Encode`] naming the key.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let key = key.into();
        match EncodedValue::encode(&value) {
            Ok(value) => self.metadata.push((key, value)),
            Err(err) => {
                self.metadata_error.get_or_insert((key, err));
            }
        }
        self
    }

    /// Allows integers outside i64 (msgpack uint64 above i64::MAX) in the arguments and
    /// metadata, for a worker known to take them: a Rust worker does. Without it such a call
    /// fails with [`Error::Encode`] naming the argument, because the other implementations
    /// cannot take them (PROTOCOL.md section 3: a Python worker silently clamps them to
    /// i64::MAX, a Node worker never answers). Send them to those as strings or bin.
    pub fn wide_integers(mut self) -> Self {
        self.wide_integers = true;
        self
    }

    /// The correlation id set with [`correlation_id`](Self::correlation_id), if any.
    pub fn correlation_id_value(&self) -> Option<&str> {
        self.correlation_id.as_deref()
    }

    /// A correlation id, sent as `metadata.correlation_id` (traced on both sides).
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        let id = id.into();
        self.correlation_id = Some(id.clone());
        self.metadata(CORRELATION_ID_KEY, id)
    }
}

/// Encodes the positional arguments of a call: a tuple, a `Vec`, or `()` for none. A value
/// over a limit fails here, before anything is sent, with the argument named.
pub(crate) fn encode_args(function: &str, args: impl Serialize) -> Result<EncodedValue> {
    EncodedValue::encode(&args).map_err(|err| encode_error(function, err.in_arguments()))
}

fn encode_error(function: &str, reason: String) -> Error {
    Error::Encode {
        function: function.to_owned(),
        reason,
    }
}

/// What a call message costs besides its arguments and metadata values: the common keys, the
/// ids and timestamps, the metadata keys Multifrost adds.
const CALL_OVERHEAD: usize = 512;

/// Checks a call before it is sent, so that it cannot be refused (or dropped without a reply)
/// by the worker: the arguments are positional (a msgpack array, or nil for none), and the
/// arguments and metadata keep to the portable value contract (PROTOCOL.md section 3) and to
/// the receive limits every implementation enforces ([`Limits::default`]).
///
/// Runs on every call: it reads the summaries the encoding made, and walks a value only to
/// name the place of a problem it found.
pub(crate) fn check_call(function: &str, args: &EncodedValue, options: &CallOptions) -> Result<()> {
    let limits = Limits::default();
    match args.as_bytes()[0] {
        0x90..=0x9f | 0xdc | 0xdd | 0xc0 => {}
        _ => {
            return Err(encode_error(
                function,
                "arguments must be a tuple or a sequence of positional arguments \
                 (use `(x,)` for a single argument)"
                    .into(),
            ))
        }
    }
    args.check_sendable(1, &limits, options.wide_integers)
        .map_err(|err| encode_error(function, err.in_arguments()))?;
    if let Some((key, err)) = &options.metadata_error {
        return Err(encode_error(function, format!("metadata '{key}': {err}")));
    }
    let mut size = CALL_OVERHEAD + args.encoded_len();
    for (key, value) in &options.metadata {
        value
            .check_sendable(2, &limits, options.wide_integers)
            .map_err(|err| encode_error(function, format!("metadata '{key}': {err}")))?;
        size += key.len() + value.encoded_len();
    }
    let texts = [
        ("the function name", Some(function)),
        ("the namespace", options.namespace.as_deref()),
        ("the client name", options.client_name.as_deref()),
    ];
    let keys = options
        .metadata
        .iter()
        .map(|(key, _)| ("a metadata key", Some(key.as_str())));
    for (what, text) in texts.into_iter().chain(keys) {
        let len = text.map_or(0, str::len);
        if len > limits.max_str_bin_len {
            return Err(encode_error(
                function,
                format!(
                    "{what} is a str of {len} bytes, over the limit of {} bytes",
                    limits.max_str_bin_len
                ),
            ));
        }
        size += len;
    }
    if options.metadata.len() + 3 > limits.max_items {
        return Err(encode_error(
            function,
            format!(
                "{} metadata entries exceed the limit of {} items",
                options.metadata.len(),
                limits.max_items
            ),
        ));
    }
    if size > limits.max_message_len {
        return Err(encode_error(
            function,
            format!(
                "the call message of about {size} bytes exceeds the limit of {} bytes",
                limits.max_message_len
            ),
        ));
    }
    Ok(())
}

/// Decodes a call's result into the caller's type.
/// Decodes a byte-string result (see `macro_support::decode_bin`).
pub(crate) fn decode_bin_result<R: BinValue>(function: &str, result: EncodedValue) -> Result<R> {
    decode_bin(&result).map_err(|source| Error::Decode {
        function: function.to_owned(),
        source,
    })
}

pub(crate) fn decode_result<R: DeserializeOwned>(
    function: &str,
    result: EncodedValue,
) -> Result<R> {
    result.decode().map_err(|source| Error::Decode {
        function: function.to_owned(),
        source,
    })
}
