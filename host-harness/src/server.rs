//! The HTTP/1.1 server (RFC 7644 §3.1: SCIM over HTTP): it caps each body, hands the request
//! under `/scim/v2` to the component on a blocking thread, and logs one line per request.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use scim_plugin::{Request, Response, ScimError};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::PluginHost;
use crate::activity::{ActivityLog, Entry, JournaledStore, RecordingStore};
use crate::rate_limit::{self, RateLimiter};
use crate::settings::SettingsSource;
use crate::store::now_millis;

/// Where SCIM is served; everything else is a 404.
pub const BASE_PATH: &str = "/scim/v2";

/// The largest request body by default: 1 MiB holds a user many times over (a SCIM user is a
/// few KiB), while a body the component would parse several times stays far below its 64 MiB
/// memory cap.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// How long a client may take to send its request's headers before the connection is closed,
/// so that idle half-requests cannot hold connections forever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client may take to send a request's body once its headers are in, by default.
/// The largest body allowed arrives in well under a second on any link an identity provider
/// uses; without a bound, a client that stops mid-body would hold its connection and task for
/// as long as it keeps the socket open (the header timeout no longer applies by then).
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a shutdown waits for the requests in flight: the component's own deadline (10 s)
/// plus a margin to send the answers.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// What serving needs: the component, the host's users and settings, and the activity log.
pub struct Service {
    host: Arc<PluginHost>,
    store: Arc<dyn JournaledStore>,
    settings: Arc<dyn SettingsSource>,
    activity: Arc<ActivityLog>,
    max_body_bytes: usize,
    body_read_timeout: Duration,
    /// One permit per instance the engine's pool holds: a request past that many waits for a
    /// slot instead of failing to instantiate.
    instance_slots: Arc<Semaphore>,
    rate_limiter: RateLimiter,
}

impl Service {
    pub fn new(
        host: Arc<PluginHost>,
        store: Arc<dyn JournaledStore>,
        settings: Arc<dyn SettingsSource>,
        activity: Arc<ActivityLog>,
        max_body_bytes: usize,
    ) -> Service {
        let slots = host.limits().max_instances as usize;
        Service {
            host,
            store,
            settings,
            activity,
            max_body_bytes,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            instance_slots: Arc::new(Semaphore::new(slots)),
            rate_limiter: RateLimiter::default(),
        }
    }

    /// The same service with another bound on the time a body may take to arrive.
    pub fn with_body_read_timeout(self, timeout: Duration) -> Service {
        Service {
            body_read_timeout: timeout,
            ..self
        }
    }

    /// Answers one request and logs it.
    async fn respond(
        self: Arc<Self>,
        request: hyper::Request<Incoming>,
    ) -> hyper::Response<Full<Bytes>> {
        let started = Instant::now();
        let method = request.method().as_str().to_string();
        let path = request.uri().path().to_string();
        let user_agent = request
            .headers()
            .get(hyper::header::USER_AGENT)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());

        let response = self
            .answer(request, &method, &path, user_agent.clone())
            .await;

        tracing::info!(
            method = %method,
            path = %path,
            status = response.status,
            duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            user_agent = user_agent.as_deref().unwrap_or(""),
            "request"
        );
        to_hyper(response)
    }

    async fn answer(
        self: &Arc<Self>,
        request: hyper::Request<Incoming>,
        method: &str,
        path: &str,
        user_agent: Option<String>,
    ) -> Response {
        // RFC 9112 §3.2: an HTTP/1.1 request without a Host header is answered 400.
        if request.version() == hyper::Version::HTTP_11
            && !request.headers().contains_key(hyper::header::HOST)
        {
            return ScimError::new(400, "an HTTP/1.1 request must carry a Host header").into();
        }
        let Some(relative) = scim_path(path) else {
            return ScimError::not_found(format!(
                "no such endpoint: SCIM is served under {BASE_PATH}"
            ))
            .into();
        };

        let (parts, body) = request.into_parts();
        let reading =
            tokio::time::timeout(self.body_read_timeout, read_body(body, self.max_body_bytes));
        let read = reading.await.unwrap_or_else(|_| {
            Err(ScimError::new(
                408,
                "the request body did not arrive in time",
            ))
        });
        let body = match read {
            Ok(body) => body,
            Err(refusal) => {
                let response = self.refused(method, relative, refusal, user_agent).await;
                return response.with_header("Connection", "close");
            }
        };

        let request = Request {
            method: method.to_string(),
            path: relative.to_string(),
            query: parts.uri.query().unwrap_or("").to_string(),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_string(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body,
        };

        if let Err(refusal) = self.within_rate_limit(&request) {
            return self.refused(method, relative, refusal, user_agent).await;
        }

        let Ok(slot) = self.instance_slots.clone().acquire_owned().await else {
            return ScimError::unavailable("the server is shutting down").into();
        };
        let service = self.clone();
        // The component's work is synchronous and CPU-bound, and the store's calls wait on the
        // disk: both run on tokio's blocking threads, never on the threads that drive sockets.
        let answered = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            service.handle(&request, user_agent)
        })
        .await;
        answered.unwrap_or_else(|error| {
            tracing::error!(error = %error, "the request's task failed");
            ScimError::new(500, "the request could not be completed").into()
        })
    }

    /// Answers a request that the host refuses before the component sees it (a body too large
    /// or too slow, a rate limit), and records a refused write in the activity log like the
    /// component's refusals.
    async fn refused(
        self: &Arc<Self>,
        method: &str,
        relative: &str,
        refusal: ScimError,
        user_agent: Option<String>,
    ) -> Response {
        let response: Response = refusal.into();
        if logged_action(method, relative).is_none() {
            return response;
        }
        let service = self.clone();
        let (method, relative) = (method.to_string(), relative.to_string());
        // The log's write waits for the database: off the async threads.
        let recorded = tokio::task::spawn_blocking(move || {
            service.record_refused(&method, &relative, &response, user_agent);
            response
        })
        .await;
        recorded
            .unwrap_or_else(|_| ScimError::new(500, "the request could not be completed").into())
    }

    /// Takes the request from its token's rate limit, if one is set. Only a valid token counts:
    /// the component answers any other with 401, and keying on whatever a client sends would
    /// let it grow the limiter without bound.
    fn within_rate_limit(&self, request: &Request) -> Result<(), ScimError> {
        let Some(per_second) = self.settings.rate_limit() else {
            return Ok(());
        };
        let settings = self.settings.current();
        let presented = scim_plugin::auth::presented_token(request, &settings)
            .ok()
            .and_then(|index| settings.tokens.get(index));
        let Some(token) = presented else {
            return Ok(());
        };
        self.rate_limiter
            .admit(&token.digest, per_second, Instant::now())
            .map_err(|wait| ScimError {
                retry_after: Some(rate_limit::retry_after_seconds(wait)),
                ..ScimError::new(
                    429,
                    format!(
                        "too many requests for this token (limit: {per_second}/s); retry later"
                    ),
                )
            })
    }

    /// Runs the component on this thread, with a store that records the request's writes.
    fn handle(&self, request: &Request, user_agent: Option<String>) -> Response {
        let store = Arc::new(RecordingStore::new(
            self.store.clone(),
            self.activity.clone(),
            user_agent.clone(),
        ));
        let response = self
            .host
            .handle(request, store.clone(), self.settings.clone());
        if !store.recorded_refusal() {
            self.record_refused(&request.method, &request.path, &response, user_agent);
        }
        response
    }

    /// Logs a write request that got a 4xx answer as refused, with the status and the detail.
    fn record_refused(
        &self,
        method: &str,
        path: &str,
        response: &Response,
        user_agent: Option<String>,
    ) {
        let Some(action) = logged_action(method, path) else {
            return;
        };
        if !(400..500).contains(&response.status) {
            return;
        }
        let detail = serde_json::from_slice::<serde_json::Value>(&response.body)
            .ok()
            .and_then(|body| {
                body.get("detail")
                    .and_then(|detail| detail.as_str())
                    .map(str::to_string)
            });
        self.activity.record(&Entry {
            at: now_millis(),
            action: action.to_string(),
            outcome: format!("refused ({})", response.status),
            target: Some(path.to_string()),
            detail,
            user_agent,
        });
    }
}

/// The activity log's name for a write request, or none for a read: only writes are logged.
fn logged_action(method: &str, path: &str) -> Option<&'static str> {
    match method.to_ascii_uppercase().as_str() {
        // `POST /Users/.search` is a query, not a write.
        "POST" if path.trim_end_matches('/').ends_with("/.search") => None,
        "POST" => Some("create"),
        "PUT" | "PATCH" => Some("update"),
        "DELETE" => Some("delete"),
        _ => None,
    }
}

/// The path relative to the SCIM base, if the request is under it.
fn scim_path(path: &str) -> Option<&str> {
    match path.strip_prefix(BASE_PATH)? {
        "" => Some("/"),
        rest if rest.starts_with('/') => Some(rest),
        _ => None,
    }
}

/// The whole body, or a 413 once it is known to exceed the cap: from `Content-Length` before
/// reading anything, otherwise as soon as the bytes read pass it.
async fn read_body(body: Incoming, max_bytes: usize) -> Result<Vec<u8>, ScimError> {
    let too_large = || ScimError::new(413, format!("the request body exceeds {max_bytes} bytes"));
    if body.size_hint().lower() > max_bytes as u64 {
        return Err(too_large());
    }
    match Limited::new(body, max_bytes).collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(error) => {
            tracing::debug!(error = %error, "reading a request body failed");
            Err(ScimError::new(400, "the request body could not be read"))
        }
    }
}

fn to_hyper(response: Response) -> hyper::Response<Full<Bytes>> {
    let mut answer = hyper::Response::new(Full::new(Bytes::from(response.body)));
    *answer.status_mut() = hyper::StatusCode::from_u16(response.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in response.headers {
        match (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            (Ok(name), Ok(value)) => {
                answer.headers_mut().append(name, value);
            }
            _ => tracing::warn!(header = %name, "dropped a response header that is not valid HTTP"),
        }
    }
    answer
}

/// Serves HTTP/1.1 with keep-alive on `listener` until `shutdown` completes, then lets the
/// requests in flight finish (for at most [`SHUTDOWN_GRACE`]).
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (stop, stopping) = watch::channel(false);
    // Every connection task holds a sender; when the last one is dropped, all are done.
    let (alive, mut all_done) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, mostly: wait a little rather than spin.
                    tracing::warn!(error = %error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(error = %error, "setting TCP_NODELAY failed");
        }
        let service = service.clone();
        let mut stopping = stopping.clone();
        let alive = alive.clone();
        tokio::spawn(async move {
            let handler = service_fn(move |request| {
                let service = service.clone();
                async move { Ok::<_, Infallible>(service.respond(request).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), handler);
            tokio::pin!(connection);
            let outcome = tokio::select! {
                outcome = connection.as_mut() => outcome,
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = outcome {
                tracing::debug!(peer = %peer, error = %error, "connection ended with an error");
            }
            drop(alive);
        });
    }

    drop(listener);
    stop.send(true).context("telling the connections to stop")?;
    drop(alive);
    if tokio::time::timeout(SHUTDOWN_GRACE, all_done.recv())
        .await
        .is_err()
    {
        tracing::warn!("requests still running at shutdown were abandoned");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_under_the_scim_base_are_served() {
        assert_eq!(scim_path("/scim/v2/Users/abc"), Some("/Users/abc"));
        assert_eq!(scim_path("/scim/v2"), Some("/"));
        assert_eq!(scim_path("/scim/v2/"), Some("/"));
        assert_eq!(scim_path("/scim/v2Users"), None);
        assert_eq!(scim_path("/Users"), None);
    }
}
