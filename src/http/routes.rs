//! The HTTP surface the Functions host talks to: readiness at `/` and the resume function.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use tokio::sync::watch;
use tokio::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::caller::scope::Authorizer;
use crate::caller::{Authenticator, Caller, CallerAuthError};
use crate::http::host::{self, HttpFunction};
use crate::http::problem::{GatewayError, Problem};
use crate::request::{MAX_BODY_BYTES, Resume, Target};
use crate::resume::dedupe::Deduplicator;
use crate::resume::{Outcome, Resumed, Resumer};

const INVOCATION_ID: &str = "x-azure-functions-invocationid";
/// The host's invocation ids are GUIDs (36 characters); anything longer is not the host's.
const MAX_INVOCATION_ID_CHARS: usize = 64;
/// A JSON invocation wraps the request; base64 makes it a third larger than the body limit.
const MAX_INVOCATION_BYTES: usize = 4 * MAX_BODY_BYTES;

/// What every request handler shares.
#[derive(Debug)]
pub struct AppState {
    pub resumer: Arc<Resumer>,
    pub dedupe: Arc<Deduplicator>,
    /// Set with `CALLER_AUTH=entra`: every resume must carry an allowed caller's token.
    pub callers: Option<Authenticator>,
    /// Set when the gateway starts stopping (to when the drain ends): a body still arriving
    /// then is not waited for.
    pub stopping: watch::Receiver<Option<Instant>>,
    /// Set with `CALLER_SCOPE=extension`: the caller must be authorized by the task's extension.
    pub scope: Option<Authorizer>,
}

/// After a shutdown request, how long a body already on its way gets to arrive: bytes sent
/// before the signal are in within moments on the loopback; a body that has stalled is not
/// waited for, so that it cannot hold the shutdown.
const BODY_GRACE_WHEN_STOPPING: std::time::Duration = std::time::Duration::from_millis(200);

/// The gateway's routes: readiness at `/`; for each function, forwarded and proxied requests
/// at its route (`/api/function-resume`) and the host's JSON invocations at `/<FunctionName>`.
pub fn router(state: Arc<AppState>, functions: &[HttpFunction]) -> Router {
    // The host polls `/` until any answer comes; answer at once, whatever Graph's state.
    let mut router = Router::new().route("/", get(|| async { "ok" }));
    for function in functions {
        let invocation_path = format!("/{}", function.name);
        if function.path == invocation_path {
            // An empty routePrefix puts both on one path; the body tells them apart.
            router = router.route(
                &function.path,
                post(resume_or_invoke).fallback(method_not_allowed),
            );
        } else {
            router = router
                .route(&function.path, post(resume).fallback(method_not_allowed))
                .route(&invocation_path, post(invoke).fallback(method_not_allowed));
        }
    }
    router
        .fallback(any(not_found))
        .layer(CatchPanicLayer::custom(answer_panic))
        .with_state(state)
}

/// A panic in one request answers that request with 500 and leaves the process serving.
fn answer_panic(_panic: Box<dyn Any + Send>) -> Response {
    tracing::error!("a request handler panicked; answered 500 and kept serving");
    GatewayError::Internal.into_response()
}

async fn not_found(uri: Uri) -> Response {
    GatewayError::NotFound(uri.path().to_owned()).into_response()
}

async fn method_not_allowed(method: Method) -> Response {
    GatewayError::MethodNotAllowed(method.to_string()).into_response()
}

async fn resume(State(state): State<Arc<AppState>>, request: Request) -> Response {
    // Taken apart rather than extracted: the `HeaderMap` extractor clones the headers.
    let (parts, body) = request.into_parts();
    answer(state, parts.headers, || body).await
}

/// One resume request, in four steps: [`authenticate`] the caller from `headers`; [`handle`]
/// the request (`body` is called only then); log the summary line; respond. Steps 3 and 4
/// live on [`Summary`], one pair for success and one for failure.
async fn answer(
    state: Arc<AppState>,
    headers: HeaderMap,
    body: impl FnOnce() -> Body + Send,
) -> Response {
    let started = Instant::now();
    let invocation_id = invocation_id(&headers).map(str::to_owned);
    // Set at creation: recording it later makes the JSON formatter re-parse the span's fields.
    let span = tracing::info_span!("request", invocation_id = invocation_id.as_deref());
    let auth = authenticate(&state, &headers)
        .instrument(span.clone())
        .await;
    let caller = match &auth {
        Ok(Some(c)) | Err(CallerAuthError::NotAllowed { caller: c, .. }) => Some(c),
        _ => None,
    };
    let result = match &auth {
        Ok(_) => {
            handle(&state, &headers, body(), started, caller)
                .instrument(span.clone())
                .await
        }
        Err(e) => Err((e.clone().into(), None)),
    };
    let summary = Summary {
        invocation_id: invocation_id.as_deref(),
        caller,
        elapsed: started.elapsed(),
    };
    span.in_scope(|| match result {
        Ok(done) => {
            summary.log_resumed(&done);
            summary.resumed(&done)
        }
        Err((error, request)) => {
            let problem = summary.problem(&error, request.as_ref());
            summary.log_refused(&error, request.as_ref(), &problem);
            problem.into_response()
        }
    })
}

/// Step 1: who is calling. Authentication comes before the body is read, so an unknown
/// caller costs no parsing. `None` when callers are not authenticated (`function-key`).
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Caller>, CallerAuthError> {
    match &state.callers {
        Some(callers) => callers.authenticate(headers).await.map(Some),
        None => Ok(None),
    }
}

/// What a request's summary line and answer share, whatever the outcome.
struct Summary<'a> {
    invocation_id: Option<&'a str>,
    caller: Option<&'a Caller>,
    elapsed: Duration,
}

impl Summary<'_> {
    fn caller_app_id(&self) -> Option<&str> {
        self.caller.map(|c| c.app_id.as_str())
    }

    fn caller_object_id(&self) -> Option<&str> {
        self.caller.and_then(|c| c.object_id.as_deref())
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.elapsed.as_millis()).unwrap_or(u64::MAX)
    }

    /// Step 3 on success: one info line with every id and figure, never the subject's data.
    fn log_resumed(&self, (outcome, request, authorization): &Done) {
        let ids = Ids::of(Some(&outcome.target));
        tracing::info!(
            invocation_id = self.invocation_id,
            workflow_id = ids.workflow_id,
            task_id = ids.task_id,
            task_processing_result_id = ids.result_id,
            operation_status = ids.operation_status,
            assignment_request_id = ids.assignment_request_id,
            custom_extension_stage_instance_id = ids.stage_instance_id,
            stage = ids.stage,
            state = ids.state,
            status = 200,
            graph_status = outcome.graph_status,
            graph_request_id = outcome.graph_request_id.as_deref(),
            client_request_id = outcome.client_request_id.as_str(),
            caller_app_id = self.caller_app_id(),
            caller_object_id = self.caller_object_id(),
            attempts = outcome.attempts,
            elapsed_ms = self.elapsed_ms(),
            dry_run = outcome.dry_run.is_some(),
            already_resumed = outcome.already_resumed,
            authorization = authorization.as_deref(),
            status_reasons = request.reasons_for_log(),
            "resume {}",
            if outcome.dry_run.is_some() {
                "simulated (dry run)"
            } else if outcome.already_resumed {
                "already accepted by Graph earlier, not sent again"
            } else {
                "accepted by Graph"
            }
        );
    }

    /// Step 4 on success: the same answer `handler resume --json` prints.
    fn resumed(&self, (outcome, request, authorization): &Done) -> Response {
        let body = Resumed::new(
            outcome,
            request.status_reasons(),
            self.elapsed,
            self.invocation_id,
        )
        .authorized(authorization.as_deref());
        json_answer(&body)
    }

    /// The problem answer for a failure, with the invocation id and the caller's reasons.
    fn problem(&self, error: &GatewayError, request: Option<&Resume>) -> Problem {
        error
            .problem()
            .with("invocationId", self.invocation_id)
            .with(
                "statusReasons",
                request
                    .map(Resume::status_reasons)
                    .filter(|r| !r.is_empty()),
            )
    }

    /// Step 3 on failure: one warn line (error for 5xx) naming the problem and, from the
    /// typed error, what Graph said.
    fn log_refused(&self, error: &GatewayError, request: Option<&Resume>, problem: &Problem) {
        let target = request.map(Resume::target);
        let ids = Ids::of(target.as_ref());
        let graph = error.graph_failure();
        macro_rules! summary {
            ($level:ident) => {
                tracing::$level!(
                    invocation_id = self.invocation_id,
                    workflow_id = ids.workflow_id,
                    task_id = ids.task_id,
                    task_processing_result_id = ids.result_id,
                    operation_status = ids.operation_status,
                    assignment_request_id = ids.assignment_request_id,
                    custom_extension_stage_instance_id = ids.stage_instance_id,
                    stage = ids.stage,
                    state = ids.state,
                    status = problem.status,
                    problem = problem.slug(),
                    graph_status = graph.and_then(|g| g.status),
                    graph_request_id = graph.and_then(|g| g.request_id.as_deref()),
                    attempts = error.attempts(),
                    caller_app_id = self.caller_app_id(),
                    caller_object_id = self.caller_object_id(),
                    elapsed_ms = self.elapsed_ms(),
                    status_reasons = request.and_then(Resume::reasons_for_log),
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
    }
}

/// The ids a summary line carries, of either kind of target (never the callout's subject,
/// nor an access-package resume's free-text `detail`).
#[derive(Default)]
struct Ids<'a> {
    workflow_id: Option<&'a str>,
    task_id: Option<&'a str>,
    result_id: Option<&'a str>,
    operation_status: Option<&'static str>,
    assignment_request_id: Option<&'a str>,
    stage_instance_id: Option<&'a str>,
    stage: Option<&'static str>,
    state: Option<&'static str>,
}

impl<'a> Ids<'a> {
    fn of(target: Option<&'a Target>) -> Self {
        match target {
            None => Self::default(),
            Some(Target::Task(t, status)) => Self {
                workflow_id: Some(t.workflow_id.as_str()),
                task_id: t.task_id.as_ref().map(|x| x.as_str()),
                result_id: Some(t.result_id.as_str()),
                operation_status: Some(status.as_str()),
                ..Self::default()
            },
            Some(Target::AccessPackage(t)) => Self {
                assignment_request_id: Some(t.request.request_id.as_str()),
                stage_instance_id: Some(t.stage_instance_id.as_str()),
                stage: Some(t.stage.as_str()),
                state: t.state.map(|s| s.as_str()),
                ..Self::default()
            },
        }
    }
}

/// The host's invocation id, when the header holds a short printable token: it is repeated in
/// the answer and on every log line, so anything else is ignored rather than echoed.
fn invocation_id(headers: &HeaderMap) -> Option<&str> {
    let id = headers.get(INVOCATION_ID)?.to_str().ok()?;
    let token = !id.is_empty()
        && id.len() <= MAX_INVOCATION_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    token.then_some(id)
}

/// A 200 JSON answer, serialized into one allocation (axum's `Json` starts small and regrows).
fn json_answer(body: &impl serde::Serialize) -> Response {
    let mut bytes = Vec::with_capacity(768);
    match serde_json::to_writer(&mut bytes, body) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(_) => GatewayError::Internal.into_response(),
    }
}

type Failure = (GatewayError, Option<Resume>);
/// A resume done: the outcome, the request it answers, and how the caller was authorized.
type Done = (Outcome, Resume, Option<String>);

/// Step 2: request in, validated resume, authorized caller, (dedupe) Graph, outcome (with how
/// the caller was authorized for the task, under `CALLER_SCOPE=extension`).
async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    started: Instant,
    caller: Option<&Caller>,
) -> Result<Done, Failure> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // The host drops a chunked body and its Content-Type when forwarding: say so, not "415".
    let empty = || GatewayError::EmptyBody {
        forwarded: body_may_be_lost_by_host(headers),
    };
    if declared.unwrap_or(0) == 0 && !headers.contains_key(header::CONTENT_TYPE) {
        return Err((empty(), None));
    }
    check_content_type(headers).map_err(|e| (e, None))?;
    let bytes = read_body(state, declared, body, MAX_BODY_BYTES, started)
        .await
        .map_err(|e| (e, None))?;
    if bytes.is_empty() {
        return Err((empty(), None));
    }
    let request = Resume::parse(&bytes).map_err(|e| (e.into(), None))?;
    let target = request.target();
    // Per request, before the shared resume: a caller never rides on another's authorization.
    let authorization = match (&state.scope, caller) {
        (Some(scope), Some(caller)) => {
            match scope.authorize(&caller.app_id, &target, started).await {
                Ok(verdict) => Some(verdict.describe()),
                Err(e) => return Err((e.into(), Some(request))),
            }
        }
        _ => None,
    };
    let resume = {
        let resumer = Arc::clone(&state.resumer);
        let (target, body) = (target.clone(), resumer.body(&request));
        async move { resumer.send(target, body, started).await }
    };
    let shared = state.dedupe.run(&target, resume).await;
    match shared {
        Ok(Ok(outcome)) => Ok((outcome, request, authorization)),
        Ok(Err(e)) => Err((e.into(), Some(request))),
        Err(e) => Err((GatewayError::Conflict(e), Some(request))),
    }
}

/// A JSON invocation from the host: unwrap the request, run it like a forwarded one, and wrap
/// the answer as the `res` output. Always HTTP 200: the real status is `res.statusCode`.
async fn invoke(State(state): State<Arc<AppState>>, outer: HeaderMap, body: Body) -> Response {
    let read = read_body(&state, None, body, MAX_INVOCATION_BYTES, Instant::now());
    let answer = match read.await {
        Ok(payload) => invocation_answer(state, &outer, &payload).await,
        Err(e) => e.into_response(),
    };
    axum::Json(host::invocation_result(answer).await).into_response()
}

async fn invocation_answer(state: Arc<AppState>, outer: &HeaderMap, payload: &[u8]) -> Response {
    let invocation = match host::Invocation::parse(payload) {
        Ok(invocation) => invocation,
        Err(e) => return GatewayError::from(e).into_response(),
    };
    if invocation.method != Method::POST {
        return GatewayError::MethodNotAllowed(invocation.method.to_string()).into_response();
    }
    let mut headers = invocation.headers();
    // The host names the invocation on its own request, not inside the caller's headers.
    if let Some(id) = outer.get(INVOCATION_ID) {
        headers.insert(INVOCATION_ID, id.clone());
    }
    // Decoded only once the caller is authenticated: an unknown caller's body costs nothing.
    answer(state, headers, || Body::from(invocation.body())).await
}

/// Both kinds of request on one path (empty `routePrefix`): a JSON invocation has `Data`,
/// which a resume request can never have.
async fn resume_or_invoke(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let read = read_body(&state, None, body, MAX_INVOCATION_BYTES, Instant::now());
    let bytes = match read.await {
        Ok(bytes) => bytes,
        Err(e) => return e.into_response(),
    };
    if host::is_invocation(&bytes) {
        let answer = invocation_answer(state, &headers, &bytes).await;
        axum::Json(host::invocation_result(answer).await).into_response()
    } else {
        answer(state, headers, || Body::from(bytes)).await
    }
}

/// Whether an empty body may be the host's doing. The legacy forwarding rebuilds a chunked
/// request without its body or a `Content-Length`, and names the invocation; a JSON invocation
/// keeps the caller's `Transfer-Encoding`. A declared `Content-Length: 0` (what curl sends when
/// `-d @FILE` cannot read the file) or a request straight from the caller is the caller's own.
fn body_may_be_lost_by_host(headers: &HeaderMap) -> bool {
    (headers.contains_key(INVOCATION_ID) && !headers.contains_key(header::CONTENT_LENGTH))
        || headers.contains_key(header::TRANSFER_ENCODING)
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

/// Reads at most `limit` bytes within the request's deadline from `started` (a body that
/// trickles in must not hold a connection and its buffer longer than a resume may take), and
/// only briefly once the gateway is stopping; refuses early when `Content-Length` already says
/// more.
async fn read_body(
    state: &AppState,
    declared: Option<u64>,
    body: Body,
    limit: usize,
    started: Instant,
) -> Result<axum::body::Bytes, GatewayError> {
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(GatewayError::TooLarge(limit));
    }
    let deadline = state.resumer.deadline();
    let read = tokio::time::timeout_at(started + deadline, axum::body::to_bytes(body, limit));
    let mut stopping = state.stopping.clone();
    let stalled = async move {
        let _ = stopping.wait_for(Option::is_some).await;
        tokio::time::sleep(BODY_GRACE_WHEN_STOPPING).await;
    };
    let read = tokio::select! {
        biased;
        read = read => read,
        () = stalled => return Err(GatewayError::ShuttingDown),
    };
    let Ok(read) = read else {
        return Err(GatewayError::BodyTimeout(deadline));
    };
    read.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            GatewayError::TooLarge(limit)
        } else {
            GatewayError::BodyUnreadable(e.to_string())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_router_keeps_serving() {
        use tower::ServiceExt;
        async fn boom() -> &'static str {
            panic!("handler bug")
        }
        let app = Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "ok" }))
            .layer(CatchPanicLayer::custom(answer_panic));
        let get_ = |uri: &str| {
            axum::http::Request::builder()
                .uri(uri)
                .body(Body::empty())
                .unwrap()
        };
        let r = app.clone().oneshot(get_("/boom")).await.unwrap();
        assert_eq!(r.status(), 500);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let r = app.oneshot(get_("/fine")).await.unwrap();
        assert_eq!(r.status(), 200);
    }

    #[tokio::test]
    async fn an_unauthenticated_caller_costs_no_body() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let settings = [
            ("RESUME_DRY_RUN", "true"),
            ("CALLER_AUTH", "entra"),
            ("CALLER_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
            ("CALLER_AUDIENCES", "api://resume-gateway"),
            (
                "CALLER_ALLOWED_APP_IDS",
                "11111111-2222-3333-4444-555555555555",
            ),
            ("CALLER_AUTHORITY", "http://127.0.0.1:9"),
        ];
        let config = crate::config::Config::from_lookup(|k| {
            settings
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        })
        .unwrap();
        let crate::config::caller::CallerAuth::Entra(callers) = config.caller_auth.clone() else {
            panic!("entra expected")
        };
        let tokens = Arc::new(crate::identity::TokenSource::from_config(&config).unwrap());
        let state = Arc::new(AppState {
            resumer: Arc::new(Resumer::new(&config, tokens)),
            dedupe: Arc::new(Deduplicator::default()),
            callers: Some(Authenticator::start(callers)),
            stopping: watch::channel(None).1,
            scope: None,
        });
        let taken = std::sync::atomic::AtomicBool::new(false);
        let response = answer(state, HeaderMap::new(), || {
            taken.store(true, std::sync::atomic::Ordering::SeqCst);
            Body::from(r#"{"operationStatus":"completed"}"#)
        })
        .await;
        assert_eq!(response.status(), 401);
        assert!(
            !taken.load(std::sync::atomic::Ordering::SeqCst),
            "the body was taken before the caller was authenticated"
        );
    }

    #[test]
    fn only_a_short_printable_invocation_id_is_used() {
        let mut h = HeaderMap::new();
        assert_eq!(invocation_id(&h), None);
        let guid = "0f8fad5b-d9cb-469f-a165-70867728950e";
        h.insert(INVOCATION_ID, HeaderValue::from_static(guid));
        assert_eq!(invocation_id(&h), Some(guid));
        let longest = "a".repeat(MAX_INVOCATION_ID_CHARS);
        h.insert(INVOCATION_ID, HeaderValue::from_str(&longest).unwrap());
        assert_eq!(invocation_id(&h), Some(longest.as_str()));
        for bad in [
            "a".repeat(MAX_INVOCATION_ID_CHARS + 1),
            "a".repeat(64 * 1024),
            "id with spaces".into(),
            "id\"quote".into(),
            "{\"json\":1}".into(),
            String::new(),
        ] {
            h.insert(INVOCATION_ID, HeaderValue::from_str(&bad).unwrap());
            assert_eq!(invocation_id(&h), None, "{bad}");
        }
    }

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
