//! The control socket: newline-delimited JSON-RPC over a unix stream socket.

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;

use crate::error::{RpcError, SERVER_ERROR};
use crate::jsonrpc::{error_document, handle_request, Limits};
use crate::registry::Registry;

/// How long a response write may block on a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`ControlServer::stop`] waits for its threads before leaving them behind.
const JOIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A running control-socket server.
///
/// One accept thread, plus one thread per connection (at most `max_connections`; a
/// connection beyond that waits up to 200 ms for a slot, then gets one error line, -32000
/// "too many connections", and is closed).
/// Each line a client sends is one JSON-RPC document (a request object or a batch array);
/// each answer is one line. A line longer than the body limit gets a -32600 "Request too
/// large" line and the connection is closed, since the rest of that line cannot be trusted
/// to be a request boundary. Blank lines are ignored.
///
/// [`ControlServer::stop`] (or dropping the server) stops accepting, closes every connection,
/// waits a bounded time for the threads and removes the socket file, if it is still the one
/// this server created.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    stop: Arc<AtomicBool>,
    accept: JoinHandle<()>,
    connections: Arc<Mutex<Connections>>,
    /// Device and inode of the socket file we bound, so stopping never removes a socket a
    /// newer server has put at the same path.
    identity: Option<(u64, u64)>,
}

#[derive(Debug, Default)]
struct Connections {
    next_id: u64,
    /// A second handle on every open connection, to shut it down on stop.
    streams: HashMap<u64, UnixStream>,
    threads: Vec<JoinHandle<()>>,
}

impl ControlServer {
    /// Starts serving `registry` on a unix socket at `path` with the default [`Limits`].
    ///
    /// The parent directory is created if missing. If a socket file already exists there and a
    /// server accepts on it, start fails (`AddrInUse`); if nothing accepts on it, it is a stale
    /// file from a server that died, and it is replaced. A path that exists and is not a socket
    /// is never removed (`AlreadyExists`). The socket file gets permissions `mode` (e.g.
    /// `0o660`) once bound.
    pub fn start(
        path: &Path,
        mode: u32,
        registry: Arc<Registry>,
        max_connections: usize,
    ) -> io::Result<ControlServer> {
        ControlServer::start_with_limits(path, mode, registry, max_connections, Limits::default())
    }

    /// [`ControlServer::start`] with explicit limits.
    pub fn start_with_limits(
        path: &Path,
        mode: u32,
        registry: Arc<Registry>,
        max_connections: usize,
        limits: Limits,
    ) -> io::Result<ControlServer> {
        let shown = path.display();
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                fs::create_dir_all(parent).map_err(|error| {
                    io::Error::new(
                        error.kind(),
                        format!("cannot create directory {}: {error}", parent.display()),
                    )
                })?;
            }
        }
        remove_stale_socket(path)?;
        let listener = UnixListener::bind(path).map_err(|error| {
            io::Error::new(error.kind(), format!("cannot bind {shown}: {error}"))
        })?;
        let identity = fs::symlink_metadata(path)
            .ok()
            .map(|meta| (meta.dev(), meta.ino()));
        if let Err(error) = fs::set_permissions(path, fs::Permissions::from_mode(mode)) {
            // Do not leave a socket with the wrong permissions behind.
            let _ = fs::remove_file(path);
            return Err(io::Error::new(
                error.kind(),
                format!("cannot set mode {mode:o} on {shown}: {error}"),
            ));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Connections::default()));
        let accept = {
            let stop = Arc::clone(&stop);
            let connections = Arc::clone(&connections);
            thread::Builder::new()
                .name("rpc-accept".to_owned())
                .spawn(move || {
                    accept_loop(
                        &listener,
                        &stop,
                        &connections,
                        &registry,
                        max_connections,
                        limits,
                    );
                })
        };
        let accept = match accept {
            Ok(handle) => handle,
            Err(error) => {
                let _ = fs::remove_file(path);
                return Err(error);
            }
        };
        tracing::info!(path = %shown, mode = format_args!("{mode:o}"), "control socket listening");
        Ok(ControlServer {
            path: path.to_owned(),
            running: Some(Running {
                stop,
                accept,
                connections,
                identity,
            }),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting, closes every connection, waits (bounded) for the threads and removes
    /// the socket file.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        running.stop.store(true, Ordering::SeqCst);
        // The accept thread is blocked in accept(): a connection of our own wakes it up.
        let _ = UnixStream::connect(&self.path);
        if !join_bounded(running.accept) {
            tracing::warn!(path = %self.path.display(), "control socket accept thread did not stop");
        }
        // The accept thread is gone (or stuck), so no new connection joins the list now.
        let threads = {
            let mut connections = running.connections.lock();
            for stream in connections.streams.values() {
                let _ = stream.shutdown(Shutdown::Both);
            }
            std::mem::take(&mut connections.threads)
        };
        for thread in threads {
            if !join_bounded(thread) {
                tracing::warn!("control socket connection thread did not stop");
            }
        }
        let ours = fs::symlink_metadata(&self.path)
            .ok()
            .map(|meta| (meta.dev(), meta.ino()));
        if ours.is_some() && ours == running.identity {
            let _ = fs::remove_file(&self.path);
        }
        tracing::info!(path = %self.path.display(), "control socket closed");
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Waits up to [`JOIN_TIMEOUT`] for a thread; `false` if it is still running (it is then left
/// detached rather than hanging the caller).
fn join_bounded(handle: JoinHandle<()>) -> bool {
    let deadline = Instant::now() + JOIN_TIMEOUT;
    while !handle.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
    let _ = handle.join();
    true
}

fn remove_stale_socket(path: &Path) -> io::Result<()> {
    let shown = path.display();
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{shown} exists and is not a socket; not replacing it"),
        ));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another server is already listening on {shown}"),
        )),
        Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %shown, "removing stale control socket");
            fs::remove_file(path).map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("cannot remove stale socket {shown}: {error}"),
                )
            })
        }
        Err(error) => Err(io::Error::new(
            error.kind(),
            format!("cannot check whether a server listens on {shown}: {error}"),
        )),
    }
}

fn accept_loop(
    listener: &UnixListener,
    stop: &AtomicBool,
    connections: &Arc<Mutex<Connections>>,
    registry: &Arc<Registry>,
    max_connections: usize,
    limits: Limits,
) {
    for incoming in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let stream = match incoming {
            Ok(stream) => stream,
            Err(error) => {
                // Typically out of file descriptors: back off instead of spinning.
                tracing::warn!(%error, "control socket accept failed");
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let mut guard = connections.lock();
        guard.threads.retain(|thread| !thread.is_finished());
        // At the limit, a burst of short requests usually frees a slot within moments
        // (their threads are finishing): wait a little before refusing.
        let mut waited = 0;
        while guard.streams.len() >= max_connections && waited < 40 {
            drop(guard);
            thread::sleep(Duration::from_millis(5));
            waited += 1;
            guard = connections.lock();
        }
        if guard.streams.len() >= max_connections {
            drop(guard);
            tracing::warn!(max_connections, "control socket: too many connections");
            refuse(stream, &RpcError::new(SERVER_ERROR, "too many connections"));
            continue;
        }
        let Ok(second) = stream.try_clone() else {
            continue;
        };
        let id = guard.next_id;
        guard.next_id = guard.next_id.wrapping_add(1);
        guard.streams.insert(id, second);
        let spawned = {
            let connections = Arc::clone(connections);
            let registry = Arc::clone(registry);
            thread::Builder::new()
                .name("rpc-conn".to_owned())
                .spawn(move || {
                    serve_connection(stream, &registry, limits);
                    connections.lock().streams.remove(&id);
                })
        };
        match spawned {
            Ok(handle) => guard.threads.push(handle),
            Err(error) => {
                tracing::warn!(%error, "control socket: cannot start a connection thread");
                if let Some(stream) = guard.streams.remove(&id) {
                    refuse(stream, &RpcError::new(SERVER_ERROR, "too many connections"));
                }
            }
        }
    }
}

/// Sends one error line and closes.
fn refuse(mut stream: UnixStream, error: &RpcError) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let mut line = error_document(error, Some(&Value::Null))
        .to_string()
        .into_bytes();
    line.push(b'\n');
    let _ = stream.write_all(&line);
    let _ = stream.shutdown(Shutdown::Both);
}

fn serve_connection(stream: UnixStream, registry: &Registry, limits: Limits) {
    tracing::debug!("control connection opened");
    if let Err(error) = serve_lines(stream, registry, limits) {
        tracing::debug!(%error, "control connection ended with an error");
    }
    tracing::debug!("control connection closed");
}

fn serve_lines(stream: UnixStream, registry: &Registry, limits: Limits) -> io::Result<()> {
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    // Room for the longest accepted document plus "\r\n".
    let budget = u64::try_from(limits.max_body)
        .unwrap_or(u64::MAX)
        .saturating_add(2);
    loop {
        line.clear();
        let read = (&mut reader).take(budget).read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(());
        }
        let complete = line.last() == Some(&b'\n');
        if complete {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        if line.len() > limits.max_body {
            let error = RpcError::invalid_request("Request too large");
            let mut answer = error_document(&error, Some(&Value::Null))
                .to_string()
                .into_bytes();
            answer.push(b'\n');
            writer.write_all(&answer)?;
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            if complete {
                continue;
            }
            return Ok(());
        }
        let mut answer = handle_request(registry, &line, &limits).body;
        answer.push(b'\n');
        writer.write_all(&answer)?;
        if !complete {
            // End of stream without a final newline: that was the last request.
            return Ok(());
        }
    }
}
