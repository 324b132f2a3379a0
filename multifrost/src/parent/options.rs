//! Per-call options, and the encoding of arguments and decoding of results around a call.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::protocol::contract::CORRELATION_ID_KEY;
use crate::protocol::EncodedValue;

/// Per-call options: timeout, namespace, client name and metadata.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    pub(crate) timeout: Option<Option<Duration>>,
    pub(crate) namespace: Option<String>,
    pub(crate) client_name: Option<String>,
    pub(crate) metadata: Vec<(String, EncodedValue)>,
    pub(crate) correlation_id: Option<String>,
}

impl CallOptions {
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
        self.namespace = Some(namespace.into());
        self
    }

    /// The `client_name` the worker sees.
    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = Some(name.into());
        self
    }

    /// A metadata entry the worker sees in its call context. Values that cannot be encoded are
    /// sent as nil.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let value = EncodedValue::encode(&value).unwrap_or_else(|_| EncodedValue::nil());
        self.metadata.push((key.into(), value));
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

/// Encodes the positional arguments of a call: a tuple, a `Vec`, or `()` for none.
pub(crate) fn encode_args(function: &str, args: impl Serialize) -> Result<EncodedValue> {
    EncodedValue::encode(&args).map_err(|err| Error::Encode {
        function: function.to_owned(),
        reason: err.to_string(),
    })
}

/// Checks that already-encoded arguments are a msgpack array (or nil, for none).
pub(crate) fn check_positional(function: &str, args: &EncodedValue) -> Result<()> {
    match args.as_bytes()[0] {
        0x90..=0x9f | 0xdc | 0xdd | 0xc0 => Ok(()),
        _ => Err(Error::Encode {
            function: function.to_owned(),
            reason: "arguments must be a tuple or a sequence of positional arguments \
                     (use `(x,)` for a single argument)"
                .into(),
        }),
    }
}

/// Decodes a call's result into the caller's type.
pub(crate) fn decode_result<R: DeserializeOwned>(
    function: &str,
    result: EncodedValue,
) -> Result<R> {
    result.decode().map_err(|source| Error::Decode {
        function: function.to_owned(),
        source,
    })
}
