//! The control socket's client (what `sablectl` uses).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::error::RpcError;
use crate::Json;

/// The largest response line the client accepts (a dump of a large table can be big).
const MAX_RESPONSE: usize = 256 << 20;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the path: no socket file, or a stale one (connection refused).
    #[error("no Sable server is listening on {}", path.display())]
    NotRunning {
        /// The socket path tried.
        path: PathBuf,
    },
    /// Any other I/O failure (permission denied on the socket, connection reset, ...).
    #[error("{}: {source}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// No complete answer arrived within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server answered something that is not a JSON-RPC response to our request.
    #[error("bad answer from the server: {0}")]
    Protocol(String),
    /// The method answered with an error.
    #[error("{0}")]
    Rpc(RpcError),
}

/// One connection to a control socket, for several calls in a row.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    stream: UnixStream,
    timeout: Duration,
    /// Bytes read past the end of the last response line.
    pending: Vec<u8>,
    next_id: u64,
}

impl Client {
    /// Connects to the control socket at `path`. `timeout` bounds each call (sending the
    /// request and receiving the whole answer).
    pub fn connect(path: &Path, timeout: Duration) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ClientError::NotRunning {
                path: path.to_owned(),
            },
            _ => ClientError::Io {
                path: path.to_owned(),
                source,
            },
        })?;
        Ok(Client {
            path: path.to_owned(),
            stream,
            timeout,
            pending: Vec::new(),
            next_id: 1,
        })
    }

    /// Calls `method` with positional `params`; the result, or the method's error as
    /// [`ClientError::Rpc`].
    pub fn call(&mut self, method: &str, params: Vec<Json>) -> Result<Json, ClientError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let mut request = Map::new();
        request.insert("jsonrpc".to_owned(), Value::from("2.0"));
        request.insert("method".to_owned(), Value::from(method));
        request.insert("params".to_owned(), Value::Array(params));
        request.insert("id".to_owned(), Value::from(id));
        let response = self.call_raw(&Value::Object(request))?;
        let Some(response) = response.as_object() else {
            return Err(ClientError::Protocol(format!(
                "expected a response object, got {response}"
            )));
        };
        if let Some(error) = response.get("error") {
            return match RpcError::from_json(error) {
                Some(error) => Err(ClientError::Rpc(error)),
                None => Err(ClientError::Protocol(format!("malformed error {error}"))),
            };
        }
        if response.get("id") != Some(&Value::from(id)) {
            return Err(ClientError::Protocol(format!(
                "answer for id {} while waiting for id {id}",
                response.get("id").unwrap_or(&Value::Null)
            )));
        }
        response
            .get("result")
            .cloned()
            .ok_or_else(|| ClientError::Protocol("response has neither result nor error".into()))
    }

    /// Sends one document (a request object or a batch array) and returns the response
    /// document as the server sent it.
    pub fn call_raw(&mut self, request: &Json) -> Result<Json, ClientError> {
        let deadline = Instant::now() + self.timeout;
        let mut line = request.to_string().into_bytes();
        line.push(b'\n');
        let sent = self.send(&line, deadline);
        // Even if sending failed (the server refused the connection and closed it), it may
        // have left an error line for us to read: prefer that over the write error.
        let answer = match (sent, self.receive_line(deadline)) {
            (_, Ok(answer)) => answer,
            (Err(error), Err(_)) | (Ok(()), Err(error)) => return Err(error),
        };
        serde_json::from_slice(&answer)
            .map_err(|error| ClientError::Protocol(format!("response is not JSON: {error}")))
    }

    fn send(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), ClientError> {
        let remaining = self.remaining(deadline)?;
        self.stream
            .set_write_timeout(Some(remaining))
            .map_err(|source| self.io(source))?;
        self.stream
            .write_all(bytes)
            .map_err(|source| self.io_or_timeout(source))
    }

    fn receive_line(&mut self, deadline: Instant) -> Result<Vec<u8>, ClientError> {
        let mut chunk = [0u8; 64 * 1024];
        let mut scanned = 0;
        loop {
            if let Some(offset) = self
                .pending
                .get(scanned..)
                .and_then(|rest| rest.iter().position(|&byte| byte == b'\n'))
            {
                let end = scanned + offset;
                let mut line: Vec<u8> = self.pending.drain(..=end).collect();
                line.pop();
                return Ok(line);
            }
            scanned = self.pending.len();
            if self.pending.len() > MAX_RESPONSE {
                return Err(ClientError::Protocol("response too large".to_owned()));
            }
            let remaining = self.remaining(deadline)?;
            self.stream
                .set_read_timeout(Some(remaining))
                .map_err(|source| self.io(source))?;
            let read = self
                .stream
                .read(&mut chunk)
                .map_err(|source| self.io_or_timeout(source))?;
            if read == 0 {
                return Err(ClientError::Protocol(
                    "the server closed the connection without an answer".to_owned(),
                ));
            }
            self.pending
                .extend_from_slice(chunk.get(..read).unwrap_or(&[]));
        }
    }

    fn remaining(&self, deadline: Instant) -> Result<Duration, ClientError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        // A zero timeout means "block forever" to the socket API: stop before that.
        if remaining < Duration::from_millis(1) {
            return Err(ClientError::Timeout(self.timeout));
        }
        Ok(remaining)
    }

    fn io(&self, source: io::Error) -> ClientError {
        ClientError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn io_or_timeout(&self, source: io::Error) -> ClientError {
        match source.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                ClientError::Timeout(self.timeout)
            }
            _ => self.io(source),
        }
    }
}

/// Calls `method` with positional `params` on the control socket at `path`, on a connection
/// of its own.
pub fn call(
    path: &Path,
    method: &str,
    params: Vec<Json>,
    timeout: Duration,
) -> Result<Json, ClientError> {
    Client::connect(path, timeout)?.call(method, params)
}

/// Sends one document (request object or batch array) to the control socket at `path` and
/// returns the whole response document.
pub fn call_raw(path: &Path, request: &Json, timeout: Duration) -> Result<Json, ClientError> {
    Client::connect(path, timeout)?.call_raw(request)
}
