//! Every way a request can fail, mapped once to an RFC 9457 problem answer
//! (`application/problem+json`) with a stable `type`, a `detail` and a `remedy`.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::caller::CallerAuthError;
use crate::caller::scope::ScopeError;
use crate::config::ConfigError;
use crate::graph::{GetError, GraphFailure};
use crate::identity::{
    ACCESS_PACKAGE_WRITE_PERMISSION, CredentialError, CredentialSetupError, READ_PERMISSION,
    TokenIdentity, WRITE_PERMISSION, ways_to_allow_access_package_resume, ways_to_allow_resume,
};
use crate::request::echo;
use crate::request::{MAX_BODY_BYTES, RequestError};
use crate::resume::dedupe::DedupeError;
use crate::resume::{Api, DEFAULT_RETRY_AFTER, ReadBack, ResumeError, Unavailable};

/// Prefix of every problem `type`; docs/request-and-answer.md lists them all.
pub const TYPE_PREFIX: &str = "urn:resume-gateway:problem:";

/// Why the gateway did not resume the task.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The limit that applied: the body's, or the JSON invocation's.
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    /// The body had not arrived in full within the request deadline.
    #[error("the body did not arrive within {} s", .0.as_secs())]
    BodyTimeout(Duration),
    #[error("the body could not be read: {0}")]
    BodyUnreadable(String),
    /// `forwarded`: the request came through the Functions host, whose legacy forwarding
    /// drops chunked bodies; otherwise the caller itself sent nothing.
    #[error("the request has no body")]
    EmptyBody { forwarded: bool },
    #[error(transparent)]
    InvalidInvocation(#[from] crate::http::host::InvocationError),
    #[error("Content-Type {0:?} is not JSON")]
    UnsupportedMediaType(Option<String>),
    #[error("method {0} is not allowed")]
    MethodNotAllowed(String),
    #[error("no function at {0}")]
    NotFound(String),
    /// Boxed: it carries Graph's whole answer, and every other variant is small.
    #[error(transparent)]
    Resume(Box<ResumeError>),
    #[error(transparent)]
    Conflict(DedupeError),
    #[error("the handler failed unexpectedly")]
    Internal,
    /// The connection cap (the number) is reached: this connection gets readiness only.
    #[error("{0} connections are open")]
    AtCapacity(usize),
    /// Stopping, with less time left than a resume may take.
    #[error("the gateway is stopping")]
    ShuttingDown,
    #[error(transparent)]
    Caller(#[from] CallerAuthError),
    #[error(transparent)]
    Scope(#[from] ScopeError),
}

/// What a client refused for capacity or shutdown should wait before trying again: either
/// clears within moments (a connection closes, another instance takes over).
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why an operator command stopped: the command line's counterpart of [`GatewayError`],
/// printed as one stderr line or, with `--json`, as one problem document on stdout.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// An argument cannot work; `argument` names it as typed (`--extension`).
    #[error("{message}")]
    InvalidArgument {
        argument: Option<String>,
        message: String,
    },
    #[error(transparent)]
    Setting(#[from] ConfigError),
    #[error(transparent)]
    CredentialSetup(#[from] CredentialSetupError),
    #[error(transparent)]
    Identity(#[from] CredentialError),
    /// Graph refused or did not answer; `remedy` is what the command knows about why.
    /// Boxed: it carries Graph's whole answer, and every other variant is small.
    #[error("{what} failed: {source}")]
    Graph {
        what: &'static str,
        source: Box<GetError>,
        remedy: Option<String>,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(String),
}

impl CommandError {
    /// True when nothing was tried because a setting or argument cannot work (exit code 2 in
    /// docs/operations.md's table), false when the identity or Graph said no (exit code 1).
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::InvalidArgument { .. } | Self::Setting(_))
    }

    /// The problem document for this failure.
    pub fn problem(&self) -> Problem {
        match self {
            Self::InvalidArgument { argument, message } => Problem::new(
                "invalid-argument",
                "An argument of the command is invalid",
                StatusCode::BAD_REQUEST,
                message.clone(),
            )
            .remedy("Fix the argument as described (see --help); nothing was sent.")
            .with("argument", argument),
            Self::Setting(e) => Problem::new(
                "invalid-setting",
                "A setting is invalid",
                StatusCode::BAD_REQUEST,
                e.to_string(),
            )
            .remedy(format!("Set {} to {} (or remove it to use the default); nothing was sent.", e.setting, e.allowed))
            .with("setting", e.setting),
            Self::CredentialSetup(e) => Problem::new(
                "identity-unavailable",
                "The credential could not be set up",
                StatusCode::SERVICE_UNAVAILABLE,
                e.to_string(),
            )
            .remedy("Check RESUME_CREDENTIAL and the variables it needs (IDENTITY_ENDPOINT/MSI_ENDPOINT are set by the platform)."),
            Self::Identity(e) => identity_problem(e),
            Self::Graph { what, source, remedy } => {
                let detail = format!("{what} failed: {source}");
                let (slug, title, status, failure) = match source.as_ref() {
                    GetError::Refused(f) => match f.status {
                        Some(401 | 403) => ("graph-forbidden", "Graph refused the identity", StatusCode::FAILED_DEPENDENCY, Some(f)),
                        Some(404) => ("graph-not-found", "Graph does not know the object", StatusCode::FAILED_DEPENDENCY, Some(f)),
                        _ => ("graph-rejected", "Graph refused the request", StatusCode::FAILED_DEPENDENCY, Some(f)),
                    },
                    GetError::Unavailable { last, .. } => ("graph-unavailable", "Graph did not answer in time", StatusCode::SERVICE_UNAVAILABLE, last.as_ref()),
                    _ => ("graph-rejected", "Graph's answer cannot be used", StatusCode::BAD_GATEWAY, None),
                };
                Problem::new(slug, title, status, detail)
                    .remedy(remedy.clone().unwrap_or_else(|| "Graph's code and message say why; run the command again if Graph was unavailable.".into()))
                    .with("graph", failure)
            }
            Self::Runtime(e) => Problem::new(
                "internal",
                "The command could not start",
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot start the async runtime: {e}"),
            )
            .remedy("Run the command again; the machine may be out of threads or memory."),
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
    #[serde(skip)]
    pub retry_after: Option<Duration>,
    #[serde(skip)]
    pub allow: Option<&'static str>,
    /// The `WWW-Authenticate` challenge of a 401.
    #[serde(skip)]
    pub www_authenticate: Option<&'static str>,
}

impl Problem {
    fn new(slug: &str, title: &'static str, status: StatusCode, detail: String) -> Self {
        Self {
            kind: format!("{TYPE_PREFIX}{slug}"),
            title,
            status: status.as_u16(),
            detail,
            remedy: None,
            extensions: Map::new(),
            retry_after: None,
            allow: None,
            www_authenticate: None,
        }
    }

    fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    fn remedy(mut self, remedy: impl Into<String>) -> Self {
        self.remedy = Some(remedy.into());
        self
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        if let Ok(v) = serde_json::to_value(value)
            && !v.is_null()
        {
            self.extensions.insert(key.to_owned(), v);
        }
        self
    }

    /// The stable part of `type`, e.g. `invalid-request`.
    pub fn slug(&self) -> &str {
        self.kind.strip_prefix(TYPE_PREFIX).unwrap_or(&self.kind)
    }
}

impl From<ResumeError> for GatewayError {
    fn from(e: ResumeError) -> Self {
        Self::Resume(Box::new(e))
    }
}

impl GatewayError {
    /// Graph's answer behind this error, when a resume or a read reached Graph.
    pub(crate) fn graph_failure(&self) -> Option<&GraphFailure> {
        match self {
            Self::Resume(e) => e.graph_failure(),
            Self::Scope(ScopeError::ReadRefused { failure, .. }) => Some(failure.as_ref()),
            Self::Scope(ScopeError::ReadUnavailable { last, .. }) => last.as_deref(),
            _ => None,
        }
    }

    /// How many attempts the resume (or the authorization read) made, when it got that far.
    pub(crate) fn attempts(&self) -> Option<u32> {
        match self {
            Self::Resume(e) => Some(e.attempts()),
            Self::Scope(ScopeError::ReadUnavailable { attempts, .. }) => Some(*attempts),
            _ => None,
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        match self {
            Self::Request(e @ RequestError::Malformed(_)) => Problem::new(
                "invalid-request",
                "The request body is not a resume request",
                StatusCode::BAD_REQUEST,
                e.to_string(),
            )
            .remedy("Send a JSON object with operationStatus and one target; see samples/ in the gateway's repository."),
            Self::Request(e @ RequestError::InvalidField { field, .. }) => Problem::new(
                "invalid-request",
                "A field of the resume request is invalid",
                StatusCode::BAD_REQUEST,
                e.to_string(),
            )
            .remedy(format!("Fix `{field}` as described and send the request again; nothing was sent to Graph."))
            .with("field", field),
            Self::Request(e @ RequestError::CallbackPathRefused { field, .. }) => Problem::new(
                "callback-path-refused",
                "The callbackUriPath is not a resume path the gateway calls",
                StatusCode::BAD_REQUEST,
                e.to_string(),
            )
            .remedy("Pass callbackUriPath exactly as the callout carries it (@triggerBody()?['data']?['callbackUriPath']), or pass the whole callout; the gateway only calls Lifecycle Workflows' taskProcessingResults resume actions and Entitlement Management's assignmentRequests resume action.")
            .with("field", field),
            Self::TooLarge(limit) => Problem::new(
                "payload-too-large",
                "The request body is too large",
                StatusCode::PAYLOAD_TOO_LARGE,
                if *limit == MAX_BODY_BYTES {
                    format!("The body is larger than {limit} bytes.")
                } else {
                    format!("The JSON invocation is larger than {limit} bytes, the limit for the Functions host's envelope around a request of at most {MAX_BODY_BYTES} bytes.")
                },
            )
            .remedy("Send only the callout (or its callbackUriPath) and the status; a resume request is a few kilobytes.")
            .with("limitBytes", limit),
            Self::BodyTimeout(deadline) => Problem::new(
                "request-timeout",
                "The request body arrived too slowly",
                StatusCode::REQUEST_TIMEOUT,
                format!("The body had not arrived in full within the request deadline of {} s. Nothing was sent to Graph.", deadline.as_secs()),
            )
            .remedy("Send the whole body at once with its Content-Length; a resume request is a few kilobytes."),
            Self::BodyUnreadable(reason) => Problem::new(
                "invalid-request",
                "The request body could not be read",
                StatusCode::BAD_REQUEST,
                format!("The body could not be read: {reason}."),
            )
            .remedy("Send the request again."),
            Self::EmptyBody { forwarded: false } => Problem::new(
                "invalid-request",
                "The request has no body",
                StatusCode::BAD_REQUEST,
                "The request body is empty.".into(),
            )
            .remedy("Send the resume request as the JSON body (see samples/). With curl -d @FILE, check the file's path: curl sends an empty body when it cannot read the file."),
            Self::EmptyBody { forwarded: true } => Problem::new(
                "invalid-request",
                "The request has no body",
                StatusCode::BAD_REQUEST,
                "The request arrived without a body. When the Function App forwards requests (enableForwardingHttpRequest), the Functions host passes a body on only if the request declares its Content-Length: a chunked request (Transfer-Encoding: chunked) arrives empty.".into(),
            )
            .remedy("Send the JSON body with a Content-Length header (Logic Apps and curl do), or use the shipped host.json (enableProxyingHttpRequest), which passes chunked bodies on; see samples/ for the request format."),
            Self::InvalidInvocation(e) => Problem::new(
                "invalid-invocation",
                "The invocation is not one the Functions host sends",
                StatusCode::BAD_REQUEST,
                format!("{e}."),
            )
            .remedy("The path /<FunctionName> takes the Functions host's JSON invocations; send resume requests to /api/<route> instead."),
            Self::UnsupportedMediaType(got) => Problem::new(
                "unsupported-media-type",
                "The request body must be JSON",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                match got {
                    Some(ct) => format!("Content-Type is {}, not application/json.", echo::quoted(ct)),
                    None => "The request has no Content-Type.".to_owned(),
                },
            )
            .remedy("Send the body as JSON with the header Content-Type: application/json."),
            Self::MethodNotAllowed(method) => {
                let mut p = Problem::new(
                    "method-not-allowed",
                    "Only POST resumes a task",
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{} is not supported here.", echo::cut(method)),
                )
                .remedy("Use POST with a JSON resume request.");
                p.allow = Some("POST");
                p
            }
            Self::NotFound(path) => Problem::new(
                "not-found",
                "No such function",
                StatusCode::NOT_FOUND,
                format!("Nothing is served at {}.", echo::cut(path)),
            )
            .remedy("POST resume requests to /api/function-resume."),
            Self::Resume(e) => resume_problem(e),
            Self::Conflict(e @ DedupeError::Conflict { in_flight, .. }) => Problem::new(
                "conflicting-status",
                "The task is already being resumed with the other status",
                StatusCode::CONFLICT,
                format!("{e}."),
            )
            .remedy(if *in_flight {
                "A task is resumed once. Wait for the request in flight to finish; if it fails, send the status you want again."
            } else {
                "A task is resumed once, and this one was already resumed with the other status; check the Logic App for two branches answering the same callout."
            }),
            Self::Conflict(DedupeError::Lost) => GatewayError::Internal.problem(),
            Self::Internal => Problem::new(
                "internal",
                "The gateway failed unexpectedly",
                StatusCode::INTERNAL_SERVER_ERROR,
                "The handler failed while processing this request; it was not resumed by this call.".into(),
            )
            .remedy("Send the request again; report the invocation id if it repeats."),
            Self::Caller(e) => caller_problem(e),
            Self::AtCapacity(cap) => Problem::new(
                "at-capacity",
                "The gateway has too many connections open",
                StatusCode::SERVICE_UNAVAILABLE,
                format!("The gateway already serves {cap} connections; this one is answered only at / (readiness). Nothing was sent to Graph."),
            )
            .remedy("Send the same request again after Retry-After; if this repeats, the instance needs more instances to share the load (scale out).")
            .retry_after(BUSY_RETRY_AFTER),
            Self::ShuttingDown => Problem::new(
                "shutting-down",
                "The gateway is stopping",
                StatusCode::SERVICE_UNAVAILABLE,
                "The gateway is stopping, and this request was not started: its body was still arriving, or less time is left than a resume may take (RESUME_DEADLINE_SECONDS). Nothing was sent to Graph.".into(),
            )
            .remedy("Send the same request again after Retry-After: another instance, or this one restarted, takes it.")
            .retry_after(BUSY_RETRY_AFTER),
            Self::Scope(e) => scope_problem(e),
        }
    }
}

const CALLER_REMEDY: &str = "Call the gateway with an Entra ID token for one of CALLER_AUDIENCES, e.g. a Logic App HTTP action with authentication type ManagedServiceIdentity and that audience; see \"Securing the gateway\" in the gateway's docs/security.md.";

fn caller_problem(error: &CallerAuthError) -> Problem {
    let unauthenticated = |title, challenge| {
        let mut p = Problem::new(
            "caller-unauthenticated",
            title,
            StatusCode::UNAUTHORIZED,
            error.to_string(),
        )
        .remedy(CALLER_REMEDY);
        p.www_authenticate = Some(challenge);
        p
    };
    match error {
        CallerAuthError::MissingHeader | CallerAuthError::WrongScheme(_) => {
            unauthenticated("The caller sent no bearer token", "Bearer")
        }
        CallerAuthError::InvalidToken { claim, .. } => unauthenticated(
            "The caller's token is not accepted",
            "Bearer error=\"invalid_token\"",
        )
        .with("claim", claim),
        CallerAuthError::NotAllowed { caller, claim, .. } => Problem::new(
            "caller-forbidden",
            "The caller may not resume tasks through this gateway",
            StatusCode::FORBIDDEN,
            error.to_string(),
        )
        .remedy(format!(
            "If this caller should be allowed, add its app id {} to CALLER_ALLOWED_APP_IDS{} and restart the gateway.",
            caller.app_id,
            match &caller.object_id {
                Some(o) => format!(" (and its object id {o} to CALLER_ALLOWED_OBJECT_IDS, if that is set)"),
                None => String::new(),
            }
        ))
        .with("claim", claim)
        .with("callerAppId", &caller.app_id)
        .with("callerObjectId", &caller.object_id),
        CallerAuthError::KeysUnavailable { reason, retry_after } => {
            let mut p = Problem::new(
                "caller-keys-unavailable",
                "The gateway cannot verify callers right now",
                StatusCode::SERVICE_UNAVAILABLE,
                format!("The caller tenant's signing keys could not be fetched, so no token can be verified: {reason}. Nothing was sent to Graph."),
            )
            .remedy("Nothing is lost: send the same request again after Retry-After. If it persists, check that the Function App can reach CALLER_AUTHORITY (outbound network, DNS) and that CALLER_TENANT_ID is right.");
            p.retry_after = Some(*retry_after);
            p.with("retryAfterSeconds", retry_after.as_secs().max(1))
        }
    }
}

fn scope_problem(error: &ScopeError) -> Problem {
    let refused = |title| {
        Problem::new(
            "caller-not-authorized-for-extension",
            title,
            StatusCode::FORBIDDEN,
            format!("{error} Nothing was sent to Graph's resume."),
        )
    };
    match error {
        ScopeError::NotAuthorized { caller_app_id, extension_id } => refused("The caller is not authorized for this task's custom task extension")
            .remedy(format!(
                "Either add app id {caller_app_id} to the authorizedApps of custom task extension {extension_id} \
                 (Entra admin center: Lifecycle workflows, Custom extensions, the extension, Authorized apps; \
                 the gateway re-reads a refused extension at most once a minute, so the grant works on a retry within a minute), \
                 or send this resume from a caller that is already listed there (the Logic App the extension calls)."
            ))
            .with("callerAppId", caller_app_id)
            .with("extensionId", extension_id.as_str()),
        ScopeError::ExtensionNotFound { caller_app_id, extension_id } => refused("The task's custom task extension does not exist")
            .remedy("Check the task's customTaskExtensionID argument in its workflow; a task whose extension was deleted cannot be resumed through the gateway.")
            .with("callerAppId", caller_app_id)
            .with("extensionId", extension_id.as_str()),
        ScopeError::NoExtension { caller_app_id, .. } => refused("The task runs no custom task extension")
            .remedy("Under CALLER_SCOPE=extension only tasks that run a custom task extension can be resumed; check that the callout or ids name the task that called the Logic App.")
            .with("callerAppId", caller_app_id),
        ScopeError::ReadRefused { failure, .. } => match failure.status {
            Some(401 | 403) => Problem::new(
                "authorization-read-forbidden",
                "The gateway may not read the task or its extension",
                StatusCode::FAILED_DEPENDENCY,
                format!("{error}. Without that read the caller cannot be checked, so nothing was sent to Graph's resume."),
            )
            .remedy(format!(
                "Grant the gateway's identity the Microsoft Graph application permission {READ_PERMISSION} \
                 (scripts/grant.sh --read), which CALLER_SCOPE=extension needs to read tasks and extensions; \
                 or set CALLER_SCOPE=tenant to let every allowed caller resume any task the gateway's identity may resume."
            )),
            _ => Problem::new(
                "authorization-read-rejected",
                "Graph refused the read of the task or its extension",
                StatusCode::FAILED_DEPENDENCY,
                format!("{error}. Nothing was sent to Graph's resume."),
            )
            .remedy("Check the workflow, task and taskProcessingResult ids (pass the callout unchanged); this answer will not change on retry."),
        }
        .with("graph", failure),
        ScopeError::ReadUnavailable { last, attempts, .. } => {
            let wait = last
                .as_ref()
                .and_then(|f| f.retry_after)
                .map_or(DEFAULT_RETRY_AFTER, |d| d.max(Duration::from_secs(1)));
            let mut p = Problem::new(
                "authorization-unavailable",
                "The gateway could not check the caller against the task's extension",
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{error}. Nothing was sent to Graph's resume."),
            )
            .remedy("Nothing is lost: the task is still waiting. Send the same request again after Retry-After; if it persists, check Graph's service health.")
            .with("graph", last)
            .with("attempts", attempts);
            p.retry_after = Some(wait);
            p.with("retryAfterSeconds", wait.as_secs())
        }
        ScopeError::AccessPackageUnscoped { caller_app_id } => Problem::new(
            "caller-scope-unsupported",
            "CALLER_SCOPE=extension cannot check Entitlement Management callers",
            StatusCode::FORBIDDEN,
            format!("{error} Nothing was sent to Graph's resume."),
        )
        .remedy(
            "Serve Entitlement Management from a gateway with CALLER_SCOPE=tenant (every caller in CALLER_ALLOWED_APP_IDS may then \
             resume any access-package request the gateway's identity may resume), or let this Logic App call Graph's resume itself.",
        )
        .with("callerAppId", caller_app_id),
        ScopeError::Identity(e) => {
            let mut p = identity_problem(e);
            p.retry_after = Some(DEFAULT_RETRY_AFTER);
            p.with("retryAfterSeconds", DEFAULT_RETRY_AFTER.as_secs())
        }
    }
}

fn resume_problem(error: &ResumeError) -> Problem {
    match error {
        ResumeError::Rejected {
            failure,
            identity,
            api,
            attempts,
            client_request_id,
        } => graph_rejected(failure, identity, *api)
            .with("graph", failure)
            .with("attempts", attempts)
            .with("clientRequestId", client_request_id),
        ResumeError::Unavailable {
            cause,
            retry_after,
            attempts,
            client_request_id,
        } => {
            let mut p = match cause {
                    Unavailable::Identity(e) => identity_problem(e),
                    Unavailable::Graph(f) => Problem::new(
                        "graph-unavailable",
                        "Graph did not accept the resume in time",
                        StatusCode::SERVICE_UNAVAILABLE,
                        match f.status {
                            Some(s) => format!("Graph answered {s} to the last of {attempts} attempts: {}", f.message),
                            None => format!("The last of {attempts} attempts failed: {}", f.message),
                        },
                    )
                    .remedy("Nothing is lost: the task is still waiting. Send the same request again after Retry-After (a Logic App retry policy does this); if it persists, check Graph's service health.")
                    .with("graph", f),
                    Unavailable::Deadline(d) => Problem::new(
                        "graph-unavailable",
                        "Graph did not accept the resume in time",
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("The request deadline of {} s passed before Graph answered.", d.as_secs()),
                    )
                    .remedy("Send the same request again after Retry-After; raise RESUME_DEADLINE_SECONDS if Graph is often this slow."),
                };
            p.retry_after = Some(*retry_after);
            p.with("attempts", attempts)
                .with("clientRequestId", client_request_id)
                .with("retryAfterSeconds", retry_after.as_secs())
        }
        ResumeError::HeldOtherwise {
            held,
            read,
            attempts,
            client_request_id,
            ..
        } => with_read(
            Problem::new(
                "graph-holds-other-status",
                "Graph already holds another final status for this task",
                StatusCode::CONFLICT,
                format!("{error}: the resume was refused or went unanswered, and reading the task processing result shows it is no longer waiting."),
            )
            .remedy(format!(
                "A task is resumed once. It ended as {held}, by another request (another branch of the Logic App, a retry on another instance) or by the extension's timeout; check the workflow's run history. Do not retry this request."
            ))
            .with("processingStatus", held),
            read,
        )
        .with("attempts", attempts)
        .with("clientRequestId", client_request_id),
        ResumeError::Unsettled { error, read } => with_read(resume_problem(error), read),
    }
}

/// The answer the gateway would have given without the read, with what the read found in
/// `graph.read` (the problem's `graph` member is created when the failure had none).
fn with_read(mut problem: Problem, read: &ReadBack) -> Problem {
    let Ok(read) = serde_json::to_value(read) else {
        return problem;
    };
    let graph = problem
        .extensions
        .entry("graph")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(graph) = graph {
        graph.insert("read".into(), read);
    }
    problem
}

fn identity_problem(e: &CredentialError) -> Problem {
    Problem::new(
        "identity-unavailable",
        "The gateway could not get a token for Graph",
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "{}. Nothing was sent to Graph.",
            e.message.trim_end_matches('.')
        ),
    )
    .remedy(e.remedy.clone())
    .with("cause", e.class)
}

fn graph_rejected(failure: &GraphFailure, identity: &TokenIdentity, api: Api) -> Problem {
    let status = failure.status.unwrap_or(0);
    let code = failure.code.as_deref().unwrap_or("no error code");
    let detail = format!(
        "Graph refused the resume with {status} ({code}): {}",
        failure.message
    );
    let problem =
        |slug, title| Problem::new(slug, title, StatusCode::FAILED_DEPENDENCY, detail.clone());
    match status {
        401 | 403 => {
            let who = match (&identity.app_id, &identity.object_id) {
                (Some(app), Some(obj)) => format!("application id {app}, object id {obj}"),
                (Some(app), None) => format!("application id {app}"),
                _ => "its application id: see the Identity blade of the Function App".into(),
            };
            let app = identity.app_id.as_deref().unwrap_or("<application id>");
            if api == Api::EntitlementManagement {
                let roles = if identity.has_role(ACCESS_PACKAGE_WRITE_PERMISSION) {
                    format!("The token does carry {ACCESS_PACKAGE_WRITE_PERMISSION}, so the grant may be too new: tokens are cached for up to 24 h, restart the Function App to get a fresh one.")
                } else {
                    format!("Now {}.", identity.roles_lacking(ACCESS_PACKAGE_WRITE_PERMISSION))
                };
                return problem("graph-forbidden", "Graph refused the gateway's identity")
                    .remedy(format!(
                        "Allow the Function App's identity ({who}) to resume access-package requests, either way: {}. {roles}",
                        ways_to_allow_access_package_resume(app)
                    ))
                    .with("identity", identity);
            }
            let roles = if identity.has_lifecycle_write() {
                format!("The token does carry {WRITE_PERMISSION}, so the task's workflow may be out of its reach, or the grant is too new: tokens are cached for up to 24 h, restart the Function App to get a fresh one.")
            } else {
                format!("Now {}.", identity.roles_lacking_write())
            };
            problem("graph-forbidden", "Graph refused the gateway's identity")
                .remedy(format!(
                    "Allow the Function App's identity ({who}) to resume this task, either way: {}. {roles}",
                    ways_to_allow_resume(app)
                ))
                .with("identity", identity)
        }
        404 if api == Api::EntitlementManagement => problem("graph-not-found", "Graph does not know this access package assignment request")
            .remedy("Check assignmentRequestId (pass the callout unchanged): the request may have been deleted or the id is from another tenant."),
        400 | 409 if api == Api::EntitlementManagement => problem("graph-rejected", "Graph refused the resume")
            .remedy("A stage that is no longer waiting (already resumed, or past the extension's timeout), a stage or customExtensionStageInstanceId that is not the one the request waits on, or a state at a stage that takes none is refused; check the request's customExtensionCalloutInstances (handler check --assignment-request). Do not retry this request unchanged."),
        404 => problem("graph-not-found", "Graph does not know this task processing result")
            .remedy("Check the workflow, task and taskProcessingResult ids (pass the callout unchanged); a result of a deleted workflow lives under deletedItems/workflows."),
        400 | 409 => problem("graph-rejected", "Graph refused the resume")
            .remedy("A task that is no longer waiting (already resumed, or failed after the extension's timeout) is refused; check the task's processing status in the workflow's history. Do not retry this request unchanged."),
        _ => problem("graph-rejected", "Graph refused the resume")
            .remedy("Graph's code and message say why; this answer will not change on retry."),
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| {
            json!({"type": self.kind, "status": self.status})
                .to_string()
                .into_bytes()
        });
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(wait) = self.retry_after {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(wait.as_secs().max(1)),
            );
        }
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(challenge) = self.www_authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        self.problem().into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(status: u16, roles: Vec<String>) -> GatewayError {
        rejected_by(status, roles, Api::LifecycleWorkflows)
    }

    fn rejected_by(status: u16, roles: Vec<String>, api: Api) -> GatewayError {
        GatewayError::from(ResumeError::Rejected {
            failure: GraphFailure {
                status: Some(status),
                code: Some("Forbidden".into()),
                message: "Insufficient privileges".into(),
                request_id: Some("req-1".into()),
                retry_after: None,
                throttle_scope: None,
            },
            identity: TokenIdentity {
                app_id: Some("11111111-2222-3333-4444-555555555555".into()),
                object_id: Some("obj".into()),
                tenant_id: None,
                roles,
            },
            api,
            attempts: 1,
            client_request_id: "c-1".into(),
        })
    }

    /// The summary line reads Graph's status, request id and the attempt count from the typed
    /// error; they must be what the problem document itself says, for every error that has them.
    #[test]
    fn entitlement_management_refusals_name_its_permission_and_role() {
        let p = rejected_by(
            403,
            vec!["User.Read.All".into()],
            Api::EntitlementManagement,
        )
        .problem();
        let remedy = p.remedy.clone().unwrap_or_default();
        assert_eq!(p.slug(), "graph-forbidden");
        assert!(remedy.contains(ACCESS_PACKAGE_WRITE_PERMISSION), "{remedy}");
        assert!(
            remedy.contains("Access package assignment manager"),
            "{remedy}"
        );
        assert!(
            remedy.contains("but not EntitlementManagement.ReadWrite.All"),
            "{remedy}"
        );
        assert!(!remedy.contains(WRITE_PERMISSION), "{remedy}");
        let p = rejected_by(
            403,
            vec![ACCESS_PACKAGE_WRITE_PERMISSION.into()],
            Api::EntitlementManagement,
        )
        .problem();
        assert!(
            p.remedy
                .unwrap_or_default()
                .contains("restart the Function App")
        );
        let p = rejected_by(404, vec![], Api::EntitlementManagement).problem();
        assert!(
            p.title.contains("access package assignment request"),
            "{}",
            p.title
        );
        let p = rejected_by(400, vec![], Api::EntitlementManagement).problem();
        assert!(
            p.remedy
                .unwrap_or_default()
                .contains("customExtensionCalloutInstances")
        );
        // Lifecycle Workflows' answers are unchanged.
        let p = rejected(403, vec![]).problem();
        assert!(p.remedy.unwrap_or_default().contains(WRITE_PERMISSION));
    }

    #[test]
    fn typed_accessors_agree_with_the_problem_document() {
        let failure = |status: Option<u16>| GraphFailure {
            status,
            code: None,
            message: "m".into(),
            request_id: Some("req-9".into()),
            retry_after: None,
            throttle_scope: None,
        };
        let read = ReadBack {
            case: crate::resume::ReadCase::Undecided,
            status: Some(200),
            processing_status: Some("inProgress".into()),
            code: None,
            message: "still waiting".into(),
            request_id: None,
        };
        let unavailable = |cause| ResumeError::Unavailable {
            cause,
            retry_after: Duration::from_secs(10),
            attempts: 4,
            client_request_id: "c".into(),
        };
        let errors = [
            rejected(403, vec![]),
            GatewayError::from(unavailable(Unavailable::Graph(failure(Some(503))))),
            GatewayError::from(unavailable(Unavailable::Graph(failure(None)))),
            GatewayError::from(unavailable(Unavailable::Deadline(Duration::from_secs(3)))),
            GatewayError::from(ResumeError::Unsettled {
                error: Box::new(unavailable(Unavailable::Graph(failure(Some(504))))),
                read: Box::new(read),
            }),
            GatewayError::Scope(ScopeError::ReadRefused {
                what: "the task".into(),
                failure: Box::new(failure(Some(403))),
            }),
            GatewayError::Scope(ScopeError::ReadUnavailable {
                what: "the task".into(),
                last: Some(Box::new(failure(Some(429)))),
                attempts: 3,
            }),
            GatewayError::TooLarge(1024),
        ];
        for error in &errors {
            let p = error.problem();
            let graph = p.extensions.get("graph");
            assert_eq!(
                error.graph_failure().and_then(|f| f.status).map(u64::from),
                graph.and_then(|g| g.get("status")).and_then(Value::as_u64),
                "{error}"
            );
            assert_eq!(
                error.graph_failure().and_then(|f| f.request_id.as_deref()),
                graph
                    .and_then(|g| g.get("requestId"))
                    .and_then(Value::as_str),
                "{error}"
            );
            assert_eq!(
                error.attempts().map(u64::from),
                p.extensions.get("attempts").and_then(Value::as_u64),
                "{error}"
            );
        }
        assert_eq!(errors[4].graph_failure().and_then(|f| f.status), Some(504));
        assert_eq!(errors[6].attempts(), Some(3));
    }

    #[test]
    fn forbidden_names_both_fixes_and_the_app_id() {
        let p = rejected(403, vec![]).problem();
        assert_eq!(p.status, 424);
        assert_eq!(p.slug(), "graph-forbidden");
        let remedy = p.remedy.unwrap();
        assert!(remedy.contains("authorizedApps"));
        assert!(remedy.contains("LifecycleWorkflows.ReadWrite.All"));
        assert!(remedy.contains("11111111-2222-3333-4444-555555555555"));
        assert!(remedy.contains("no application permissions"));
        assert_eq!(p.extensions["graph"]["requestId"], "req-1");
        assert_eq!(p.extensions["graph"]["status"], 403);
        let p = rejected(401, vec!["User.Read.All".into()]).problem();
        assert!(p.remedy.unwrap().contains("carries User.Read.All but not"));
    }

    #[test]
    fn other_refusals_keep_graphs_words() {
        for (status, slug) in [
            (404, "graph-not-found"),
            (400, "graph-rejected"),
            (409, "graph-rejected"),
        ] {
            let p = rejected(status, vec![]).problem();
            assert_eq!(p.status, 424);
            assert_eq!(p.slug(), slug);
            assert!(p.detail.contains("Insufficient privileges"));
            assert!(p.detail.contains(&status.to_string()));
        }
    }

    #[test]
    fn scope_refusals_name_the_caller_the_extension_and_the_fixes() {
        let ext = crate::request::ids::Guid::parse("1e2f3a4b-5c6d-4e7f-8a9b-0c1d2e3f4a5b").unwrap();
        let p = GatewayError::from(ScopeError::NotAuthorized {
            caller_app_id: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".into(),
            extension_id: ext,
        })
        .problem();
        assert_eq!(
            (p.status, p.slug()),
            (403, "caller-not-authorized-for-extension")
        );
        for text in [&p.detail, p.remedy.as_ref().unwrap()] {
            assert!(
                text.contains("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"),
                "{text}"
            );
            assert!(
                text.contains("1e2f3a4b-5c6d-4e7f-8a9b-0c1d2e3f4a5b"),
                "{text}"
            );
        }
        assert!(p.remedy.unwrap().contains("authorizedApps"));
        let failure = |status| GraphFailure {
            status: Some(status),
            code: Some("Forbidden".into()),
            message: "no".into(),
            request_id: None,
            retry_after: Some(Duration::from_secs(4)),
            throttle_scope: None,
        };
        let read = |status| {
            GatewayError::from(ScopeError::ReadRefused {
                what: "/identityGovernance/lifecycleWorkflows/customTaskExtensions/x".into(),
                failure: Box::new(failure(status)),
            })
            .problem()
        };
        let p = read(403);
        assert_eq!((p.status, p.slug()), (424, "authorization-read-forbidden"));
        let remedy = p.remedy.unwrap();
        assert!(
            remedy.contains("LifecycleWorkflows.Read.All")
                && remedy.contains("CALLER_SCOPE=tenant")
        );
        assert_eq!(read(404).slug(), "authorization-read-rejected");
        let r = GatewayError::from(ScopeError::ReadUnavailable {
            what: "x".into(),
            last: Some(Box::new(failure(503))),
            attempts: 3,
        })
        .into_response();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "4");
    }

    #[test]
    fn unavailable_sets_retry_after() {
        let e = GatewayError::from(ResumeError::Unavailable {
            cause: Unavailable::Deadline(Duration::from_secs(60)),
            retry_after: Duration::from_secs(7),
            attempts: 3,
            client_request_id: "c".into(),
        });
        let r = e.into_response();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }
}
