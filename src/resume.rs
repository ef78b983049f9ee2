//! Resuming one task: token, Graph call, retries, all inside the request's deadline.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::Retryable;
use tokio::time::Instant;

use crate::callout::{OperationStatus, ResumeRequest};
use crate::config::Config;
use crate::credential::{CredentialError, TokenIdentity, TokenSource};
use crate::graph::{self, AttemptError, GraphClient, GraphFailure, ResumeBody};
use crate::ids::Guid;
use crate::resume_path::ResumeTarget;

/// No single Graph attempt may take longer than this, so a hung connection leaves time to retry.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// What a 503 asks the caller to wait when Graph named no time itself.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(10);

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
    /// True when this answer repeats an earlier success instead of calling Graph again.
    pub already_resumed: bool,
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

impl<'a> Resumed<'a> {
    /// The answer for `outcome`; `elapsed` is the caller's whole request, `invocation_id` the
    /// Functions host's id for it when there is one.
    pub fn new(outcome: &'a Outcome, elapsed: Duration, invocation_id: Option<&'a str>) -> Self {
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
            graph_status: outcome.graph_status,
            graph_request_id: outcome.graph_request_id.as_deref(),
            client_request_id: &outcome.client_request_id,
            attempts: outcome.attempts,
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            request: outcome.dry_run.as_ref(),
            invocation_id,
        }
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

/// How one try ended badly.
#[derive(Debug, Clone)]
enum TryError {
    Identity(CredentialError),
    Graph(AttemptError, TokenIdentity),
}

impl TryError {
    fn retryable(&self) -> bool {
        match self {
            Self::Identity(e) => e.retryable(),
            Self::Graph(AttemptError::Transient(_), _) => true,
            Self::Graph(AttemptError::Permanent(_), _) => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Graph(AttemptError::Transient(f), _) => f.retry_after,
            _ => None,
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
            request.status_reasons.clone(),
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
        let attempts = AtomicU32::new(0);
        let last_error: Mutex<Option<TryError>> = Mutex::new(None);
        let path = request.target.path.as_str();

        let attempt = || async {
            attempts.fetch_add(1, Ordering::Relaxed);
            let result = self
                .try_once(path, &body, &client_request_id, deadline)
                .await;
            if let Err(e) = &result {
                *last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
            }
            result
        };
        let retrying = attempt
            .retry(graph::backoff())
            .sleep(tokio::time::sleep)
            .when(TryError::retryable)
            .notify(|e, wait| {
                let what = describe(e);
                tracing::info!(error = %what, wait_ms = wait.as_millis() as u64, "transient failure, retrying");
                if let Some(progress) = &self.progress {
                    progress(&what, wait, attempts.load(Ordering::Relaxed));
                }
            })
            .adjust(|e, planned| graph::next_wait(e.retry_after(), planned, deadline));

        let result = tokio::time::timeout_at(deadline, retrying).await;
        let attempts = attempts.load(Ordering::Relaxed);
        match result {
            Ok(Ok(accepted)) => Ok(outcome(
                Some(accepted.status),
                accepted.request_id,
                attempts,
                None,
            )),
            Ok(Err(TryError::Graph(AttemptError::Permanent(failure), identity))) => {
                Err(ResumeError::Rejected {
                    failure,
                    identity,
                    attempts,
                    client_request_id,
                })
            }
            Ok(Err(e)) => Err(self.unavailable(Some(e), attempts, client_request_id)),
            Err(_elapsed) => {
                let last = last_error.lock().unwrap_or_else(|p| p.into_inner()).take();
                Err(self.unavailable(last, attempts, client_request_id))
            }
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
        self.graph
            .resume(
                path,
                body,
                &token,
                client_request_id,
                remaining.min(ATTEMPT_TIMEOUT),
            )
            .await
            .map_err(|e| TryError::Graph(e, token.identity.clone()))
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

fn describe(e: &TryError) -> String {
    match e {
        TryError::Identity(e) => e.message.clone(),
        TryError::Graph(AttemptError::Transient(f) | AttemptError::Permanent(f), _) => {
            match f.status {
                Some(s) => format!("Graph answered {s}: {}", f.message),
                None => f.message.clone(),
            }
        }
    }
}
