//! `sable-rpc`: Sable's control plane core, with no SIP in it.
//!
//! What it owns:
//! - JSON-RPC 2.0 over one document ([`handle_request`]), following Kamailio's jsonrpcs
//!   conventions (method names, fault codes, result shapes);
//! - the method [`Registry`] where the core and the modules add their methods, with help texts
//!   and signatures; `system.listMethods`, `system.methodHelp` and `system.methodSignature`
//!   are built in;
//! - typed positional parameters ([`Params`]) and the fault type ([`RpcError`]);
//! - the control socket: [`ControlServer`] (a unix stream socket, one document per line) and
//!   its client ([`Client`], [`call`], [`call_raw`]) that `sablectl` uses.
//!
//! What it does not own: the HTTP transport (xhttp + `jsonrpc_dispatch()` in the modules
//! crate, which calls [`handle_request`] and uses [`Response::status`]), and the methods
//! themselves (the engine and the modules register them). No tokio: the control plane runs on
//! plain threads, one per connection, away from the SIP workers.
//!
//! # Request rules
//!
//! - A document is a request object or a batch (an array of requests).
//! - A document larger than [`Limits::max_body`] (1 MiB by default) gets -32600 with data
//!   "Request too large" and is not parsed.
//! - Invalid JSON, or an empty document, gets -32700 "Parse error" (HTTP 400) with
//!   `"id": null`. **Difference from Kamailio**, which sends no answer at all and leaves the
//!   client hanging (defect D12 of the reference notes).
//! - A request that is not an object gets -32600 with `"id": null`.
//! - A request whose `"jsonrpc"` member is missing or not the string `"2.0"` is answered
//!   `"result": {}` (with its id) **without running the method**: that is what Kamailio does,
//!   and clients written against Kamailio may depend on it.
//! - `"method"` missing or not a string: -32600. An unknown method: code 500,
//!   "Method Not Found" (Kamailio's answer, not JSON-RPC's -32601).
//! - `"params"`: an array, or an object whose values are taken in the order sent (names are
//!   ignored, as in Kamailio), or absent. Anything else: -32602.
//! - `"id"` is echoed with its type. A request without `id` still runs and is still answered;
//!   the answer has no `id` member (Kamailio has no notification semantics).
//! - A handler that panics is answered -32603 "Internal error"; the server keeps running.
//!
//! # Batches
//!
//! **Beyond Kamailio**, which does not understand them (it answers a batch with an empty
//! result): every element of a batch is answered, in order, in one array, including the
//! elements without an id, for the reason above. An empty batch is one -32600 error.
//!
//! # Errors on the wire
//!
//! `{"code": C, "message": M}`. For the standard codes (-32700, -32600, -32601, -32602,
//! -32603) `M` is the standard message, as in Kamailio; the method's own text, when it says
//! more (e.g. "parameter 2 is missing"), travels in a `data` member. Other codes (Kamailio
//! modules use 400, 404, 500, ...) carry the method's text as `M`. See [`RpcError`].
//!
//! # Results
//!
//! A [`MethodKind::List`] method always answers an array (Kamailio's `RET_ARRAY`; Sable also
//! uses it for the list commands Kamailio gets wrong, defect D11). Objects keep the order their
//! members were added in, so results print field by field as the handler built them.

mod client;
mod error;
mod jsonrpc;
mod params;
mod registry;
mod server;

pub use crate::client::{call, call_raw, Client, ClientError};
pub use crate::error::{
    RpcError, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR,
    SERVER_ERROR,
};
pub use crate::jsonrpc::{handle_request, Limits, Response, DEFAULT_MAX_BODY};
pub use crate::params::Params;
pub use crate::registry::{DuplicateMethod, Handler, MethodInfo, MethodKind, Registry};
pub use crate::server::ControlServer;

/// A JSON value.
pub type Json = serde_json::Value;

/// Where the control socket lives unless configured otherwise: the server's default and
/// `sablectl`'s (which `$SABLE_CTL` overrides).
pub const DEFAULT_SOCKET: &str = "/run/sable/sable_ctl";
