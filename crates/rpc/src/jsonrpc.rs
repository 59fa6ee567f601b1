//! JSON-RPC 2.0 over one document: the part every transport shares.

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::{Map, Value};

use crate::error::RpcError;
use crate::params::Params;
use crate::registry::Registry;
use crate::Json;

/// The default largest request document: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// Bounds on what a request may cost before it is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest document accepted, in bytes (for the control socket: the longest line,
    /// without its newline). Larger ones get -32600 "Request too large" and are not parsed.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

/// The answer to one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The response document: compact JSON on one line, no trailing newline.
    pub body: Vec<u8>,
    /// The HTTP status an HTTP transport should use: 200 on success and for batches, else
    /// the error's [`RpcError::http_status`].
    pub status: u16,
    /// The HTTP reason phrase: "OK", or the error's message (Kamailio puts the fault text
    /// there), with control characters replaced so it fits a status line.
    pub reason: String,
}

impl Response {
    /// The response document as text.
    pub fn body_str(&self) -> &str {
        // The body is always produced from `Value::to_string`, so it is UTF-8.
        std::str::from_utf8(&self.body).unwrap_or("")
    }

    fn ok(document: &Value) -> Self {
        Response {
            body: document.to_string().into_bytes(),
            status: 200,
            reason: "OK".to_owned(),
        }
    }

    fn failed(document: &Value, error: &RpcError) -> Self {
        let reason = error
            .wire_message()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Response {
            body: document.to_string().into_bytes(),
            status: error.http_status(),
            reason,
        }
    }
}

/// Answers one JSON-RPC document (the body of an HTTP request, one line of the control
/// socket, ...). Every document gets a response; see the crate documentation for the rules.
pub fn handle_request(registry: &Registry, body: &[u8], limits: &Limits) -> Response {
    if body.len() > limits.max_body {
        let error = RpcError::invalid_request("Request too large");
        return Response::failed(&error_document(&error, Some(&Value::Null)), &error);
    }
    let document: Value = match serde_json::from_slice(body) {
        Ok(document) => document,
        Err(parse) => {
            tracing::debug!(error = %parse, "RPC document is not JSON");
            let error = RpcError::parse_error();
            return Response::failed(&error_document(&error, Some(&Value::Null)), &error);
        }
    };
    match document {
        Value::Array(batch) if batch.is_empty() => {
            let error = RpcError::invalid_request("empty batch");
            Response::failed(&error_document(&error, Some(&Value::Null)), &error)
        }
        Value::Array(batch) => {
            let answers = batch
                .iter()
                .map(|request| answer(registry, request).0)
                .collect();
            Response::ok(&Value::Array(answers))
        }
        single => match answer(registry, &single) {
            (document, None) => Response::ok(&document),
            (document, Some(error)) => Response::failed(&document, &error),
        },
    }
}

/// Answers one request object: the response document, and the error when it is one.
fn answer(registry: &Registry, request: &Value) -> (Value, Option<RpcError>) {
    let Some(request) = request.as_object() else {
        let error = RpcError::invalid_request("a request must be a JSON object");
        return (error_document(&error, Some(&Value::Null)), Some(error));
    };
    let id = request.get("id");
    // Kamailio neither runs nor rejects a request without `"jsonrpc": "2.0"`: it answers an
    // empty result. Clients written against it may rely on that, so Sable does the same.
    if request.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return (result_document(Value::Object(Map::new()), id), None);
    }
    match run(registry, request) {
        Ok(result) => (result_document(result, id), None),
        Err(error) => (error_document(&error, id), Some(error)),
    }
}

fn run(registry: &Registry, request: &Map<String, Value>) -> Result<Json, RpcError> {
    let method = match request.get("method") {
        Some(Value::String(method)) => method,
        Some(_) => return Err(RpcError::invalid_request("method must be a string")),
        None => return Err(RpcError::invalid_request("method is missing")),
    };
    let params = Params::from_json(request.get("params"))?;
    tracing::debug!(method = %method, params = params.len(), "RPC call");
    match catch_unwind(AssertUnwindSafe(|| registry.call(method, &params))) {
        Ok(outcome) => outcome,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(method = %method, panic = %what, "RPC method panicked");
            Err(RpcError::internal(format!("method {method} failed")))
        }
    }
}

fn result_document(result: Json, id: Option<&Value>) -> Value {
    let mut document = Map::new();
    document.insert("jsonrpc".to_owned(), Value::from("2.0"));
    document.insert("result".to_owned(), result);
    if let Some(id) = id {
        document.insert("id".to_owned(), id.clone());
    }
    Value::Object(document)
}

/// An error response. `id` is `None` when the request had no `id` member (Kamailio: the
/// member is then left out) and `null` when no request object could be read at all (JSON-RPC
/// 2.0 asks for `"id": null` there).
pub(crate) fn error_document(error: &RpcError, id: Option<&Value>) -> Value {
    let mut document = Map::new();
    document.insert("jsonrpc".to_owned(), Value::from("2.0"));
    document.insert("error".to_owned(), error.to_json());
    if let Some(id) = id {
        document.insert("id".to_owned(), id.clone());
    }
    Value::Object(document)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::MethodKind;
    use serde_json::json;

    fn registry() -> Registry {
        let mut registry = Registry::new();
        registry
            .register(
                "core.echo",
                "Returns its parameters.",
                ["any"],
                MethodKind::List,
                |params: &Params| Ok(Value::Array(params.values().to_vec())),
            )
            .unwrap();
        registry
            .register(
                "test.int",
                "Takes an integer.",
                ["int"],
                MethodKind::Value,
                |params: &Params| Ok(json!(params.int(0)?)),
            )
            .unwrap();
        registry
            .register(
                "test.fail",
                "Always fails with 404.",
                Vec::<String>::new(),
                MethodKind::Value,
                |_: &Params| Err(RpcError::new(404, "Peer not found")),
            )
            .unwrap();
        registry
            .register(
                "test.panic",
                "Panics.",
                Vec::<String>::new(),
                MethodKind::Value,
                |_: &Params| panic!("handler bug"),
            )
            .unwrap();
        registry
    }

    fn handle(body: &str) -> (Value, u16, String) {
        let response = handle_request(&registry(), body.as_bytes(), &Limits::default());
        assert!(!response.body.contains(&b'\n'), "one line");
        (
            serde_json::from_slice(&response.body).unwrap(),
            response.status,
            response.reason,
        )
    }

    #[test]
    fn single_request() {
        let (doc, status, reason) =
            handle(r#"{"jsonrpc":"2.0","method":"core.echo","params":[1,"a"],"id":7}"#);
        assert_eq!(doc, json!({"jsonrpc": "2.0", "result": [1, "a"], "id": 7}));
        assert_eq!((status, reason.as_str()), (200, "OK"));
    }

    #[test]
    fn members_are_in_kamailios_order_and_compact() {
        let response = handle_request(
            &registry(),
            br#"{"jsonrpc":"2.0","method":"test.int","params":[3],"id":"abc"}"#,
            &Limits::default(),
        );
        assert_eq!(
            response.body_str(),
            r#"{"jsonrpc":"2.0","result":3,"id":"abc"}"#
        );
    }

    #[test]
    fn id_is_echoed_with_its_type_and_omitted_when_absent() {
        let (doc, ..) = handle(r#"{"jsonrpc":"2.0","method":"test.int","params":["5"]}"#);
        assert_eq!(doc, json!({"jsonrpc": "2.0", "result": 5}));
        let (doc, ..) = handle(r#"{"jsonrpc":"2.0","method":"test.int","params":[5],"id":null}"#);
        assert_eq!(doc, json!({"jsonrpc": "2.0", "result": 5, "id": null}));
    }

    #[test]
    fn invalid_json_is_a_parse_error() {
        for body in ["{", "", "   ", "{\"jsonrpc\":\"2.0\",", "nope"] {
            let (doc, status, reason) = handle(body);
            assert_eq!(
                doc,
                json!({"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"},
                       "id": null}),
                "{body:?}"
            );
            assert_eq!((status, reason.as_str()), (400, "Parse error"));
        }
    }

    #[test]
    fn a_document_that_is_not_an_object_is_an_invalid_request() {
        for body in ["1", "\"text\"", "null", "true"] {
            let (doc, status, _) = handle(body);
            assert_eq!(doc["error"]["code"], -32600, "{body}");
            assert_eq!(doc["error"]["message"], "Invalid Request");
            assert_eq!(doc["id"], Value::Null);
            assert_eq!(status, 500);
        }
    }

    #[test]
    fn method_must_be_a_string() {
        for body in [
            r#"{"jsonrpc":"2.0","method":5,"id":1}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
        ] {
            let (doc, ..) = handle(body);
            assert_eq!(doc["error"]["code"], -32600);
            assert_eq!(doc["id"], 1);
        }
    }

    #[test]
    fn unknown_method_is_kamailios_500() {
        let (doc, status, reason) = handle(r#"{"jsonrpc":"2.0","method":"no.such","id":1}"#);
        assert_eq!(
            doc,
            json!({"jsonrpc": "2.0", "error": {"code": 500, "message": "Method Not Found"},
                   "id": 1})
        );
        assert_eq!((status, reason.as_str()), (500, "Method Not Found"));
    }

    #[test]
    fn module_fault_codes_become_http_statuses() {
        let (doc, status, reason) = handle(r#"{"jsonrpc":"2.0","method":"test.fail","id":1}"#);
        assert_eq!(
            doc["error"],
            json!({"code": 404, "message": "Peer not found"})
        );
        assert_eq!((status, reason.as_str()), (404, "Peer not found"));
    }

    #[test]
    fn wrong_params_types() {
        let (doc, ..) = handle(r#"{"jsonrpc":"2.0","method":"core.echo","params":"x","id":1}"#);
        assert_eq!(doc["error"]["code"], -32602);
        assert_eq!(doc["error"]["message"], "Invalid params");
        let (doc, ..) = handle(r#"{"jsonrpc":"2.0","method":"test.int","params":["x"],"id":2}"#);
        assert_eq!(doc["error"]["code"], -32602);
        assert!(doc["error"]["data"]
            .as_str()
            .unwrap()
            .starts_with("parameter 1"));
        let (doc, ..) = handle(r#"{"jsonrpc":"2.0","method":"test.int","id":3}"#);
        assert_eq!(doc["error"]["data"], "parameter 1 is missing");
    }

    #[test]
    fn object_params_are_taken_in_order() {
        let (doc, ..) =
            handle(r#"{"jsonrpc":"2.0","method":"core.echo","params":{"b":2,"a":"x"},"id":1}"#);
        assert_eq!(doc["result"], json!([2, "x"]));
    }

    #[test]
    fn oversize_body_is_refused_without_parsing() {
        let limits = Limits { max_body: 16 };
        // Not JSON at all: a parse attempt would answer -32700.
        let response = handle_request(&registry(), &[b'{'; 17], &limits);
        let doc: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(doc["error"]["code"], -32600);
        assert_eq!(doc["error"]["data"], "Request too large");
        let at_limit = handle_request(&registry(), &[b' '; 16], &limits);
        let doc: Value = serde_json::from_slice(&at_limit.body).unwrap();
        assert_eq!(doc["error"]["code"], -32700);
    }

    #[test]
    fn missing_or_wrong_jsonrpc_member_answers_an_empty_result_without_running() {
        for body in [
            r#"{"method":"test.panic","id":4}"#,
            r#"{"jsonrpc":"1.0","method":"test.panic","id":4}"#,
            r#"{"jsonrpc":2.0,"method":"test.panic","id":4}"#,
        ] {
            let (doc, status, _) = handle(body);
            assert_eq!(
                doc,
                json!({"jsonrpc": "2.0", "result": {}, "id": 4}),
                "{body}"
            );
            assert_eq!(status, 200);
        }
    }

    #[test]
    fn a_panicking_handler_is_an_internal_error() {
        let (doc, status, _) = handle(r#"{"jsonrpc":"2.0","method":"test.panic","id":9}"#);
        assert_eq!(doc["error"]["code"], -32603);
        assert_eq!(doc["error"]["message"], "Internal error");
        assert_eq!(doc["id"], 9);
        assert_eq!(status, 500);
        // The registry still works afterwards.
        let (doc, ..) = handle(r#"{"jsonrpc":"2.0","method":"test.int","params":[1],"id":1}"#);
        assert_eq!(doc["result"], 1);
    }

    #[test]
    fn batch_answers_every_element_in_order() {
        let (doc, status, _) = handle(
            r#"[
                {"jsonrpc":"2.0","method":"test.int","params":[1],"id":1},
                {"jsonrpc":"2.0","method":"no.such","id":2},
                {"jsonrpc":"2.0","method":"test.int","params":[3]},
                5,
                {"method":"test.int","id":"x"}
            ]"#,
        );
        assert_eq!(status, 200);
        assert_eq!(
            doc,
            json!([
                {"jsonrpc": "2.0", "result": 1, "id": 1},
                {"jsonrpc": "2.0", "error": {"code": 500, "message": "Method Not Found"}, "id": 2},
                {"jsonrpc": "2.0", "result": 3},
                {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request",
                                             "data": "a request must be a JSON object"},
                 "id": null},
                {"jsonrpc": "2.0", "result": {}, "id": "x"}
            ])
        );
    }

    #[test]
    fn batch_of_requests_without_ids_still_answers_each() {
        let (doc, ..) = handle(
            r#"[{"jsonrpc":"2.0","method":"test.int","params":[1]},
                {"jsonrpc":"2.0","method":"test.int","params":[2]}]"#,
        );
        assert_eq!(
            doc,
            json!([{"jsonrpc": "2.0", "result": 1}, {"jsonrpc": "2.0", "result": 2}])
        );
    }

    #[test]
    fn empty_batch_is_an_invalid_request() {
        let (doc, ..) = handle("[]");
        assert_eq!(doc["error"]["code"], -32600);
        assert!(doc.is_object());
    }
}
