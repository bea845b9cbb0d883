//! What the host does with a message.

use serde::Serialize;

use crate::RpcError;

/// What the host does with a message. A request's first `Reject` or `Respond`
/// ends its walk along the chain, and the answer made walks back through the
/// plugins before this one, as any answer does; an answer's `Reject` replaces it
/// with the error, which the plugins before still see (`wit/interceptor.wit`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Forward the message unchanged. Costs nothing: return this whenever you
    /// did not change anything.
    Pass,
    /// Forward the message with this payload (JSON text) instead: new `params`
    /// for requests and notifications, a new `result` for responses.
    Rewrite(String),
    /// Requests only: do not forward; answer the sender with this `result`
    /// (JSON text). For other kinds the host treats it as `Rewrite`.
    Respond(String),
    /// Requests: answer the sender with this error. Responses and errors:
    /// deliver this error instead. Notifications: drop the notification.
    Reject(RpcError),
}

impl Verdict {
    /// Forward the message with `payload`, serialized to JSON. A value that does
    /// not serialize (a map with non-string keys, say) gives a `Reject` with
    /// [`RpcError::INTERNAL_ERROR`], so a bug fails closed.
    pub fn rewrite_json<T: Serialize + ?Sized>(payload: &T) -> Verdict {
        match serde_json::to_string(payload) {
            Ok(text) => Verdict::Rewrite(text),
            Err(err) => serialize_failed(err),
        }
    }

    /// Answer a request with `result`, serialized to JSON (see
    /// [`Verdict::rewrite_json`] for serialization failures).
    pub fn respond_json<T: Serialize + ?Sized>(result: &T) -> Verdict {
        match serde_json::to_string(result) {
            Ok(text) => Verdict::Respond(text),
            Err(err) => serialize_failed(err),
        }
    }

    /// Reject with this code and message.
    pub fn reject(code: i64, message: impl Into<String>) -> Verdict {
        Verdict::Reject(RpcError::new(code, message))
    }

    /// Reject with this code, message and `data` (serialized to JSON; dropped if
    /// it does not serialize).
    pub fn reject_with_data<T: Serialize + ?Sized>(
        code: i64,
        message: impl Into<String>,
        data: &T,
    ) -> Verdict {
        Verdict::Reject(RpcError {
            code,
            message: message.into(),
            data: serde_json::to_string(data).ok(),
        })
    }

    /// Whether this is `Pass`.
    pub fn is_pass(&self) -> bool {
        matches!(self, Verdict::Pass)
    }

    /// The JSON text of a `Rewrite` or `Respond`, parsed; `None` for the others
    /// or when the text is not JSON. Meant for tests.
    pub fn json(&self) -> Option<serde_json::Value> {
        match self {
            Verdict::Rewrite(text) | Verdict::Respond(text) => serde_json::from_str(text).ok(),
            Verdict::Pass | Verdict::Reject(_) => None,
        }
    }
}

fn serialize_failed(err: serde_json::Error) -> Verdict {
    Verdict::reject(
        RpcError::INTERNAL_ERROR,
        format!("plugin produced a payload that does not serialize: {err}"),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    #[test]
    fn json_helpers_serialize_and_fail_closed() {
        assert_eq!(
            Verdict::rewrite_json(&json!({"a": 1})),
            Verdict::Rewrite(r#"{"a":1}"#.into())
        );
        assert_eq!(
            Verdict::respond_json(&[1, 2]),
            Verdict::Respond("[1,2]".into())
        );
        assert_eq!(Verdict::respond_json(&[1, 2]).json(), Some(json!([1, 2])));
        // Maps with non-string keys do not serialize to JSON.
        let bad: BTreeMap<(i32, i32), i32> = BTreeMap::from([((1, 2), 3)]);
        match Verdict::rewrite_json(&bad) {
            Verdict::Reject(err) => assert_eq!(err.code, RpcError::INTERNAL_ERROR),
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn reject_helpers() {
        assert_eq!(
            Verdict::reject(-32001, "no"),
            Verdict::Reject(RpcError::new(-32001, "no"))
        );
        let with_data = Verdict::reject_with_data(-32001, "no", &json!({"why": "policy"}));
        assert_eq!(
            with_data,
            Verdict::Reject(RpcError {
                code: -32001,
                message: "no".into(),
                data: Some(r#"{"why":"policy"}"#.into())
            })
        );
        assert!(Verdict::Pass.is_pass() && !with_data.is_pass());
        assert_eq!(with_data.json(), None);
    }
}
