//! Shared helpers of the HTTP tests: a server started in-process on a free port, a minimal
//! HTTP/1.1 client over `std::net::TcpStream`, and the `scim-host` binary for the command line.

// Each test binary uses its own share of these helpers.
#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use scim_host::PluginHost;
use scim_host::activity::ActivityLog;
use scim_host::component::shared_embedded;
use scim_host::db::Database;
use scim_host::server::{self, DEFAULT_MAX_BODY_BYTES, Service};
use scim_host::settings::sqlite::{self as stored, DEFAULT_TOKEN_VALIDITY, SqliteSettings};
use scim_host::store::SqliteStore;
use serde_json::{Value, json};

/// A server on 127.0.0.1 with its own runtime, stopped (gracefully) when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// Serves the database at `db_path` as `scim-host serve` does.
    pub fn start(db_path: &Path) -> TestServer {
        let shared = shared_embedded().unwrap();
        TestServer::start_with(
            Database::open(db_path).unwrap(),
            shared.with_limits(shared.limits()),
            DEFAULT_MAX_BODY_BYTES,
            |service| service,
        )
    }

    /// Serves `db` with a component of other limits, another body cap, or a service configured
    /// otherwise than `scim-host serve` does by default.
    pub fn start_with(
        db: Arc<Database>,
        host: PluginHost,
        max_body_bytes: usize,
        configure: impl FnOnce(Service) -> Service,
    ) -> TestServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let host = Arc::new(host);
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let settings =
            Arc::new(SqliteSettings::new(db.clone(), &format!("http://{addr}/scim/v2")).unwrap());
        let service = Arc::new(configure(Service::new(
            host,
            Arc::new(SqliteStore::new(db.clone())),
            settings,
            Arc::new(ActivityLog::new(db)),
            max_body_bytes,
        )));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = runtime.spawn(server::serve(listener, service, async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            runtime: Some(runtime),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server and waits until it has.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let (Some(stop), Some(task), Some(runtime)) =
            (self.stop.take(), self.task.take(), self.runtime.take())
        {
            let _ = stop.send(());
            runtime.block_on(task).unwrap().unwrap();
        }
    }

    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let body = body.map(|body| serde_json::to_vec(body).unwrap());
        send(self.addr, method, path, token, body.as_deref())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Turns SCIM on in the database and returns the token.
pub fn enable(db_path: &Path) -> String {
    let db = Database::open(db_path).unwrap();
    stored::enable(&db, None, DEFAULT_TOKEN_VALIDITY).unwrap()
}

/// An answer as the client received it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts a SCIM error of this status (RFC 7644 §3.12) and returns its body.
    pub fn assert_scim_error(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.header("Content-Type"), Some("application/scim+json"));
        let error = self.json();
        assert_eq!(
            error["schemas"][0],
            "urn:ietf:params:scim:api:messages:2.0:Error"
        );
        assert_eq!(error["status"], status.to_string());
        error
    }
}

/// One request on its own connection (`Connection: close`), with a `Content-Length` body.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> Reply {
    let authorization = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = authorization
        .iter()
        .map(|value| ("Authorization", value.as_str()))
        .collect();
    send_with(addr, method, path, &headers, body)
}

/// One request with these headers besides `Host`, `User-Agent` and `Connection: close`.
pub fn send_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: scim-host-tests\r\n\
         Connection: close\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!(
            "Content-Type: application/scim+json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body.unwrap_or_default());
    exchange(addr, &request)
}

/// Writes raw request bytes (from another thread, so that a server that answers before reading
/// everything is seen answering) and reads the answer until the server closes.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    try_exchange(addr, request).unwrap_or_else(|problem| panic!("{problem}"))
}

/// As [`exchange`], but a connection refused, reset or closed without a whole answer is an
/// error to report rather than a panic.
pub fn try_exchange(addr: SocketAddr, request: &[u8]) -> Result<Reply, String> {
    let mut stream =
        TcpStream::connect(addr).map_err(|error| format!("connecting failed: {error}"))?;
    let mut writer = stream
        .try_clone()
        .map_err(|error| format!("cloning the socket failed: {error}"))?;
    let request = request.to_vec();
    let writing = std::thread::spawn(move || {
        // A server that refuses a body may close before reading it all.
        let _ = writer.write_all(&request);
    });
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let _ = writing.join();
    parse(&raw)
}

fn parse(raw: &[u8]) -> Result<Reply, String> {
    let incomplete = || format!("no complete answer: {:?}", String::from_utf8_lossy(raw));
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(incomplete)?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|status| status.parse().ok())
        .ok_or_else(incomplete)?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    Ok(Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

/// A new user's SCIM resource (RFC 7643 §4.1).
pub fn new_user(user_name: &str, email: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": { "givenName": "Barbara", "familyName": "Jensen" },
        "emails": [{ "value": email, "primary": true, "type": "work" }],
        "active": true,
    })
}

/// A PATCH that sets `active` (RFC 7644 §3.5.2).
pub fn set_active(active: bool) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "replace", "path": "active", "value": active }],
    })
}

/// Runs the `scim-host` binary against `db_path`; panics unless it succeeds, returns stdout.
pub fn cli(db_path: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_scim-host"))
        .args(args)
        .arg("--db")
        .arg(db_path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "scim-host {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The value of the `name: value` line of a command's output.
pub fn line_value(output: &str, name: &str) -> String {
    output
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no `{name}:` line in {output:?}"))
        .to_string()
}

/// The database's path in a fresh temporary directory (kept alive by the returned guard).
pub fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scim-host.db");
    (dir, path)
}
