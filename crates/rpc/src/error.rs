//! The error a method (or the protocol layer) answers with, and how it looks on the wire.

use serde_json::{Map, Value};

/// JSON-RPC 2.0 "Parse error": the document is not valid JSON.
pub const PARSE_ERROR: i32 = -32700;
/// JSON-RPC 2.0 "Invalid Request": the document is JSON but not a request.
pub const INVALID_REQUEST: i32 = -32600;
/// JSON-RPC 2.0 "Method not found". Sable's registry answers Kamailio's `500 "Method Not
/// Found"` instead (see [`RpcError::not_found`]); the code exists for handlers that want it.
pub const METHOD_NOT_FOUND: i32 = -32601;
/// JSON-RPC 2.0 "Invalid params".
pub const INVALID_PARAMS: i32 = -32602;
/// JSON-RPC 2.0 "Internal error".
pub const INTERNAL_ERROR: i32 = -32603;
/// The implementation-defined "server error" code (JSON-RPC reserves -32000..-32099). Kamailio
/// turns a fault with code 0 into this code; Sable does the same.
pub const SERVER_ERROR: i32 = -32000;

/// An RPC failure: Kamailio's `rpc->fault(code, text)`.
///
/// `code` is whatever the method chose (Kamailio modules use HTTP-like codes such as 400, 404,
/// 500) or one of the JSON-RPC codes above. `message` is the method's own text. On the wire
/// ([`RpcError::to_json`]) the five standard JSON-RPC codes carry their standard message, as
/// Kamailio does, and the method's text, when it says more, travels in the `data` member; the
/// client ([`crate::Client`]) reads it back from there, so an error survives the round trip.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} - {message}")]
pub struct RpcError {
    /// The fault code.
    pub code: i32,
    /// The fault text.
    pub message: String,
}

impl RpcError {
    /// A fault with the method's own code and text. Code 0 becomes -32000, as in Kamailio.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        let code = if code == 0 { SERVER_ERROR } else { code };
        RpcError {
            code,
            message: message.into(),
        }
    }

    /// Unknown method: Kamailio answers code 500 with the text "Method Not Found" (not the
    /// JSON-RPC -32601), and Sable keeps that so scripts and monitoring see the same thing.
    pub fn not_found() -> Self {
        RpcError::new(500, "Method Not Found")
    }

    /// Wrong, missing or mistyped parameters (-32602). `message` says which one and why.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        RpcError::new(INVALID_PARAMS, message)
    }

    /// The server failed (-32603): a handler panicked, or an internal invariant broke.
    pub fn internal(message: impl Into<String>) -> Self {
        RpcError::new(INTERNAL_ERROR, message)
    }

    /// The document is not JSON (-32700). Kamailio sends no reply at all here (defect D12);
    /// Sable answers.
    pub fn parse_error() -> Self {
        RpcError::new(PARSE_ERROR, "Parse error")
    }

    /// The document is JSON but not a valid request (-32600).
    pub fn invalid_request(message: impl Into<String>) -> Self {
        RpcError::new(INVALID_REQUEST, message)
    }

    /// The standard message of a standard JSON-RPC code, if `code` is one.
    pub fn standard_message(code: i32) -> Option<&'static str> {
        match code {
            PARSE_ERROR => Some("Parse error"),
            INVALID_REQUEST => Some("Invalid Request"),
            METHOD_NOT_FOUND => Some("Method not found"),
            INVALID_PARAMS => Some("Invalid params"),
            INTERNAL_ERROR => Some("Internal error"),
            _ => None,
        }
    }

    /// The `message` member as sent: the standard text for a standard code, else the
    /// method's text.
    pub fn wire_message(&self) -> &str {
        RpcError::standard_message(self.code).unwrap_or(&self.message)
    }

    /// The HTTP status an HTTP transport answers with (Kamailio: the fault code when it lies
    /// in 101..=699, else 500). One exception, decided for Sable (defect D12): a parse error
    /// is `400`, since Kamailio sends nothing at all there.
    pub fn http_status(&self) -> u16 {
        if self.code == PARSE_ERROR {
            return 400;
        }
        match u16::try_from(self.code) {
            Ok(code) if code > 100 && code < 700 => code,
            _ => 500,
        }
    }

    /// The JSON-RPC `error` member: `{"code": C, "message": M}` plus `"data": TEXT` when the
    /// method's text differs from the standard message that replaced it.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("code".to_owned(), Value::from(self.code));
        object.insert("message".to_owned(), Value::from(self.wire_message()));
        if self.wire_message() != self.message {
            object.insert("data".to_owned(), Value::from(self.message.clone()));
        }
        Value::Object(object)
    }

    /// Reads an `error` member back (the inverse of [`RpcError::to_json`]). `None` when it is
    /// not an object with an integer `code`.
    pub fn from_json(value: &Value) -> Option<Self> {
        let object = value.as_object()?;
        let code = i32::try_from(object.get("code")?.as_i64()?).ok()?;
        let message = match (object.get("data"), object.get("message")) {
            (Some(Value::String(data)), _) => data.clone(),
            (_, Some(Value::String(message))) => message.clone(),
            _ => String::new(),
        };
        Some(RpcError { code, message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn standard_codes_carry_standard_messages_and_keep_the_detail_in_data() {
        let error = RpcError::invalid_params("parameter 1: expected an integer");
        assert_eq!(
            error.to_json(),
            json!({"code": -32602, "message": "Invalid params",
                   "data": "parameter 1: expected an integer"})
        );
        assert_eq!(RpcError::from_json(&error.to_json()), Some(error));
    }

    #[test]
    fn parse_error_has_no_data_member() {
        assert_eq!(
            RpcError::parse_error().to_json(),
            json!({"code": -32700, "message": "Parse error"})
        );
    }

    #[test]
    fn module_codes_keep_their_own_text() {
        let error = RpcError::new(404, "Peer not found");
        assert_eq!(
            error.to_json(),
            json!({"code": 404, "message": "Peer not found"})
        );
        assert_eq!(error.http_status(), 404);
    }

    #[test]
    fn unknown_method_is_kamailios_500() {
        let error = RpcError::not_found();
        assert_eq!(error.code, 500);
        assert_eq!(error.message, "Method Not Found");
        assert_eq!(error.http_status(), 500);
    }

    #[test]
    fn http_status_follows_kamailio_except_parse_error() {
        assert_eq!(RpcError::new(400, "x").http_status(), 400);
        assert_eq!(RpcError::new(100, "x").http_status(), 500);
        assert_eq!(RpcError::new(700, "x").http_status(), 500);
        assert_eq!(RpcError::new(699, "x").http_status(), 699);
        assert_eq!(RpcError::invalid_request("x").http_status(), 500);
        assert_eq!(RpcError::internal("x").http_status(), 500);
        assert_eq!(RpcError::parse_error().http_status(), 400);
    }

    #[test]
    fn code_zero_becomes_server_error() {
        assert_eq!(RpcError::new(0, "x").code, SERVER_ERROR);
    }
}
