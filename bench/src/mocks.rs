//! Mock Graph and mock App Service identity endpoint on bare hyper: the cheapest servers that
//! still speak HTTP/1.1 with keep-alive, so that neither is the bottleneck being measured.

use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The `IDENTITY_HEADER` secret the gateway must send back as `X-IDENTITY-HEADER`.
pub const IDENTITY_SECRET: &str = "bench-identity-header-secret";
/// The managed identity endpoint's api-version that `IDENTITY_ENDPOINT` implies.
const IDENTITY_API_VERSION: &str = "api-version=2019-08-01";
/// Tokens live an hour, as managed identity tokens do at least.
const TOKEN_LIFETIME_S: u64 = 3600;

/// What the mocks saw.
#[derive(Debug, Default)]
pub struct Counters {
    pub graph_resumes: AtomicU64,
    pub graph_other: AtomicU64,
    pub identity_calls: AtomicU64,
    /// Identity requests that broke the App Service contract (method, path, version, header).
    pub identity_refused: AtomicU64,
}

impl Counters {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Both mocks, listening on loopback.
pub struct Mocks {
    pub graph: SocketAddr,
    pub identity: SocketAddr,
    pub counters: Arc<Counters>,
}

impl Mocks {
    /// Starts both servers on the current runtime.
    pub async fn start() -> io::Result<Self> {
        let counters = Arc::new(Counters::default());
        let graph = serve(Kind::Graph, counters.clone()).await?;
        let identity = serve(Kind::Identity, counters.clone()).await?;
        Ok(Self {
            graph,
            identity,
            counters,
        })
    }

    /// The settings that point a gateway (or the baseline) at the mocks.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("GRAPH_ENDPOINT", format!("http://{}", self.graph)),
            (
                "IDENTITY_ENDPOINT",
                format!("http://{}/msi/token", self.identity),
            ),
            ("IDENTITY_HEADER", IDENTITY_SECRET.to_owned()),
        ]
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Graph,
    Identity,
}

async fn serve(kind: Kind, counters: Arc<Counters>) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let counters = counters.clone();
            let service = service_fn(move |request| {
                let counters = counters.clone();
                async move { Ok::<_, Infallible>(answer(kind, &counters, request).await) }
            });
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

async fn answer(
    kind: Kind,
    counters: &Counters,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    // Read the body to its end so the connection stays reusable.
    let _ = body.collect().await;
    match kind {
        Kind::Graph => {
            if parts.method == Method::POST && parts.uri.path().ends_with("/resume") {
                counters.graph_resumes.fetch_add(1, Ordering::Relaxed);
                Response::builder()
                    .status(StatusCode::NO_CONTENT)
                    .header("request-id", "bench-graph-request-id")
                    .body(Full::default())
                    .expect("a static response builds")
            } else {
                counters.graph_other.fetch_add(1, Ordering::Relaxed);
                status_only(StatusCode::NOT_FOUND)
            }
        }
        Kind::Identity => {
            let contract = parts.method == Method::GET
                && parts.uri.path() == "/msi/token"
                && parts
                    .uri
                    .query()
                    .is_some_and(|q| q.split('&').any(|p| p == IDENTITY_API_VERSION))
                && parts
                    .headers
                    .get("x-identity-header")
                    .is_some_and(|v| v == IDENTITY_SECRET);
            if !contract {
                counters.identity_refused.fetch_add(1, Ordering::Relaxed);
                return status_only(StatusCode::BAD_REQUEST);
            }
            counters.identity_calls.fetch_add(1, Ordering::Relaxed);
            let expires_on = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
                + TOKEN_LIFETIME_S;
            let body = serde_json::json!({
                "access_token": "bench-access-token",
                "expires_on": expires_on.to_string(),
                "resource": "https://graph.microsoft.com",
                "token_type": "Bearer",
            });
            Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .expect("a JSON response builds")
        }
    }
}

fn status_only(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = status;
    response
}
