//! The HTTP surface the Functions host talks to: readiness at `/` and the resume function.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::Serialize;
use tokio::time::Instant;

use crate::caller_auth::{Authenticator, CallerAuthError};
use crate::callout::{MAX_BODY_BYTES, ResumeRequest};
use crate::problem::GatewayError;
use crate::resume::{DryRun, Outcome, ResumeError, Resumer};

/// The function's name: its folder holds `function.json`, and the host serves it at `/api/<name>`.
pub const FUNCTION_NAME: &str = "function-resume";
const INVOCATION_ID: &str = "x-azure-functions-invocationid";

/// What every request handler shares.
#[derive(Debug)]
pub struct AppState {
    pub resumer: Resumer,
    /// Set with `CALLER_AUTH=entra`: every resume must carry an allowed caller's token.
    pub callers: Option<Authenticator>,
}

/// The gateway's routes.
pub fn router(state: Arc<AppState>) -> Router {
    let resume = post(resume).fallback(method_not_allowed);
    Router::new()
        // The host polls `/` until any answer comes; answer at once, whatever Graph's state.
        .route("/", get(|| async { "ok" }))
        .route(&format!("/api/{FUNCTION_NAME}"), resume)
        .fallback(any(not_found))
        .with_state(state)
}

async fn not_found(uri: Uri) -> Response {
    GatewayError::NotFound(uri.path().to_owned()).into_response()
}

async fn method_not_allowed(method: Method) -> Response {
    GatewayError::MethodNotAllowed(method.to_string()).into_response()
}

/// The success answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Resumed<'a> {
    outcome: &'static str,
    workflow_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_id: Option<&'a str>,
    task_processing_result_id: &'a str,
    operation_status: &'static str,
    dry_run: bool,
    already_resumed: bool,
    graph_status: Option<u16>,
    graph_request_id: Option<&'a str>,
    client_request_id: &'a str,
    attempts: u32,
    elapsed_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<&'a DryRun>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invocation_id: Option<&'a str>,
}

async fn resume(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let invocation_id = headers
        .get(INVOCATION_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Authentication comes before the body is read: an unknown caller costs no parsing.
    let auth = match &state.callers {
        Some(callers) => callers.authenticate(&headers).await.map(Some),
        None => Ok(None),
    };
    let caller = match &auth {
        Ok(Some(c)) | Err(CallerAuthError::NotAllowed { caller: c, .. }) => Some(c),
        _ => None,
    };
    let caller_app_id = caller.map(|c| c.app_id.as_str());
    let caller_object_id = caller.and_then(|c| c.object_id.as_deref());
    let result = match &auth {
        Ok(_) => handle(&state, &headers, body, started).await,
        Err(e) => Err((e.clone().into(), None)),
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let invocation = invocation_id.as_deref();
    match result {
        Ok(outcome) => {
            let target = &outcome.target;
            tracing::info!(
                invocation_id = invocation,
                workflow_id = %target.workflow_id,
                task_id = target.task_id.as_ref().map(|t| t.as_str()),
                task_processing_result_id = %target.result_id,
                operation_status = outcome.status.as_str(),
                status = 200,
                graph_status = outcome.graph_status,
                graph_request_id = outcome.graph_request_id.as_deref(),
                client_request_id = %outcome.client_request_id,
                caller_app_id,
                caller_object_id,
                attempts = outcome.attempts,
                elapsed_ms,
                dry_run = outcome.dry_run.is_some(),
                "resume {}",
                if outcome.dry_run.is_some() { "simulated (dry run)" } else { "accepted by Graph" }
            );
            let body = success_body(&outcome, invocation_id.as_deref(), elapsed_ms);
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Err((error, request)) => {
            let problem = error.problem().with("invocationId", &invocation_id);
            let target = request.as_ref().map(|r| &r.target);
            let graph = problem.extensions.get("graph");
            let fields = (
                target.map(|t| t.workflow_id.to_string()),
                target.and_then(|t| t.task_id.as_ref().map(|x| x.to_string())),
                target.map(|t| t.result_id.to_string()),
            );
            macro_rules! summary {
                ($level:ident) => {
                    tracing::$level!(
                        invocation_id = invocation,
                        workflow_id = fields.0.as_deref(),
                        task_id = fields.1.as_deref(),
                        task_processing_result_id = fields.2.as_deref(),
                        operation_status = request.as_ref().map(|r| r.status.as_str()),
                        status = problem.status,
                        problem = problem.slug(),
                        graph_status = graph.and_then(|g| g.get("status")).and_then(|s| s.as_u64()),
                        graph_request_id = graph
                            .and_then(|g| g.get("requestId"))
                            .and_then(|s| s.as_str()),
                        attempts = problem.extensions.get("attempts").and_then(|a| a.as_u64()),
                        caller_app_id,
                        caller_object_id,
                        elapsed_ms,
                        "resume not done: {}",
                        problem.detail
                    )
                };
            }
            if problem.status >= 500 {
                summary!(error);
            } else {
                summary!(warn);
            }
            problem.into_response()
        }
    }
}

fn success_body<'a>(
    outcome: &'a Outcome,
    invocation_id: Option<&'a str>,
    elapsed_ms: u64,
) -> Resumed<'a> {
    let target = &outcome.target;
    Resumed {
        outcome: if outcome.dry_run.is_some() {
            "dry-run"
        } else {
            "resumed"
        },
        workflow_id: target.workflow_id.as_str(),
        task_id: target.task_id.as_ref().map(|t| t.as_str()),
        run_id: target.run_id.as_ref().map(|t| t.as_str()),
        task_processing_result_id: target.result_id.as_str(),
        operation_status: outcome.status.as_str(),
        dry_run: outcome.dry_run.is_some(),
        already_resumed: false,
        graph_status: outcome.graph_status,
        graph_request_id: outcome.graph_request_id.as_deref(),
        client_request_id: &outcome.client_request_id,
        attempts: outcome.attempts,
        elapsed_ms,
        request: outcome.dry_run.as_ref(),
        invocation_id,
    }
}

type Failure = (GatewayError, Option<ResumeRequest>);

/// Request in, validated resume, Graph, outcome.
async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    started: Instant,
) -> Result<Outcome, Failure> {
    check_content_type(headers).map_err(|e| (e, None))?;
    let bytes = read_body(headers, body).await.map_err(|e| (e, None))?;
    let request = ResumeRequest::parse(&bytes).map_err(|e| (e.into(), None))?;
    match state.resumer.resume(&request, started).await {
        Ok(outcome) => Ok(outcome),
        Err(e @ (ResumeError::Rejected { .. } | ResumeError::Unavailable { .. })) => {
            Err((e.into(), Some(request)))
        }
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), GatewayError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(GatewayError::UnsupportedMediaType(None));
    };
    let text = value.to_str().unwrap_or("");
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if json {
        Ok(())
    } else {
        Err(GatewayError::UnsupportedMediaType(Some(text.to_owned())))
    }
}

/// Reads at most [`MAX_BODY_BYTES`], refusing early when `Content-Length` already says more.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<axum::body::Bytes, GatewayError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(GatewayError::TooLarge);
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                GatewayError::TooLarge
            } else {
                GatewayError::BodyUnreadable(e.to_string())
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn json_content_types() {
        let mut h = HeaderMap::new();
        assert!(check_content_type(&h).is_err());
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/problem+json",
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ok));
            assert!(check_content_type(&h).is_ok(), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/jsonx",
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(bad));
            assert!(check_content_type(&h).is_err(), "{bad}");
        }
    }
}
