//! Resuming one task (or one access-package request's stage): token, Graph call, retries,
//! all inside the request's deadline.

pub(crate) mod dedupe;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Config;
use crate::graph::{self, AttemptError, GraphBody, GraphClient, GraphFailure};
use crate::identity::{CredentialError, GraphToken, TokenIdentity, TokenSource};
use crate::request::access_package::AccessPackageTarget;
use crate::request::ids::Guid;
use crate::request::{Resume, Target};
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
/// `customExtensionCalloutInstanceStatus` values after which a stage instance takes no resume:
/// the callout failed, or its wait timed out. (`callbackReceived` is the resume itself.)
const FINAL_CALLOUT_STATUSES: [&str; 2] = ["calloutFailed", "callbackTimedOut"];

/// A resume Graph accepted (or, in dry-run, would have been sent).
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What was resumed, with the outcome asked for.
    pub target: Target,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    workflow_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_processing_result_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    operation_status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    assignment_request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_extension_stage_instance_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage: Option<&'static str>,
    /// For an access-package resume: `denied`, `canceled`, or `null` (the request continues).
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<Option<&'static str>>,
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
        let (task, status) = match &outcome.target {
            Target::Task(t, s) => (Some(t), Some(s.as_str())),
            Target::AccessPackage(_) => (None, None),
        };
        let em = outcome.target.access_package();
        Self {
            outcome: if outcome.dry_run.is_some() {
                "dry-run"
            } else {
                "resumed"
            },
            workflow_id: task.map(|t| t.workflow_id.as_str()),
            task_id: task.and_then(|t| t.task_id.as_ref().map(Guid::as_str)),
            run_id: task.and_then(|t| t.run_id.as_ref().map(Guid::as_str)),
            task_processing_result_id: task.map(|t| t.result_id.as_str()),
            operation_status: status,
            assignment_request_id: em.map(|t| t.request.request_id.as_str()),
            custom_extension_stage_instance_id: em.map(|t| t.stage_instance_id.as_str()),
            stage: em.map(|t| t.stage.as_str()),
            state: em.map(|t| t.state.map(|s| s.as_str())),
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
    pub body: GraphBody,
}

/// Why a resume did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResumeError {
    /// Graph refused the resume for good.
    #[error("Graph refused the resume: {}", failure.message)]
    Rejected {
        failure: GraphFailure,
        identity: TokenIdentity,
        /// Which API refused: the permission to name depends on it.
        api: Api,
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
    /// The resume ended ambiguously, and reading the taskProcessingResult (or the assignment
    /// request's callout instance) showed Graph holds a final status other than the one asked for.
    #[error("Graph holds {subject} as {held}; this request asks for {asked}")]
    HeldOtherwise {
        /// The target in words ([`Target::describe`]).
        subject: String,
        held: String,
        asked: &'static str,
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

impl ResumeError {
    /// Graph's answer behind this error, when Graph answered (not for an identity failure,
    /// the deadline, or a read that settled the status).
    pub fn graph_failure(&self) -> Option<&GraphFailure> {
        match self {
            Self::Rejected { failure, .. } => Some(failure),
            Self::Unavailable {
                cause: Unavailable::Graph(failure),
                ..
            } => Some(failure),
            Self::Unavailable { .. } | Self::HeldOtherwise { .. } => None,
            Self::Unsettled { error, .. } => error.graph_failure(),
        }
    }

    /// How many resume attempts were made.
    pub fn attempts(&self) -> u32 {
        match self {
            Self::Rejected { attempts, .. }
            | Self::Unavailable { attempts, .. }
            | Self::HeldOtherwise { attempts, .. } => *attempts,
            Self::Unsettled { error, .. } => error.attempts(),
        }
    }
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

/// Which Graph API a resume goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    LifecycleWorkflows,
    EntitlementManagement,
}

impl Api {
    fn of(target: &Target) -> Self {
        match target {
            Target::Task(..) => Self::LifecycleWorkflows,
            Target::AccessPackage(_) => Self::EntitlementManagement,
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

    /// Resumes the task (or the access-package request's stage), retrying transient
    /// failures until `started + deadline`.
    pub async fn resume(&self, request: &Resume, started: Instant) -> Result<Outcome, ResumeError> {
        self.send(request.target(), self.body(request), started)
            .await
    }

    /// What Graph receives for `request` (the settings' `source` when it gives none).
    pub fn body(&self, request: &Resume) -> GraphBody {
        GraphBody::new(request, &self.default_source)
    }

    /// [`Self::resume`] with the target and body already taken from the request, so that a
    /// caller that needs the target itself (the function: for dedupe) copies nothing twice.
    pub async fn send(
        &self,
        target: Target,
        body: GraphBody,
        started: Instant,
    ) -> Result<Outcome, ResumeError> {
        let client_request_id = crate::graph::client_request_id();
        // Takes the target: a success moves it into the answer instead of copying it.
        let outcome = |target, graph_status, graph_request_id, attempts, dry_run| Outcome {
            target,
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
                url: self.graph.url(target.path()),
                body,
            };
            tracing::info!(
                url = %dry.url,
                body = %serde_json::to_string(&for_log(&dry.body)).unwrap_or_default(),
                "dry run: this request would be sent to Graph"
            );
            return Ok(outcome(target, None, None, 0, Some(dry)));
        }

        let deadline = started + self.deadline;
        let path = target.path();
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
                    target,
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
                    api: Api::of(&target),
                    attempts,
                    client_request_id,
                }
            }
            other => self.unavailable(other, attempts, client_request_id),
        };
        match read_with {
            Some(token) => {
                self.reconcile(&target, error, &token, deadline, started, attempts)
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
        target: &Target,
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
            let url = self.graph.url(&read_path(target));
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
                    let (case, held, message) = judge(target, &fetched.body);
                    ReadBack {
                        case,
                        status: Some(200),
                        message,
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
            task_processing_result_id = target.task().map(|t| t.result_id.as_str()),
            assignment_request_id = target
                .access_package()
                .map(|t| t.request.request_id.as_str()),
            custom_extension_stage_instance_id = target
                .access_package()
                .map(|t| t.stage_instance_id.as_str()),
            read = read.case.as_str(),
            read_status = read.status,
            processing_status = read.processing_status.as_deref(),
            "resume ended ambiguously; read {}: {}",
            match target {
                Target::Task(..) => "the task processing result",
                Target::AccessPackage(_) => "the assignment request's callout instances",
            },
            match read.case {
                ReadCase::Confirmed => "it already holds the status asked for, answered as resumed",
                ReadCase::HeldOtherwise => "it holds another final status, answered 409",
                _ => "nothing settled, answered as without the read",
            }
        );
        match read.case {
            ReadCase::Confirmed => Ok(Outcome {
                target: target.clone(),
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
                subject: target.describe(),
                held: read.processing_status.clone().unwrap_or_default(),
                asked: target.verdict(),
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
        body: &GraphBody,
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

/// A body as a log line may show it: an access-package resume's `detail` is a caller's free
/// text about a person (the answer gives it back; the log keeps only its length).
fn for_log(body: &GraphBody) -> std::borrow::Cow<'_, GraphBody> {
    match body {
        GraphBody::AccessPackage(b) => match &b.data.custom_extension_stage_instance_detail {
            Some(detail) => {
                let mut b = b.clone();
                b.data.custom_extension_stage_instance_detail = Some(format!(
                    "({} characters, not logged)",
                    detail.chars().count()
                ));
                std::borrow::Cow::Owned(GraphBody::AccessPackage(b))
            }
            None => std::borrow::Cow::Borrowed(body),
        },
        GraphBody::Task(_) => std::borrow::Cow::Borrowed(body),
    }
}

/// What the reconciling read GETs: the taskProcessingResult's status, or the assignment
/// request's custom-extension callout instances (the metadata's `customExtensionCalloutInstances`
/// on `accessPackageAssignmentRequest`, each with its `id` and `status`).
fn read_path(target: &Target) -> String {
    match target {
        Target::Task(t, _) => format!("{}?$select=id,processingStatus", t.result_path()),
        Target::AccessPackage(t) => format!(
            "{}?$select=id,state,customExtensionCalloutInstances",
            t.request.request_path()
        ),
    }
}

/// What the read says: which case, the status Graph holds, and that in words.
fn judge(target: &Target, body: &serde_json::Value) -> (ReadCase, Option<String>, String) {
    match target {
        Target::Task(_, status) => {
            let held = body
                .get("processingStatus")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned);
            let case = match held.as_deref() {
                Some(h) if h == status.as_str() => ReadCase::Confirmed,
                Some(h) if FINAL_STATUSES.contains(&h) => ReadCase::HeldOtherwise,
                _ => ReadCase::Undecided,
            };
            let message = match &held {
                Some(h) => format!("Graph holds the task processing result as {h}"),
                None => "Graph's answer has no processingStatus".into(),
            };
            (case, held, message)
        }
        Target::AccessPackage(t) => judge_callout(t, body),
    }
}

/// The stage instance's callout status decides. `callbackReceived` confirms a resume without a
/// state; one that denies or cancels is confirmed only when the request's own `state` shows it
/// too, since the instance does not record what the callback said.
fn judge_callout(
    target: &AccessPackageTarget,
    body: &serde_json::Value,
) -> (ReadCase, Option<String>, String) {
    let instance = body
        .get("customExtensionCalloutInstances")
        .and_then(serde_json::Value::as_array)
        .and_then(|all| {
            all.iter().find(|i| {
                i.get("id")
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|id| id.eq_ignore_ascii_case(target.stage_instance_id.as_str()))
            })
        });
    let Some(instance) = instance else {
        return (
            ReadCase::Undecided,
            None,
            format!(
                "the assignment request lists no callout instance {}",
                target.stage_instance_id
            ),
        );
    };
    let held = instance
        .get("status")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    let request_state = body.get("state").and_then(serde_json::Value::as_str);
    let case = match held.as_deref() {
        Some("callbackReceived") => match target.state {
            None => ReadCase::Confirmed,
            Some(s) if request_state.is_some_and(|r| r.eq_ignore_ascii_case(s.as_str())) => {
                ReadCase::Confirmed
            }
            Some(_) => ReadCase::Undecided,
        },
        Some(h) if FINAL_CALLOUT_STATUSES.contains(&h) => ReadCase::HeldOtherwise,
        _ => ReadCase::Undecided,
    };
    let message = match &held {
        Some(h) => format!(
            "Graph holds callout instance {} as {h} (request state {})",
            target.stage_instance_id,
            request_state.unwrap_or("unknown")
        ),
        None => "Graph's callout instance has no status".into(),
    };
    (case, held, message)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const A: &str = "0e60f18c-b2a0-4887-9da8-da2e30a39d99";
    const S: &str = "957d0c50-466b-4840-bb5b-c92cea7141ff";

    fn target(state: Option<&str>) -> Target {
        let mut body = json!({"assignmentRequestId": A, "customExtensionStageInstanceId": S, "stage": "assignmentRequestCreated"});
        if let Some(state) = state {
            body["state"] = json!(state);
        }
        Resume::parse(body.to_string().as_bytes()).unwrap().target()
    }

    fn read(status: &str, state: &str) -> serde_json::Value {
        json!({"id": A, "state": state, "customExtensionCalloutInstances": [
            {"id": "11111111-1111-4111-8111-111111111111", "status": "callbackReceived"},
            {"id": S.to_uppercase(), "status": status}]})
    }

    #[test]
    fn the_stage_instance_decides_an_access_package_read() {
        let go = target(None);
        assert_eq!(
            read_path(&go),
            format!(
                "/identityGovernance/entitlementManagement/assignmentRequests/{A}?$select=id,state,customExtensionCalloutInstances"
            )
        );
        let case = |t: &Target, body| judge(t, &body).0;
        assert_eq!(
            case(&go, read("callbackReceived", "delivering")),
            ReadCase::Confirmed
        );
        assert_eq!(
            case(&go, read("callbackTimedOut", "submitted")),
            ReadCase::HeldOtherwise
        );
        assert_eq!(
            case(&go, read("calloutFailed", "submitted")),
            ReadCase::HeldOtherwise
        );
        assert_eq!(
            case(&go, read("waitingForCallback", "submitted")),
            ReadCase::Undecided
        );
        // Another instance's status says nothing about this one.
        assert_eq!(
            case(
                &go,
                json!({"customExtensionCalloutInstances": [{"id": A, "status": "callbackReceived"}]})
            ),
            ReadCase::Undecided
        );
        assert_eq!(case(&go, json!({})), ReadCase::Undecided);
        // A denial is confirmed only by the request's own state.
        let deny = target(Some("denied"));
        assert_eq!(
            case(&deny, read("callbackReceived", "denied")),
            ReadCase::Confirmed
        );
        assert_eq!(
            case(&deny, read("callbackReceived", "delivering")),
            ReadCase::Undecided
        );
        assert_eq!(
            judge(&go, &read("callbackTimedOut", "x")).1.as_deref(),
            Some("callbackTimedOut")
        );
    }
}
