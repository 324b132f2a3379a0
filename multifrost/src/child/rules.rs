//! The child's dispatch rules (PROTOCOL.md section 4) as one pure function: what to do with one
//! received payload. The server acts on the [`Decision`]; the fuzzer drives the same function,
//! so fuzzing tests the real rules.

use std::collections::HashSet;

use bytes::Bytes;

use super::worker::{CallContext, CallError, IncomingCall};
use crate::protocol::contract::{AUTH_TOKEN_KEY, DEADLINE_KEY};
use crate::protocol::{
    encode_heartbeat_reply, unix_now, Limits, MessageKind, RawMessage, DEFAULT_NAMESPACE,
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
    /// Answer a heartbeat with this encoded reply.
    Heartbeat(Vec<u8>),
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
    /// A message that acts, without the token this worker requires.
    Unauthorized,
}

impl std::fmt::Display for Ignored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ignored::Malformed(reason) => write!(f, "a malformed message: {reason}"),
            Ignored::OtherProtocol => f.write_str("a message of another protocol version"),
            Ignored::NotForAChild => f.write_str("a message type a child does not act on"),
            Ignored::NoId => f.write_str("a call without 'id': nobody could match its reply"),
            Ignored::HeartbeatOverLimit => f.write_str("a heartbeat over a limit"),
            Ignored::Unauthorized => f.write_str("a message without the required token"),
        }
    }
}

/// The rules of one worker: its namespace, its functions, its token and its receive limits.
#[derive(Debug, Clone)]
pub struct DispatchRules {
    functions: HashSet<String>,
    namespace: String,
    auth_token: Option<String>,
    limits: Limits,
}

impl DispatchRules {
    /// Whether `message` carries the token this worker requires (always, when it requires
    /// none).
    fn authorized(&self, message: &RawMessage) -> bool {
        let Some(expected) = &self.auth_token else {
            return true;
        };
        message
            .metadata()
            .iter()
            .find(|(k, _)| k.as_str() == Some(AUTH_TOKEN_KEY))
            .and_then(|(_, v)| v.as_str())
            == Some(expected.as_str())
    }

    /// Rules for a worker answering in `namespace` with `functions`, requiring `auth_token` in
    /// every call when set.
    pub fn new(
        functions: impl IntoIterator<Item = String>,
        namespace: impl Into<String>,
        auth_token: Option<String>,
        limits: Limits,
    ) -> Self {
        DispatchRules {
            functions: functions.into_iter().collect(),
            namespace: namespace.into(),
            auth_token,
            limits,
        }
    }

    /// What to do with one received payload.
    pub fn decide(&self, payload: Bytes) -> Decision {
        let message = match RawMessage::parse(payload, &self.limits) {
            Ok(message) => message,
            Err(err) => return Decision::Ignore(Ignored::Malformed(err.to_string())),
        };
        if !message.is_current_protocol() {
            return Decision::Ignore(Ignored::OtherProtocol);
        }
        match message.kind {
            MessageKind::Call => self.decide_call(message),
            MessageKind::Heartbeat if message.violation.is_some() => {
                Decision::Ignore(Ignored::HeartbeatOverLimit)
            }
            MessageKind::Heartbeat => Decision::Heartbeat(encode_heartbeat_reply(&message)),
            MessageKind::Shutdown => Decision::Stop,
            MessageKind::Cancel => match message.id.clone() {
                Some(id) if self.authorized(&message) => Decision::Cancel(id),
                Some(_) => Decision::Ignore(Ignored::Unauthorized),
                None => Decision::Ignore(Ignored::NoId),
            },
            _ => Decision::Ignore(Ignored::NotForAChild),
        }
    }

    fn decide_call(&self, message: RawMessage) -> Decision {
        let Some(id) = message.id.clone() else {
            return Decision::Ignore(Ignored::NoId);
        };
        let refuse = |error: CallError| Decision::Refuse {
            id: id.clone(),
            error,
        };
        if id.is_empty() {
            return refuse(CallError::new("Message missing 'id' field"));
        }
        if let Some(violation) = &message.violation {
            return refuse(CallError::new(format!("Message rejected: {violation}")));
        }
        match &message.namespace {
            None => {}
            Some(Some(ns)) if *ns == self.namespace => {}
            Some(other) => {
                return refuse(CallError::new(format!(
                    "Namespace mismatch: call for namespace '{}' reached worker in namespace '{}'",
                    other.as_deref().unwrap_or("nil"),
                    self.namespace
                )))
            }
        }
        let Some(function) = message.function.clone() else {
            return refuse(CallError::new("Message missing 'function' field"));
        };
        if function.starts_with('_') {
            return refuse(CallError::private_method(&function));
        }
        if !self.functions.contains(&function) {
            return refuse(CallError::function_not_found(&function));
        }
        if !self.authorized(&message) {
            return refuse(CallError::new(
                "Unauthorized: this worker requires a shared token in metadata.auth_token",
            ));
        }
        let metadata = message.metadata();
        let deadline = metadata
            .iter()
            .find(|(k, _)| k.as_str() == Some(DEADLINE_KEY))
            .and_then(|(_, v)| v.as_f64());
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
        Decision::Dispatch(IncomingCall {
            args: message.args().unwrap_or_default(),
            context: CallContext {
                id,
                namespace: message
                    .namespace
                    .clone()
                    .flatten()
                    .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
                client_name: message.client_name.clone(),
                metadata,
                ..CallContext::default()
            },
            function,
        })
    }
}
