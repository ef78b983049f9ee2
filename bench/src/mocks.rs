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
                "access_token": access_token(expires_on),
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

/// A token the size and shape of a managed identity's Graph token (about 1.5 KB): its length
/// is what the gateway sends with every resume, and what Graph reads.
fn access_token(expires_on: u64) -> String {
    use base64::Engine;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5t": "bench-key-thumbprint-0000000000", "kid": "bench-key-thumbprint-0000000000"});
    let claims = serde_json::json!({
        "aud": "https://graph.microsoft.com",
        "iss": "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",
        "iat": expires_on - TOKEN_LIFETIME_S,
        "nbf": expires_on - TOKEN_LIFETIME_S,
        "exp": expires_on,
        "aio": "E2RgYJjZ+1Y0bench0aio0claim0of0the0usual0length0AAA=",
        "app_displayname": "resume-gateway-bench",
        "appid": "3c5b1a2e-0f4d-4e6a-9b8c-7d6e5f4a3b2c",
        "appidacr": "2",
        "idp": "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",
        "idtyp": "app",
        "oid": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
        "rh": "1.AXEAv4j5cvGGr0GRqy180BHbRwMAAAAAAAAAwAAAAAAAAAAAAAA.",
        "roles": ["LifecycleWorkflows.ReadWrite.All"],
        "sub": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
        "tenant_region_scope": "EU",
        "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "uti": "bench0uti0claim0AA",
        "ver": "1.0",
        "wids": ["0997a1d0-0d1d-4acb-b408-d5ca73121e90"],
        "xms_idrel": "7 24",
        "xms_mirid": "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg-identity-governance/providers/Microsoft.Web/sites/func-resume-gateway",
        "xms_tcdt": 1600000000,
    });
    // An RS256 signature is 256 bytes: 342 characters of base64url.
    let signature = "s".repeat(342);
    format!("{}.{}.{signature}", b64(header), b64(claims))
}

fn status_only(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = status;
    response
}
