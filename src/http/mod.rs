//! Starting, serving and stopping the gateway.
//!
//! The accept loop is our own (hyper's HTTP/1 connections around axum's `Router`) rather than
//! `axum::serve`, for what the Functions host and a hostile client need from it: a timeout on
//! request heads and on idle connections, a cap on connections that still answers readiness,
//! and a drain that answers every request whose bytes had arrived.

mod conn;
pub(crate) mod host;
pub(crate) mod problem;
pub(crate) mod routes;

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use crate::caller::Authenticator;
use crate::caller::scope::Authorizer;
use crate::config::Config;
use crate::config::caller::{CallerAuth, CallerScope};
use crate::http::problem::GatewayError;
use crate::http::routes::{AppState, router};
use crate::identity::TokenSource;
use crate::resume::Resumer;
use crate::resume::dedupe::Deduplicator;
use conn::{Guarded, InService};

/// Beyond the request deadline, what a request in flight gets to finish after SIGTERM.
const SHUTDOWN_MARGIN: Duration = Duration::from_secs(5);

/// From a connection's start, or the first byte of a request, to the end of its head. The host
/// writes a head at once; only a stalled or hostile client takes seconds.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A kept-alive connection with no request is closed after this. It must be longer than the
/// Functions host keeps an idle pooled connection, so that the host always closes first and
/// never sends a request into a connection we are closing. The host's clients for the custom
/// handler are a default `new HttpClient()` (forwarding and JSON invocations,
/// azure-functions-host `src/WebJobs.Script/Workers/Http/DefaultHttpWorkerService.cs`) and a
/// `SocketsHttpHandler` with default pooling (proxying, `HttpProxyService/DefaultHttpProxyService.cs`):
/// both use .NET's default `PooledConnectionIdleTimeout`, 1 minute. Twice that leaves room.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Connections served at once. Each may hold a body of up to the body limit while it is read,
/// so the cap bounds memory and descriptors. The host opens one connection per concurrent
/// invocation (.NET's `MaxConnectionsPerServer` is unlimited by default) and Flex Consumption's
/// `perInstanceConcurrency` decides how many; the reliability tests send 1,000 at once, the
/// bench 256.
pub const MAX_CONNECTIONS: usize = 1024;

/// Connections accepted beyond [`MAX_CONNECTIONS`] only to answer readiness (`GET /`, which the
/// host must always get an answer to) and a 503 to anything else, then closed. Past these, a
/// new connection is closed at once.
pub const READINESS_RESERVE: usize = 16;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Credential(#[from] crate::identity::CredentialSetupError),
    #[error(transparent)]
    Layout(#[from] crate::http::host::LayoutError),
    #[error(
        "cannot listen on {addr}: {source}; the port comes from FUNCTIONS_CUSTOMHANDLER_PORT{}",
        bind_hint(source)
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The usual local cause, a second gateway or `func start` already on the port, has a fix.
fn bind_hint(error: &std::io::Error) -> &'static str {
    if error.kind() == std::io::ErrorKind::AddrInUse {
        ": another process is listening there; stop it or set FUNCTIONS_CUSTOMHANDLER_PORT to a free port"
    } else {
        ""
    }
}

/// Listens where the Functions host expects us: IPv4 loopback (the host polls
/// http://127.0.0.1:<port>/ and nothing else should reach us).
pub async fn bind(port: u16) -> Result<TcpListener, StartError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// Raises the soft limit on open files to the hard limit: every connection and every outbound
/// call is a descriptor, and the usual soft default (1,024) is below what the connection cap
/// and the Graph and identity clients can need together. Returns (before, after).
fn raise_open_files_limit() -> std::io::Result<(libc::rlim_t, libc::rlim_t)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the kernel to fill in and read.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok((before, limit.rlim_cur))
}

/// Builds the gateway from `config`, serves on `listener` until `shutdown` completes, then
/// drains: no new connections, every request already received answered, idle connections
/// closed, resumes whose callers left finished.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let tokens = TokenSource::from_config(&config)?;
    serve_with(config, tokens, listener, shutdown).await
}

/// [`serve`] with Graph tokens from `credential` instead of the one the settings choose. In-process
/// tests run many apps in one process, each with its own mock identity endpoint, and
/// azure_identity 1.0's managed identity reads its endpoint from the process environment
/// (its `Env` is crate-private), which one process has only one of.
pub async fn serve_with_credential(
    config: Config,
    credential: Arc<dyn azure_core::credentials::TokenCredential>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let tokens = TokenSource::new(
        credential,
        crate::identity::CredentialSource::ManagedIdentity,
        config.graph_scope.clone(),
        config.managed_identity_client_id.clone(),
    );
    serve_with(config, tokens, listener, shutdown).await
}

async fn serve_with(
    config: Config,
    tokens: TokenSource,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let tokens = Arc::new(tokens);
    let functions = host::discover(&config.app_root)?;
    let addr = listener.local_addr().ok();
    match raise_open_files_limit() {
        Ok((before, after)) => tracing::info!(before, after, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
    tracing::info!(
        addr = addr.map(|a| a.to_string()).as_deref(),
        graph = %config.graph_base,
        api_version = config.api_version.as_str(),
        credential = tokens.source().name(),
        user_assigned_client_id = config.managed_identity_client_id.as_deref(),
        dry_run = config.dry_run,
        deadline_s = config.deadline.as_secs(),
        version = env!("CARGO_PKG_VERSION"),
        functions = %functions.iter().map(|f| format!("{} at {}", f.name, f.path)).collect::<Vec<_>>().join(", "),
        "resume gateway listening"
    );
    if config.dry_run {
        tracing::warn!(
            "RESUME_DRY_RUN is on: requests are validated and answered, but nothing is sent to Graph"
        );
    }
    let callers = match &config.caller_auth {
        CallerAuth::FunctionKey => None,
        CallerAuth::Entra(settings) => {
            tracing::info!(
                tenant_id = %settings.tenant_id,
                authority = %settings.authority,
                audiences = settings.audiences.join(",").as_str(),
                allowed_app_ids = settings.allowed_app_ids.join(",").as_str(),
                allowed_object_ids = settings.allowed_object_ids.as_ref().map(|o| o.join(",")).as_deref(),
                caller_scope = settings.scope.as_str(),
                "callers must present an Entra ID app token; CALLER_SCOPE={}: {}",
                settings.scope.as_str(),
                match settings.scope {
                    CallerScope::Extension => "each caller resumes only the tasks of custom task extensions that list it in authorizedApps",
                    CallerScope::Tenant => "each allowed caller may resume any task the gateway's identity may resume",
                }
            );
            if config.dry_run && settings.scope == CallerScope::Extension {
                tracing::warn!(
                    "RESUME_DRY_RUN is on: the per-extension check reads Graph, so it is skipped; answers say \"authorization\": \"skipped (dry-run)\" and nothing is resumed"
                );
            }
            Some(Authenticator::start(settings.clone()))
        }
    };
    let dedupe = Arc::new(Deduplicator::default());
    let stopping = watch::channel(None).0;
    let resumer = Resumer::new(&config, Arc::clone(&tokens));
    let scope = match &config.caller_auth {
        CallerAuth::Entra(settings) if settings.scope == CallerScope::Extension => {
            Some(Authorizer::new(&config, resumer.graph().clone(), tokens))
        }
        _ => None,
    };
    let state = Arc::new(AppState {
        resumer: Arc::new(resumer),
        dedupe: Arc::clone(&dedupe),
        callers,
        stopping: stopping.subscribe(),
        scope,
    });
    let connections = Connections::new(router(state, &functions), config.deadline, stopping);

    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => connections.serve(stream),
                Err(e) => {
                    // Out of descriptors or memory: accepting again at once would spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }

    // Requests in flight get their deadline plus a margin to finish after a shutdown request;
    // the host stops waiting for us soon after anyway, so the wait is bounded.
    let grace = config.deadline + SHUTDOWN_MARGIN;
    let until = Instant::now() + grace;
    connections.stop(until);
    // Connections the kernel completed but we had not accepted yet may hold whole requests:
    // take them too (without waiting for the runtime to report them), then close the socket.
    match listener.into_std() {
        Ok(listener) => {
            let mut taken = 0usize;
            loop {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let stream = stream
                            .set_nonblocking(true)
                            .and_then(|()| TcpStream::from_std(stream));
                        if let Ok(stream) = stream {
                            connections.serve(stream);
                            taken += 1;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot accept a waiting connection while stopping");
                        break;
                    }
                }
            }
            tracing::info!(
                open = connections.open(),
                from_backlog = taken,
                "stopped accepting; answering the requests received"
            );
        }
        Err(e) => tracing::warn!(error = %e, "cannot take the waiting connections"),
    }
    if !connections.closed(until).await {
        tracing::warn!(
            grace_s = grace.as_secs(),
            open = connections.open(),
            "connections still open after the shutdown grace period; stopping anyway"
        );
    }
    // Resumes whose callers went away still run to the end: Graph may be about to take them.
    if !dedupe
        .drain(until.saturating_duration_since(Instant::now()))
        .await
    {
        tracing::warn!(running = dedupe.running(), "resumes still running at exit");
    }
    Ok(())
}

/// The connections being served, their limits, and the drain.
struct Connections {
    app: Router,
    /// One permit per connection served in full, [`MAX_CONNECTIONS`] in all.
    slots: Arc<Semaphore>,
    /// One permit per connection served readiness only, [`READINESS_RESERVE`] in all.
    reserve: Arc<Semaphore>,
    /// Set once stopping: when the drain ends.
    stopping: watch::Sender<Option<Instant>>,
    deadline: Duration,
}

/// Whether a request is served in full, or only readiness because the connection cap is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Full,
    ReadinessOnly,
}

impl Connections {
    fn new(app: Router, deadline: Duration, stopping: watch::Sender<Option<Instant>>) -> Self {
        Self {
            app,
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            reserve: Arc::new(Semaphore::new(READINESS_RESERVE)),
            stopping,
            deadline,
        }
    }

    fn open(&self) -> usize {
        MAX_CONNECTIONS - self.slots.available_permits() + READINESS_RESERVE
            - self.reserve.available_permits()
    }

    fn stop(&self, until: Instant) {
        self.stopping.send_replace(Some(until));
    }

    /// Waits until every connection has closed, or `until`; true if they all did.
    async fn closed(&self, until: Instant) -> bool {
        let all = async {
            let _ = self.slots.acquire_many(MAX_CONNECTIONS as u32).await;
            let _ = self.reserve.acquire_many(READINESS_RESERVE as u32).await;
        };
        tokio::time::timeout_at(until, all).await.is_ok()
    }

    fn serve(&self, stream: TcpStream) {
        let (permit, service) = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(p) => (p, Service::Full),
            Err(_) => match Arc::clone(&self.reserve).try_acquire_owned() {
                Ok(p) => (p, Service::ReadinessOnly),
                Err(_) => {
                    tracing::warn!(
                        max = MAX_CONNECTIONS + READINESS_RESERVE,
                        "connection closed at once: too many open"
                    );
                    return;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let in_service = Arc::new(InService::default());
        let io = Guarded::new(
            stream,
            Arc::clone(&in_service),
            self.stopping.subscribe(),
            HEADER_READ_TIMEOUT,
            IDLE_TIMEOUT,
        );
        let (app, deadline, mut stopping) =
            (self.app.clone(), self.deadline, self.stopping.subscribe());
        let requests = {
            let stopping = stopping.clone();
            hyper::service::service_fn(move |request: Request<Incoming>| {
                let leave = in_service.enter();
                let drain_until = *stopping.borrow();
                let mut app = app.clone();
                let stopping = stopping.clone();
                async move {
                    let _leave = leave;
                    let refusal = refuse(service, drain_until, deadline, &request);
                    let mut response = match refusal {
                        Some(e) => e.into_response(),
                        None => match tower_service::Service::call(&mut app, request).await {
                            Ok(r) => r,
                            Err(never) => match never {},
                        },
                    };
                    // The last answer on this connection: the client must not send another.
                    if service == Service::ReadinessOnly || stopping.borrow().is_some() {
                        response
                            .headers_mut()
                            .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    }
                    Ok::<Response<Body>, Infallible>(response)
                }
            })
        };
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            // Heads and idle connections are timed by `Guarded`; hyper's timer would also cut
            // idle kept-alive connections at the head timeout.
            builder.header_read_timeout(None);
            builder.keep_alive(service == Service::Full);
            let connection = builder.serve_connection(TokioIo::new(io), requests);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended");
                    }
                    return;
                }
                _ = stopping.wait_for(Option::is_some) => {}
            }
            // Polled again so that its reads see the drain: what has arrived is answered,
            // then the connection closes.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended while stopping");
            }
        });
    }
}

/// The 503 for a request that is not served: at the connection cap only readiness is; while
/// stopping, only what the time left can cover.
fn refuse<B>(
    service: Service,
    drain_until: Option<Instant>,
    deadline: Duration,
    request: &Request<B>,
) -> Option<GatewayError> {
    if request.method() == Method::GET && request.uri().path() == "/" {
        return None;
    }
    if service == Service::ReadinessOnly {
        return Some(GatewayError::AtCapacity(MAX_CONNECTIONS));
    }
    match drain_until {
        Some(until) if until.saturating_duration_since(Instant::now()) < deadline => {
            Some(GatewayError::ShuttingDown)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, path: &str) -> Request<()> {
        Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap()
    }

    #[test]
    fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a valid rlimit for the kernel to fill in and read.
        unsafe {
            assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
            let lowered = libc::rlimit {
                rlim_cur: limit.rlim_max.min(512),
                rlim_max: limit.rlim_max,
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lowered), 0);
        }
        let (before, after) = raise_open_files_limit().unwrap();
        assert_eq!(before, limit.rlim_max.min(512));
        assert_eq!(after, limit.rlim_max);
        let mut now = limit;
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut now) }, 0);
        assert_eq!(now.rlim_cur, limit.rlim_max);
    }

    #[test]
    fn readiness_is_always_served_and_the_rest_only_with_room_and_time() {
        let deadline = Duration::from_secs(60);
        let resume = request(Method::POST, "/api/function-resume");
        let ready = request(Method::GET, "/");
        assert!(refuse(Service::ReadinessOnly, None, deadline, &ready).is_none());
        assert!(matches!(
            refuse(Service::ReadinessOnly, None, deadline, &resume),
            Some(GatewayError::AtCapacity(MAX_CONNECTIONS))
        ));
        // `GET /` only: a POST to / is not readiness.
        assert!(
            refuse(
                Service::ReadinessOnly,
                None,
                deadline,
                &request(Method::POST, "/")
            )
            .is_some()
        );
        assert!(refuse(Service::Full, None, deadline, &resume).is_none());
        let plenty = Some(Instant::now() + deadline + Duration::from_secs(5));
        assert!(refuse(Service::Full, plenty, deadline, &resume).is_none());
        let short = Some(Instant::now() + deadline - Duration::from_secs(1));
        assert!(matches!(
            refuse(Service::Full, short, deadline, &resume),
            Some(GatewayError::ShuttingDown)
        ));
        assert!(refuse(Service::Full, short, deadline, &ready).is_none());
    }
}
