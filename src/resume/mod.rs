//! Resuming one task: token, Graph call, retries, all inside the request's deadline.

pub(crate) mod dedupe;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Config;
use crate::graph::{self, AttemptError, GraphClient, GraphFailure, ResumeBody};
use crate::identity::{CredentialError, GraphToken, TokenIdentity, TokenSource};
use crate::request::ids::Guid;
use crate::request::path::ResumeTarget;
use crate::request::{OperationStatus, ResumeRequest};
use crate::retry;

/// What a 503 asks the caller to wait when Graph named no time itself.
pub(crate) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(10);
/// Less of the deadline than this left after the resume, and the reconciling read is skipped:
/// it could not get an answer, and the caller is owed its answer by the deadline.
const MIN_READ_BUDGET: Duration = Duration::from_millis(200);
/// `processingStatus` values after which a task takes no resume (Graph's
/// `lifecycleWorkflowProcessingStatus`). The rest (`queued`, `inProgress`, `canceling`,
/// `quarantined`, `unknownFutureValue`, anything newer) decide nothing.
const FINAL_STATUSES: [&str; 4] = ["completed", "completedWithErrors", "failed", "canceled"];

/// A resume Graph accepted (or, in dry-run, would have been sent).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub target: ResumeTarget,
    pub status: OperationStatus,
    pub graph_status: Option<u16>,
    pub graph_request_id: Option<String>,
    pub client_request_id: String,
    pub attempts: u32,
    /// From the request's start to Graph's answer.
    pub elapsed: Duration,
    /// In dry-run: the request that would have been sent.
    pub dry_run: Option<DryRun>,
    /// True when this answer repeats an earlier success instead of calling Graph again, or
    /// when a read showed that Graph already holds the status asked for.
    pub already_resumed: bool,
    /// True when Graph's own record (a read of the taskProcessingResult after an ambiguous
    /// resume) is what showed the task already holds the status asked for.
    pub confirmed_by_read: bool,
}

/// The success answer: the HTTP function returns it, and `handler resume --json` prints it.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resumed<'a> {
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
    confirmed_by_read: bool,
    /// The caller's reasons, given back: Graph's resume action has no place for them.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    status_reasons: &'a [String],
    graph_status: Option<u16>,
    graph_request_id: Option<&'a str>,
    client_request_id: &'a str,
    attempts: u32,
    elapsed_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<&'a DryRun>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invocation_id: Option<&'a str>,
    /// With `CALLER_SCOPE=extension`: what allowed this caller (or that the check was skipped).
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization: Option<&'a str>,
}

impl<'a> Resumed<'a> {
    /// The answer for `outcome` to a request with `status_reasons`; `elapsed` is the caller's
    /// whole request, `invocation_id` the Functions host's id for it when there is one.
    pub fn new(
        outcome: &'a Outcome,
        status_reasons: &'a [String],
        elapsed: Duration,
        invocation_id: Option<&'a str>,
    ) -> Self {
        let target = &outcome.target;
        Self {
            outcome: if outcome.dry_run.is_some() {
                "dry-run"
            } else {
                "resumed"
            },
            workflow_id: target.workflow_id.as_str(),
            task_id: target.task_id.as_ref().map(Guid::as_str),
            run_id: target.run_id.as_ref().map(Guid::as_str),
            task_processing_result_id: target.result_id.as_str(),
            operation_status: outcome.status.as_str(),
            dry_run: outcome.dry_run.is_some(),
            already_resumed: outcome.already_resumed,
            confirmed_by_read: outcome.confirmed_by_read,
            status_reasons,
            graph_status: outcome.graph_status,
            graph_request_id: outcome.graph_request_id.as_deref(),
            client_request_id: &outcome.client_request_id,
            attempts: outcome.attempts,
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            request: outcome.dry_run.as_ref(),
            invocation_id,
            authorization: None,
        }
    }

    /// The answer saying how the caller was authorized for this task.
    pub fn authorized(mut self, how: Option<&'a str>) -> Self {
        self.authorization = how;
        self
    }
}

/// The request a dry run would have sent.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DryRun {
    pub method: &'static str,
    pub url: String,
    pub body: ResumeBody,
}

/// Why a resume did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResumeError {
    /// Graph refused the resume for good.
    #[error("Graph refused the resume: {}", failure.message)]
    Rejected {
        failure: GraphFailure,
        identity: TokenIdentity,
        attempts: u32,
        client_request_id: String,
    },
    /// Graph or the identity endpoint could not be reached within the deadline.
    #[error("{cause}")]
    Unavailable {
        cause: Unavailable,
        retry_after: Duration,
        attempts: u32,
        client_request_id: String,
    },
    /// The resume ended ambiguously, and reading the taskProcessingResult showed Graph holds
    /// a final status other than the one asked for.
    #[error("Graph holds task processing result {result_id} as {held}; this request asks for {}", .asked.as_str())]
    HeldOtherwise {
        result_id: Guid,
        held: String,
        asked: OperationStatus,
        read: Box<ReadBack>,
        attempts: u32,
        client_request_id: String,
    },
    /// The resume ended ambiguously, and the read settled nothing: the answer is `error`'s,
    /// with what the read found.
    #[error("{error}")]
    Unsettled {
        error: Box<ResumeError>,
        read: Box<ReadBack>,
    },
}

/// What reading the taskProcessingResult showed, for the answer's `graph.read` and the log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadBack {
    pub case: ReadCase,
    /// The GET's HTTP status; `None` when none came.
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
}

/// Which way the read went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ReadCase {
    /// Graph holds the status asked for.
    Confirmed,
    /// Graph holds another final status.
    HeldOtherwise,
    /// Graph holds a status that is not final, or one the gateway does not know.
    Undecided,
    /// The read was refused or failed.
    Unreadable,
    /// Too little of the deadline was left to read.
    Skipped,
}

impl ReadCase {
    /// The name the answer's `graph.read.case` and the log use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::HeldOtherwise => "heldOtherwise",
            Self::Undecided => "undecided",
            Self::Unreadable => "unreadable",
            Self::Skipped => "skipped",
        }
    }
}

/// What stood in the way of a resume that may work later.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unavailable {
    #[error("Graph did not accept the resume in time: {}", .0.message)]
    Graph(GraphFailure),
    #[error("{}", .0.message)]
    Identity(CredentialError),
    #[error("the request deadline of {} s passed before Graph answered", .0.as_secs())]
    Deadline(Duration),
}

/// How one try ended badly; a Graph failure keeps the token it was sent with, for the read.
#[derive(Debug, Clone)]
enum TryError {
    Identity(CredentialError),
    Graph(AttemptError, Arc<GraphToken>),
}

impl retry::Failure for TryError {
    fn retryable(&self) -> bool {
        match self {
            Self::Identity(e) => e.retryable(),
            Self::Graph(e, _) => e.retryable(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Identity(_) => None,
            Self::Graph(e, _) => e.retry_after(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Identity(e) => e.message.clone(),
            Self::Graph(e, _) => e.describe(),
        }
    }
}

/// Told about each wait before another try: what failed, how long the wait is, and how many
/// attempts were made so far.
pub type Progress = Box<dyn Fn(&str, Duration, u32) + Send + Sync>;

/// Sends resumes to Graph with the gateway's identity.
pub struct Resumer {
    graph: GraphClient,
    tokens: Arc<TokenSource>,
    default_source: String,
    deadline: Duration,
    dry_run: bool,
    progress: Option<Progress>,
}

impl std::fmt::Debug for Resumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resumer")
            .field("tokens", &self.tokens)
            .field("deadline", &self.deadline)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

impl Resumer {
    /// A resumer with the settings' Graph, deadline and mode.
    pub fn new(config: &Config, tokens: Arc<TokenSource>) -> Self {
        Self {
            graph: GraphClient::new(config),
            tokens,
            default_source: config.default_source.clone(),
            deadline: config.deadline,
            dry_run: config.dry_run,
            progress: None,
        }
    }

    /// The time budget of one request, from its start to its answer.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The Graph client resumes go through (its connections serve the other reads too).
    pub fn graph(&self) -> &GraphClient {
        &self.graph
    }

    /// Also tells `progress` about every wait before a retry (the CLI prints them, so a
    /// person sees why a command takes long).
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Resumes the task, retrying transient failures until `started + deadline`.
    pub async fn resume(
        &self,
        request: &ResumeRequest,
        started: Instant,
    ) -> Result<Outcome, ResumeError> {
        let client_request_id = crate::graph::client_request_id();
        let body = ResumeBody::new(
            request.status,
            request
                .source
                .clone()
                .unwrap_or_else(|| self.default_source.clone()),
        );
        let outcome = |graph_status, graph_request_id, attempts, dry_run| Outcome {
            target: request.target.clone(),
            status: request.status,
            graph_status,
            graph_request_id,
            client_request_id: client_request_id.clone(),
            attempts,
            elapsed: started.elapsed(),
            dry_run,
            already_resumed: false,
            confirmed_by_read: false,
        };

        if self.dry_run {
            let dry = DryRun {
                method: "POST",
                url: self.graph.url(&request.target.path),
                body,
            };
            tracing::info!(
                url = %dry.url,
                body = %serde_json::to_string(&dry.body).unwrap_or_default(),
                "dry run: this request would be sent to Graph"
            );
            return Ok(outcome(None, None, 0, Some(dry)));
        }

        let deadline = started + self.deadline;
        let path = request.target.path.as_str();
        let run = retry::run(
            deadline,
            || self.try_once(path, &body, &client_request_id, deadline),
            |e: &TryError, wait, attempts| {
                if let Some(progress) = &self.progress {
                    progress(&retry::Failure::describe(e), wait, attempts);
                }
            },
        )
        .await;
        let attempts = run.attempts;
        let last = match run.result {
            Ok(accepted) => {
                return Ok(outcome(
                    Some(accepted.status),
                    accepted.request_id,
                    attempts,
                    None,
                ));
            }
            Err(last) => last,
        };
        let read_with = last.as_ref().and_then(ambiguous);
        let error = match last {
            Some(TryError::Graph(AttemptError::Permanent(failure), token)) => {
                ResumeError::Rejected {
                    failure,
                    identity: token.identity.clone(),
                    attempts,
                    client_request_id,
                }
            }
            other => self.unavailable(other, attempts, client_request_id),
        };
        match read_with {
            Some(token) => {
                self.reconcile(request, error, &token, deadline, started, attempts)
                    .await
            }
            None => Err(error),
        }
    }

    /// After an ambiguous end, one read of the taskProcessingResult (no retries, the same
    /// token, inside the deadline) decides what to answer: another instance, an earlier try
    /// whose answer was lost, or a repeat may already have resumed it. Only the failure path
    /// comes here; a resume Graph accepted costs no read.
    async fn reconcile(
        &self,
        request: &ResumeRequest,
        error: ResumeError,
        token: &GraphToken,
        deadline: Instant,
        started: Instant,
        attempts: u32,
    ) -> Result<Outcome, ResumeError> {
        let client_request_id = match &error {
            ResumeError::Rejected {
                client_request_id, ..
            }
            | ResumeError::Unavailable {
                client_request_id, ..
            } => client_request_id.clone(),
            _ => graph::client_request_id(),
        };
        let target = &request.target;
        let left = deadline.saturating_duration_since(Instant::now());
        let read = if left < MIN_READ_BUDGET {
            ReadBack {
                case: ReadCase::Skipped,
                status: None,
                processing_status: None,
                code: None,
                message: format!(
                    "not read: {} ms of the deadline were left",
                    left.as_millis()
                ),
                request_id: None,
            }
        } else {
            let url = self.graph.url(&format!(
                "{}?$select=id,processingStatus",
                target.result_path()
            ));
            match self
                .graph
                .get(
                    &url,
                    token.secret(),
                    &client_request_id,
                    left.min(retry::ATTEMPT_TIMEOUT),
                )
                .await
            {
                Ok(fetched) => {
                    let held = fetched
                        .body
                        .get("processingStatus")
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_owned);
                    ReadBack {
                        case: match held.as_deref() {
                            Some(h) if h == request.status.as_str() => ReadCase::Confirmed,
                            Some(h) if FINAL_STATUSES.contains(&h) => ReadCase::HeldOtherwise,
                            _ => ReadCase::Undecided,
                        },
                        status: Some(200),
                        message: match &held {
                            Some(h) => format!("Graph holds the task processing result as {h}"),
                            None => "Graph's answer has no processingStatus".into(),
                        },
                        processing_status: held,
                        code: None,
                        request_id: fetched.request_id,
                    }
                }
                Err(AttemptError::Transient(f) | AttemptError::Permanent(f)) => ReadBack {
                    case: ReadCase::Unreadable,
                    status: f.status,
                    processing_status: None,
                    code: f.code,
                    message: f.message,
                    request_id: f.request_id,
                },
            }
        };
        tracing::info!(
            task_processing_result_id = target.result_id.as_str(),
            read = read.case.as_str(),
            read_status = read.status,
            processing_status = read.processing_status.as_deref(),
            "resume ended ambiguously; read the task processing result: {}",
            match read.case {
                ReadCase::Confirmed => "it already holds the status asked for, answered as resumed",
                ReadCase::HeldOtherwise => "it holds another final status, answered 409",
                _ => "nothing settled, answered as without the read",
            }
        );
        match read.case {
            ReadCase::Confirmed => Ok(Outcome {
                target: target.clone(),
                status: request.status,
                graph_status: read.status,
                graph_request_id: read.request_id,
                client_request_id,
                attempts,
                elapsed: started.elapsed(),
                dry_run: None,
                already_resumed: true,
                confirmed_by_read: true,
            }),
            ReadCase::HeldOtherwise => Err(ResumeError::HeldOtherwise {
                result_id: target.result_id.clone(),
                held: read.processing_status.clone().unwrap_or_default(),
                asked: request.status,
                read: Box::new(read),
                attempts,
                client_request_id,
            }),
            _ => Err(ResumeError::Unsettled {
                error: Box::new(error),
                read: Box::new(read),
            }),
        }
    }

    async fn try_once(
        &self,
        path: &str,
        body: &ResumeBody,
        client_request_id: &str,
        deadline: Instant,
    ) -> Result<crate::graph::Accepted, TryError> {
        let token = self.tokens.token().await.map_err(TryError::Identity)?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        // A fifth of what is left (at most 2 s) stays for the read that follows an attempt
        // that times out: otherwise a hanging attempt would use the deadline up, and the read
        // that can tell whether it landed would never run.
        let reserve = (remaining / 5).min(Duration::from_secs(2));
        self.graph
            .resume(
                path,
                body,
                &token,
                client_request_id,
                (remaining - reserve).min(retry::ATTEMPT_TIMEOUT),
            )
            .await
            .map_err(|e| TryError::Graph(e, token))
    }

    fn unavailable(
        &self,
        last: Option<TryError>,
        attempts: u32,
        client_request_id: String,
    ) -> ResumeError {
        let (cause, asked) = match last {
            Some(TryError::Identity(e)) => (Unavailable::Identity(e), None),
            Some(TryError::Graph(AttemptError::Transient(f) | AttemptError::Permanent(f), _)) => {
                let asked = f.retry_after;
                (Unavailable::Graph(f), asked)
            }
            None => (Unavailable::Deadline(self.deadline), None),
        };
        ResumeError::Unavailable {
            cause,
            retry_after: asked
                .map(|d| d.max(Duration::from_secs(1)))
                .unwrap_or(DEFAULT_RETRY_AFTER),
            attempts,
            client_request_id,
        }
    }
}

/// The token to read with, when a resume ended in a way that leaves its effect unknown or
/// claims it does not apply: Graph refused it with 400, 404 or 409 (a task no longer waiting
/// may answer so), or the last attempt got no answer (timed out, or the connection was lost).
fn ambiguous(last: &TryError) -> Option<Arc<GraphToken>> {
    match last {
        TryError::Graph(AttemptError::Permanent(f), token)
            if matches!(f.status, Some(400 | 404 | 409)) =>
        {
            Some(Arc::clone(token))
        }
        TryError::Graph(AttemptError::Transient(f), token) if f.status.is_none() => {
            Some(Arc::clone(token))
        }
        _ => None,
    }
}
