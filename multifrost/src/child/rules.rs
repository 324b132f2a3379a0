//! The child's dispatch rules (PROTOCOL.md section 4) as one pure function: what to do with one
//! received payload. The server acts on the [`Decision`]; the fuzzer drives the same function,
//! so fuzzing tests the real rules. And the rule for what a child sends back: [`check_reply`],
//! applied by the server to every result, typed or written by hand, before it is sent.

use std::sync::Arc;

use bytes::Bytes;

use super::describe::Description;
use super::worker::{CallContext, CallError, CallFlags, IncomingCall};
use crate::protocol::contract::{AUTH_TOKEN_KEY, DEADLINE_KEY, DESCRIBE, LIST_FUNCTIONS};
use crate::protocol::message::{as_f64, as_str};
use crate::protocol::{
    encode_heartbeat_reply, encode_response, quote, unix_now, EncodeError, EncodedValue, Limits,
    MessageKind, RawMessage, DEFAULT_NAMESPACE,
};

/// What a child does with one received payload.
#[derive(Debug)]
pub enum Decision {
    /// Nothing: why, for the log.
    Ignore(Ignored),
    /// Answer the call `id` with this error.
    Refuse {
        /// The id of the call refused.
        id: String,
        /// The error reply's text.
        error: CallError,
    },
    /// Run this call and answer it.
    Dispatch(IncomingCall),
    /// Send this reply, which the rules made themselves: a heartbeat's echo, the answer to
    /// `list_functions` or `multifrost.describe`.
    Reply(Vec<u8>),
    /// Stop serving (`shutdown`).
    Stop,
    /// The parent no longer waits for the call `id` (the `cancel` extension).
    Cancel(String),
}

/// Why a message gets no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignored {
    /// The payload is not a well-formed message.
    Malformed(String),
    /// `app` names another protocol version.
    OtherProtocol,
    /// A type a child does not act on (replies, output, unknown types).
    NotForAChild,
    /// A call without `id`: nobody could match its reply.
    NoId,
    /// A heartbeat over a limit: its metadata would be echoed back.
    HeartbeatOverLimit,
    /// A `shutdown` without the worker's shared token: anyone who can reach the port could
    /// stop the service otherwise.
    UnauthorizedShutdown,
    /// A `cancel` without the worker's shared token.
    UnauthorizedCancel,
}

impl std::fmt::Display for Ignored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ignored::Malformed(reason) => write!(f, "a malformed message: {reason}"),
            Ignored::OtherProtocol => f.write_str("a message of another protocol version"),
            Ignored::NotForAChild => f.write_str("a message type a child does not act on"),
            Ignored::NoId => f.write_str("a call without 'id': nobody could match its reply"),
            Ignored::HeartbeatOverLimit => f.write_str("a heartbeat over a limit"),
            Ignored::UnauthorizedShutdown => {
                f.write_str("a shutdown without the shared token in metadata.auth_token")
            }
            Ignored::UnauthorizedCancel => {
                f.write_str("a cancel without the shared token in metadata.auth_token")
            }
        }
    }
}

/// The rules of one worker: its namespace, its functions, its token and its receive limits.
#[derive(Debug, Clone)]
pub struct DispatchRules {
    /// Sorted, for a binary search: no hashing of every call's function name.
    functions: Vec<String>,
    namespace: String,
    auth_token: Option<String>,
    limits: Limits,
    /// The functions the runtime answers itself (`list_functions`, `multifrost.describe`),
    /// with their encoded result.
    builtins: Vec<(&'static str, EncodedValue)>,
}

impl DispatchRules {
    /// Rules for a worker answering in `namespace` with `functions`, requiring `auth_token` in
    /// every call when set.
    pub fn new(
        functions: impl IntoIterator<Item = String>,
        namespace: impl Into<String>,
        auth_token: Option<String>,
        limits: Limits,
    ) -> Self {
        DispatchRules {
            functions: {
                let mut functions: Vec<String> = functions.into_iter().collect();
                functions.sort_unstable();
                functions.dedup();
                functions
            },
            namespace: namespace.into(),
            auth_token,
            limits,
            builtins: Vec::new(),
        }
    }

    /// Also answer `list_functions` (unless the worker exposes a method of that name) and
    /// `multifrost.describe` from `description`.
    pub fn describing(mut self, description: &Description) -> Self {
        let names: Vec<&str> = description
            .methods
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        if !self.has_function(LIST_FUNCTIONS) {
            if let Ok(list) = EncodedValue::encode(&names) {
                self.builtins.push((LIST_FUNCTIONS, list));
            }
        }
        if let Ok(described) = EncodedValue::encode(description) {
            self.builtins.push((DESCRIBE, described));
        }
        self
    }

    /// What to do with one received payload.
    pub fn decide(&self, payload: Bytes) -> Decision {
        match self.admit(payload) {
            Admission::Decided(decision) => decision,
            Admission::Call(call) => match call.build(Arc::default()) {
                Ok(call) => Decision::Dispatch(call),
                Err(refusal) => {
                    let (id, error) = *refusal;
                    Decision::Refuse { id, error }
                }
            },
        }
    }

    /// [`decide`](Self::decide), a call to dispatch not yet made into an [`IncomingCall`]:
    /// building it is left to the thread that runs it (see [`AdmittedCall`]).
    pub(crate) fn admit(&self, payload: Bytes) -> Admission {
        let message = match RawMessage::parse(payload, &self.limits) {
            Ok(message) => message,
            Err(err) => return Decision::Ignore(Ignored::Malformed(err.to_string())).into(),
        };
        if !message.is_current_protocol() {
            return Decision::Ignore(Ignored::OtherProtocol).into();
        }
        let decision = match message.kind {
            MessageKind::Call => return self.admit_call(message),
            MessageKind::Heartbeat if message.violation.is_some() => {
                Decision::Ignore(Ignored::HeartbeatOverLimit)
            }
            MessageKind::Heartbeat => Decision::Reply(encode_heartbeat_reply(&message)),
            MessageKind::Shutdown if !self.authorized(&message) => {
                Decision::Ignore(Ignored::UnauthorizedShutdown)
            }
            MessageKind::Shutdown => Decision::Stop,
            MessageKind::Cancel => match message.id() {
                Some(id) if self.authorized(&message) => Decision::Cancel(id.to_owned()),
                Some(_) => Decision::Ignore(Ignored::UnauthorizedCancel),
                None => Decision::Ignore(Ignored::NoId),
            },
            _ => Decision::Ignore(Ignored::NotForAChild),
        };
        decision.into()
    }

    /// Every rule for a call but the last (the keys of its arguments and metadata, checked
    /// as they are split out by [`AdmittedCall::build`]).
    fn admit_call(&self, mut message: RawMessage) -> Admission {
        // Its id and function are read again, by the server and by `build`.
        message.check_texts();
        let Some(id) = message.id() else {
            return Decision::Ignore(Ignored::NoId).into();
        };
        let refuse = |error: CallError| {
            Admission::Decided(Decision::Refuse {
                id: id.to_owned(),
                error,
            })
        };
        if id.is_empty() {
            return refuse(CallError::new("Message missing 'id' field"));
        }
        if let Some(violation) = &message.violation {
            return refuse(CallError::new(format!("Message rejected: {violation}")));
        }
        match message.namespace() {
            None => {}
            Some(Some(ns)) if ns == self.namespace => {}
            Some(other) => {
                return refuse(CallError::new(format!(
                    "Namespace mismatch: call for namespace '{}' reached worker in namespace '{}'",
                    quote(other.unwrap_or("nil"), CallError::MAX_QUOTED),
                    self.namespace
                )))
            }
        }
        let Some(function) = message.function() else {
            return refuse(CallError::new("Message missing 'function' field"));
        };
        if function.starts_with('_') {
            return refuse(CallError::private_method(function));
        }
        let builtin = self
            .builtins
            .iter()
            .find(|(name, _)| *name == function)
            .map(|(_, result)| result);
        if builtin.is_none() && !self.has_function(function) {
            return refuse(CallError::function_not_found(function));
        }
        if !self.authorized(&message) {
            return refuse(CallError::new(
                "Unauthorized: this worker requires a shared token in metadata.auth_token",
            ));
        }
        let deadline = message.metadata_entry(DEADLINE_KEY).and_then(as_f64);
        if let Some(deadline) = deadline {
            let now = unix_now();
            if deadline <= now {
                return refuse(CallError::new(format!(
                    "{function}: not started: its deadline ({deadline:.3}, Unix seconds) passed \
                     {:.3} s before it arrived",
                    now - deadline
                )));
            }
        }
        if let Some(result) = builtin {
            return Decision::Reply(encode_response(id, result)).into();
        }
        Admission::Call(AdmittedCall { message, deadline })
    }

    /// Whether the worker has a method called `name`.
    fn has_function(&self, name: &str) -> bool {
        self.functions
            .binary_search_by(|function| function.as_str().cmp(name))
            .is_ok()
    }

    /// Whether a message carries the shared token, when the worker requires one.
    fn authorized(&self, message: &RawMessage) -> bool {
        let Some(expected) = &self.auth_token else {
            return true;
        };
        let given = message.metadata_entry(AUTH_TOKEN_KEY).and_then(as_str);
        given == Some(expected.as_str())
    }
}

/// What [`DispatchRules::admit`] comes to.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Anything but a call to dispatch.
    Decided(Decision),
    /// A call to dispatch, once built.
    Call(AdmittedCall),
}

impl From<Decision> for Admission {
    fn from(decision: Decision) -> Self {
        Admission::Decided(decision)
    }
}

/// A call that passed the rules, still the message it came in. Its id and function are read
/// from the message; [`build`](Self::build) makes the [`IncomingCall`] (its strings, its
/// arguments split out). A sync method's call is built by the thread that runs it, which
/// frees it too: the runtime's thread, which serves every other message, does neither.
#[derive(Debug)]
pub(crate) struct AdmittedCall {
    message: RawMessage,
    /// `metadata.deadline` (Unix seconds).
    deadline: Option<f64>,
}

impl AdmittedCall {
    /// The function called: one the worker has (see `admit_call`).
    pub fn function(&self) -> &str {
        self.message.function().unwrap_or_default()
    }

    /// The bytes of the call's id (valid UTF-8: see `admit_call`).
    pub fn id_bytes(&self) -> &[u8] {
        self.message.id_bytes().unwrap_or_default()
    }

    /// Whether the call carries a deadline.
    pub fn has_deadline(&self) -> bool {
        self.deadline.is_some()
    }

    /// The call, its context sharing `flags` with whoever may cancel it; or its refusal (id,
    /// error) when its arguments or metadata hold a map key that is not a str.
    pub fn build(self, flags: Arc<CallFlags>) -> Result<IncomingCall, Box<(String, CallError)>> {
        let message = self.message;
        let id = message.id().unwrap_or_default().to_owned();
        let function = message.function().unwrap_or_default().to_owned();
        let args = message.args().unwrap_or_default();
        let metadata = message.metadata_value();
        if let Some(error) = non_string_keys(&function, &args, metadata.as_ref()) {
            return Err(Box::new((id, error)));
        }
        let namespace = message.namespace().flatten().unwrap_or(DEFAULT_NAMESPACE);
        Ok(IncomingCall {
            args,
            context: CallContext {
                id,
                namespace: namespace.to_owned(),
                client_name: message.client_name().map(str::to_owned),
                metadata,
                deadline: self.deadline,
                flags,
                decoded_metadata: Default::default(),
            },
            function,
        })
    }
}

/// The error for a call whose arguments or metadata hold a map key that is not a str, naming
/// where. The portable contract has str keys only (PROTOCOL.md section 3); accepting them would
/// echo them back to a parent that cannot decode them (Python drops such a reply).
fn non_string_keys(
    function: &str,
    args: &[EncodedValue],
    metadata: Option<&EncodedValue>,
) -> Option<CallError> {
    // The parse recorded whether each value has one: nothing is walked for a clean call.
    let limits = Limits::default();
    if let Some((index, arg)) = args
        .iter()
        .enumerate()
        .find(|(_, arg)| arg.summary().non_string_key)
    {
        let error = arg.check_sendable(0, &limits, true).err()?;
        let at = match error.at() {
            Some(at) if !at.0.is_empty() => format!(", at {at}"),
            _ => String::new(),
        };
        return Some(CallError::new(format!(
            "{function}: argument {}{at}: map key {}",
            index + 1,
            non_string_key_problem(&error)
        )));
    }
    let metadata = metadata.filter(|metadata| metadata.summary().non_string_key)?;
    let error = metadata.check_sendable(0, &limits, true).err()?;
    Some(CallError::new(format!("{function}: metadata: {error}")))
}

fn non_string_key_problem(error: &EncodeError) -> String {
    match error {
        EncodeError::NonStringKey { key, .. } => {
            format!("{key} is not a string; map keys must be strings")
        }
        other => other.to_string(),
    }
}

/// Checks what a worker returned before it is sent back: within the receive limits every
/// implementation enforces ([`Limits::default`], the result sitting at level 2 of the reply),
/// with str map keys only, and with integers within i64 unless `wide_integers` (for parents
/// known to take them: a Rust parent does). PROTOCOL.md section 3. The error names the
/// function and where the problem is, and is sent as the error reply instead.
pub fn check_reply(
    function: &str,
    result: &EncodedValue,
    wide_integers: bool,
) -> Result<(), CallError> {
    let limits = Limits::default();
    result
        .check_sendable(1, &limits, wide_integers)
        .map_err(|err| CallError::new(format!("{function}: cannot send the result: {err}")))?;
    // The reply's own keys and ids take a few hundred bytes.
    let size = result.encoded_len() + 256;
    if size > limits.max_message_len {
        return Err(CallError::new(format!(
            "{function}: cannot send the result: a reply of about {size} bytes exceeds the \
             limit of {} bytes",
            limits.max_message_len
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{encode_shutdown, MessageWriter};
    use rmpv::Value;

    fn rules(token: Option<&str>) -> DispatchRules {
        DispatchRules::new(
            ["echo".to_owned()],
            DEFAULT_NAMESPACE,
            token.map(str::to_owned),
            Limits::default(),
        )
    }

    #[test]
    fn a_shutdown_needs_the_token_when_the_worker_has_one() {
        let token = EncodedValue::encode("s3cret").unwrap();
        let wrong = EncodedValue::encode("guess").unwrap();
        let guarded = rules(Some("s3cret"));
        for stranger in [encode_shutdown(None), encode_shutdown(Some(&wrong))] {
            assert!(matches!(
                guarded.decide(stranger.into()),
                Decision::Ignore(Ignored::UnauthorizedShutdown)
            ));
        }
        assert!(matches!(
            guarded.decide(encode_shutdown(Some(&token)).into()),
            Decision::Stop
        ));
        assert!(matches!(
            rules(None).decide(encode_shutdown(None).into()),
            Decision::Stop
        ));
    }

    #[test]
    fn a_call_with_a_non_string_map_key_is_refused_naming_where() {
        let arg = EncodedValue::from_value(&Value::Map(vec![(
            Value::from("outer"),
            Value::Map(vec![(Value::from(7), Value::from("x"))]),
        )]))
        .unwrap();
        let mut writer = MessageWriter::new(MessageKind::Call, "id-1", 2, 16);
        writer.str_field("function", "echo");
        writer.array_field("args", [&[0xc0][..], arg.as_bytes()].into_iter());
        match rules(None).decide(writer.finish().into()) {
            Decision::Refuse { id, error } => {
                assert_eq!(id, "id-1");
                assert_eq!(
                    error.message(),
                    "echo: argument 2, at [\"outer\"]: map key int 7 is not a string; map keys \
                     must be strings"
                );
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_long_unknown_name_is_quoted_briefly() {
        let name = "n".repeat(100_000);
        let mut writer = MessageWriter::new(MessageKind::Call, "id-2", 2, 16);
        writer.str_field("function", &name);
        writer.array_field("args", std::iter::empty());
        match rules(None).decide(writer.finish().into()) {
            Decision::Refuse { error, .. } => {
                assert!(error.message().len() < 400, "{}", error.message().len());
                assert!(error.message().ends_with("… (100000 bytes)' not found"));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
