//! The benchmark's baseline: the least a gateway of this design can do. It answers the host's
//! readiness poll, and forwards each POST body to Graph as it came (no validation, no token, no
//! logging), so the gateway's figures can be read against the physical limit of the design.
//! Started by `bench` with the same environment as the gateway.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::routing::{get, post};

/// Every forward goes to one resume path: choosing it would already be validation.
const RESUME_PATH: &str = "/v1.0/identityGovernance/lifecycleWorkflows/workflows/156bd1a0-5d7c-4b38-a8c9-1d0f7c2a9e11/tasks/2a9e1156-bd1a-4d7c-8b38-a8c91d0f7c2a/taskProcessingResults/7c2a9e11-56bd-41a0-9d7c-4b38a8c91d0f/resume";

#[derive(Clone)]
struct Forward {
    http: reqwest::Client,
    url: String,
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    // reqwest's features are the gateway's (one package graph): rustls without a provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let graph = std::env::var("GRAPH_ENDPOINT").expect("GRAPH_ENDPOINT names the mock Graph");
    let state = Forward {
        http: reqwest::Client::new(),
        url: format!("{}{RESUME_PATH}", graph.trim_end_matches('/')),
    };
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/api/function-resume", post(forward))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the baseline binds its port");
    axum::serve(listener, app)
        .await
        .expect("the baseline serves");
}

async fn forward(State(f): State<Forward>, body: Bytes) -> (StatusCode, String) {
    let sent = f
        .http
        .post(&f.url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(r) => (
            StatusCode::OK,
            format!("{{\"graphStatus\":{}}}", r.status().as_u16()),
        ),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()),
    }
}
