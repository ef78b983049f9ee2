//! Calls to Microsoft Graph and what their answers mean: accepted, worth retrying, or refused
//! for good. One resume call per attempt (the resume loop lives in `resume`), and a retrying,
//! paging GET for the operator commands; both share one retry policy.

pub(crate) mod extension;

use std::time::{Duration, SystemTime};

use reqwest::header::{AUTHORIZATION, HeaderMap};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::identity::GraphToken;
use crate::outbound::{self, LazyClient};
use crate::request::access_package::AccessPackageResume;
use crate::request::{OperationStatus, Resume};
use crate::retry;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A listing stops here rather than follow a `nextLink` loop for ever.
const MAX_PAGES: usize = 1000;
/// How much of an error answer is read; Graph's errors are a few hundred bytes.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The body of Graph's `taskProcessingResult: resume` action: its parameters `source`, `type`
/// and `data`, as Graph's v1.0 metadata declares them (`tests/fixtures/graph-v1.0-governance.csdl.xml`,
/// held to it by `tests/graph_conformance.rs`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ResumeBody {
    pub data: ResumeData,
    pub source: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// `customTaskExtensionCallbackData`: a closed type that declares `operationStatus` only. A
/// caller's `statusReasons` are not sent: Graph is expected to refuse an undeclared property
/// with 400, which would leave the task waiting until its timeout.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ResumeData {
    /// A member name of `customTaskExtensionOperationStatus`: `completed` or `failed`.
    #[serde(rename = "operationStatus")]
    pub operation_status: &'static str,
}

impl ResumeBody {
    /// The body for a status, with the `source` Graph records.
    pub fn new(status: OperationStatus, source: String) -> Self {
        Self {
            data: ResumeData {
                operation_status: status.as_str(),
            },
            source,
            kind: "lifecycleEvent",
        }
    }
}

/// The body of Entitlement Management's `accessPackageAssignmentRequest: resume` (graph-docs-contrib
/// `accesspackageassignmentrequest-resume.md`): the same three parameters, held to the
/// metadata by `tests/graph_conformance.rs`. `type` names the stage
/// (`microsoft.graph.accessPackageCustomExtensionStage.<stage>`, as Microsoft's examples send).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AccessPackageResumeBody {
    pub data: AccessPackageCallbackData,
    pub source: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// `accessPackageAssignmentRequestCallbackData`. The action declares `data` as the abstract
/// `customExtensionData`, so the concrete type is named with `@odata.type`; the rest are the
/// type's declared properties, and none other.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AccessPackageCallbackData {
    #[serde(rename = "@odata.type")]
    pub odata_type: &'static str,
    /// A member name of `accessPackageCustomExtensionStage`.
    pub stage: &'static str,
    pub custom_extension_stage_instance_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_extension_stage_instance_detail: Option<String>,
    /// `denied` or `canceled`, only at `assignmentRequestCreated` (checked by the parser).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
}

impl AccessPackageResumeBody {
    /// The body for a validated request, with the `source` Graph records.
    pub fn new(request: &AccessPackageResume, source: String) -> Self {
        let t = &request.target;
        Self {
            data: AccessPackageCallbackData {
                odata_type: "microsoft.graph.accessPackageAssignmentRequestCallbackData",
                stage: t.stage.as_str(),
                custom_extension_stage_instance_id: t.stage_instance_id.to_string(),
                custom_extension_stage_instance_detail: request.detail.clone(),
                state: t.state.map(|s| s.as_str()),
            },
            source,
            kind: format!(
                "microsoft.graph.accessPackageCustomExtensionStage.{}",
                t.stage.as_str()
            ),
        }
    }
}

/// The body of either resume action: the one place a request becomes what Graph receives.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum GraphBody {
    Task(ResumeBody),
    AccessPackage(AccessPackageResumeBody),
}

impl GraphBody {
    /// The body for `request`; `default_source` when the caller gave no `source`.
    pub fn new(request: &Resume, default_source: &str) -> Self {
        let source = request.source().unwrap_or(default_source).to_owned();
        match request {
            Resume::Task(r) => Self::Task(ResumeBody::new(r.status, source)),
            Resume::AccessPackage(r) => {
                Self::AccessPackage(AccessPackageResumeBody::new(r, source))
            }
        }
    }
}

/// Graph took the resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub status: u16,
    pub request_id: Option<String>,
}

/// Graph did not take the resume, with everything it said about why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphFailure {
    /// Graph's HTTP status; `None` when no answer came (timeout, connection failure).
    pub status: Option<u16>,
    pub code: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
    #[serde(skip)]
    pub retry_after: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle_scope: Option<String>,
}

/// How one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptError {
    /// Throttling, a server fault, a timeout or a dropped connection: another try may work.
    Transient(GraphFailure),
    /// Graph refused this resume; asking again gets the same answer.
    Permanent(GraphFailure),
}

/// A JSON document Graph returned to a GET.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub body: serde_json::Value,
    pub request_id: Option<String>,
    pub attempts: u32,
}

/// Why a GET gave no document.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GetError {
    /// Graph refused for good (4xx other than 408/429).
    #[error("Graph answered {}: {}", .0.status.map_or_else(|| "nothing".to_owned(), |s| s.to_string()), .0.message)]
    Refused(GraphFailure),
    /// Throttling, faults or silence until the deadline.
    #[error("Graph did not answer in time after {attempts} attempts{}", .last.as_ref().map(|f| format!(": {}", f.message)).unwrap_or_default())]
    Unavailable {
        last: Option<GraphFailure>,
        attempts: u32,
    },
    #[error("Graph's @odata.nextLink {0} is not under the configured Graph; not followed")]
    ForeignLink(String),
    #[error("Graph's answer to {0} has no `value` array")]
    NotACollection(String),
    #[error("the collection has more than {0} pages; stopped")]
    TooManyPages(usize),
    /// Graph answered 2xx with a document of another shape than asked for.
    #[error("Graph's answer is {0}")]
    Unusable(String),
}

impl retry::Failure for AttemptError {
    fn retryable(&self) -> bool {
        matches!(self, Self::Transient(_))
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Transient(f) => f.retry_after,
            Self::Permanent(_) => None,
        }
    }

    fn describe(&self) -> String {
        let (Self::Transient(f) | Self::Permanent(f)) = self;
        f.describe()
    }
}

impl GraphFailure {
    /// One line: Graph's status, when it answered, and what it said.
    pub(crate) fn describe(&self) -> String {
        match self.status {
            Some(s) => format!("Graph answered {s}: {}", self.message),
            None => self.message.clone(),
        }
    }

    pub(crate) fn without_answer(message: String) -> Self {
        Self {
            status: None,
            code: None,
            message,
            request_id: None,
            retry_after: None,
            throttle_scope: None,
        }
    }
}

/// A fresh `client-request-id` (a version 4 UUID). It only correlates logs, so it comes from
/// the fast thread-local generator rather than a system call to the OS RNG per request.
pub fn client_request_id() -> String {
    let bytes: [u8; 16] = fastrand::u128(..).to_le_bytes();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// A Graph client: resume calls, and the GETs the operator commands make.
#[derive(Debug, Clone)]
pub struct GraphClient {
    http: LazyClient,
    /// `{base}/{version}`, to which the resume path is appended.
    root: String,
    /// `root`, parsed once: each resume only sets its path, instead of parsing a whole URL
    /// (host and IDNA included) per request, which was 5 % of the gateway's CPU under load.
    root_url: reqwest::Url,
    /// `{cloud's Graph}/{version}`: where Graph's own `@odata.nextLink`s point when
    /// `GRAPH_ENDPOINT` is a proxy.
    cloud_root: String,
}

impl GraphClient {
    /// A client for the Graph and API version the settings name.
    pub fn new(config: &Config) -> Self {
        let http = LazyClient::new(
            reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .user_agent(outbound::USER_AGENT)
                // A redirect would carry the bearer token elsewhere; Graph never redirects here.
                .redirect(reqwest::redirect::Policy::none()),
        );
        let root = format!("{}/{}", config.graph_base, config.api_version.as_str());
        Self {
            http,
            root_url: reqwest::Url::parse(&root)
                .expect("config validated GRAPH_ENDPOINT as an http(s) URL"),
            root,
            cloud_root: format!(
                "{}/{}",
                config.cloud.graph_base(),
                config.api_version.as_str()
            ),
        }
    }

    /// The full URL for a resume path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.root)
    }

    /// The URL of a resume path ([`Self::url`], without parsing it all again).
    pub fn resume_url(&self, path: &str) -> reqwest::Url {
        let mut url = self.root_url.clone();
        // Sized once: this runs for every resume. The root's path never ends with '/'.
        let mut full = String::with_capacity(url.path().len() + path.len());
        full.push_str(url.path());
        full.push_str(path);
        url.set_path(&full);
        url
    }

    /// Sends one resume; `timeout` bounds the whole attempt.
    pub async fn resume(
        &self,
        path: &str,
        body: &GraphBody,
        token: &GraphToken,
        client_request_id: &str,
        timeout: Duration,
    ) -> Result<Accepted, AttemptError> {
        let request = self.http.post(self.resume_url(path));
        let response = match token.authorization() {
            Some(value) => request.header(AUTHORIZATION, value.clone()),
            // reqwest then reports the unusable token as a request error.
            None => request.bearer_auth(token.secret()),
        }
        .header("client-request-id", client_request_id)
        .header("return-client-request-id", "true")
        .json(body)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| AttemptError::Transient(transport_failure(&e, timeout)))?;

        let status = response.status();
        if status.is_success() {
            return Ok(Accepted {
                status: status.as_u16(),
                request_id: header(response.headers(), "request-id"),
            });
        }
        let headers = response.headers().clone();
        Err(refusal(status, &headers, response, timeout).await)
    }

    /// Sends one GET to an absolute URL under this client's Graph; `timeout` bounds the
    /// attempt, body included.
    pub async fn get(
        &self,
        url: &str,
        bearer: &str,
        client_request_id: &str,
        timeout: Duration,
    ) -> Result<Fetched, AttemptError> {
        self.send(Method::GET, url, bearer, None, client_request_id, timeout)
            .await
    }

    /// Sends one request with an optional JSON body; a 2xx without a body (Graph's 204 to a
    /// PATCH) gives `null`.
    async fn send(
        &self,
        method: Method,
        url: &str,
        bearer: &str,
        body: Option<&serde_json::Value>,
        client_request_id: &str,
        timeout: Duration,
    ) -> Result<Fetched, AttemptError> {
        let started = tokio::time::Instant::now();
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(bearer)
            .header("client-request-id", client_request_id)
            .header("return-client-request-id", "true")
            .header("accept", "application/json")
            .timeout(timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| AttemptError::Transient(transport_failure(&e, timeout)))?;
        let status = response.status();
        let headers = response.headers().clone();
        if !status.is_success() {
            return Err(refusal(status, &headers, response, timeout).await);
        }
        let request_id = header(&headers, "request-id");
        let left = timeout.saturating_sub(started.elapsed());
        let bytes = match tokio::time::timeout(left, response.bytes()).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) => return Err(AttemptError::Transient(transport_failure(&e, timeout))),
            Err(_) => {
                return Err(AttemptError::Transient(GraphFailure::without_answer(
                    format!(
                        "Graph did not finish its answer within {:.1} s",
                        timeout.as_secs_f64()
                    ),
                )));
            }
        };
        if bytes.is_empty() {
            return Ok(Fetched {
                body: serde_json::Value::Null,
                request_id,
                attempts: 1,
            });
        }
        let body = serde_json::from_slice(&bytes).map_err(|e| {
            AttemptError::Permanent(GraphFailure {
                status: Some(status.as_u16()),
                code: None,
                message: format!("Graph's answer is not JSON: {e}"),
                request_id: request_id.clone(),
                retry_after: None,
                throttle_scope: None,
            })
        })?;
        Ok(Fetched {
            body,
            request_id,
            attempts: 1,
        })
    }

    /// GETs `url`, retrying throttling and server faults as a resume is retried (Graph's
    /// `Retry-After` first, else jittered exponential backoff) until `deadline`.
    pub async fn get_retrying(
        &self,
        url: &str,
        bearer: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Fetched, GetError> {
        self.send_retrying(Method::GET, url, bearer, None, deadline)
            .await
    }

    /// PATCHes `url` with `body`, retried as [`Self::get_retrying`] is: only for a PATCH that
    /// sets a whole value, so that sending it twice does what sending it once does.
    pub async fn patch_retrying(
        &self,
        url: &str,
        bearer: &str,
        body: &serde_json::Value,
        deadline: tokio::time::Instant,
    ) -> Result<Fetched, GetError> {
        self.send_retrying(Method::PATCH, url, bearer, Some(body), deadline)
            .await
    }

    async fn send_retrying(
        &self,
        method: Method,
        url: &str,
        bearer: &str,
        body: Option<&serde_json::Value>,
        deadline: tokio::time::Instant,
    ) -> Result<Fetched, GetError> {
        let client_request_id = client_request_id();
        let run = retry::run(
            deadline,
            || {
                self.send(
                    method.clone(),
                    url,
                    bearer,
                    body,
                    &client_request_id,
                    retry::attempt_budget(deadline),
                )
            },
            |_, _, _| {},
        )
        .await;
        let attempts = run.attempts;
        match run.result {
            Ok(fetched) => Ok(Fetched {
                attempts,
                ..fetched
            }),
            Err(Some(AttemptError::Permanent(failure))) => Err(GetError::Refused(failure)),
            Err(Some(AttemptError::Transient(failure))) => Err(GetError::Unavailable {
                last: Some(failure),
                attempts,
            }),
            Err(None) => Err(GetError::Unavailable {
                last: None,
                attempts,
            }),
        }
    }

    /// Every item of a Graph collection at `path` (relative to the version root, query
    /// included), following `@odata.nextLink`; each page gets its own `deadline_per_page`.
    pub async fn list(
        &self,
        path: &str,
        bearer: &str,
        deadline_per_page: Duration,
    ) -> Result<Vec<serde_json::Value>, GetError> {
        let mut items = Vec::new();
        let mut next = Some(self.url(path));
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(GetError::TooManyPages(MAX_PAGES));
            }
            let page = self
                .get_retrying(
                    &url,
                    bearer,
                    tokio::time::Instant::now() + deadline_per_page,
                )
                .await?;
            let mut body = page.body;
            match body.get_mut("value").map(serde_json::Value::take) {
                Some(serde_json::Value::Array(values)) => items.extend(values),
                _ => return Err(GetError::NotACollection(url)),
            }
            next = match body
                .get("@odata.nextLink")
                .and_then(serde_json::Value::as_str)
            {
                None => None,
                Some(link) => Some(self.same_graph(link)?),
            };
        }
        Ok(items)
    }

    /// A `nextLink` mapped onto this client's Graph, so that the bearer token never goes
    /// anywhere else.
    fn same_graph(&self, link: &str) -> Result<String, GetError> {
        [&self.root, &self.cloud_root]
            .into_iter()
            .find_map(|root| {
                link.strip_prefix(root.as_str()).filter(|rest| {
                    let path = rest.split('?').next().unwrap_or_default();
                    path.starts_with('/') && !path.split('/').any(|s| s == "..")
                })
            })
            .map(|rest| format!("{}{rest}", self.root))
            .ok_or_else(|| GetError::ForeignLink(link.to_owned()))
    }
}

/// Graph's non-2xx answer, classified, with its error code, message and request-id.
async fn refusal(
    status: StatusCode,
    headers: &HeaderMap,
    response: reqwest::Response,
    timeout: Duration,
) -> AttemptError {
    let request_id = header(headers, "request-id");
    let body = read_limited(response, timeout).await;
    let error = serde_json::from_slice::<ErrorEnvelope>(&body)
        .ok()
        .map(|e| e.error);
    let failure = GraphFailure {
        status: Some(status.as_u16()),
        code: error.as_ref().and_then(|e| e.code.clone()),
        message: error
            .as_ref()
            .and_then(|e| e.message.clone())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| {
                format!(
                    "Graph answered {status} without an error message{}",
                    if body.is_empty() {
                        ""
                    } else {
                        " it could read"
                    }
                )
            }),
        request_id: request_id
            .or_else(|| error.and_then(|e| e.inner_error).and_then(|i| i.request_id)),
        retry_after: retry::retry_after(headers, SystemTime::now()),
        throttle_scope: header(headers, "x-ms-throttle-scope"),
    };
    if is_transient(status) {
        AttemptError::Transient(failure)
    } else {
        AttemptError::Permanent(failure)
    }
}

/// Statuses worth another try; every other refusal is final.
fn is_transient(status: StatusCode) -> bool {
    retry::is_transient_status(status.as_u16())
}

fn transport_failure(e: &reqwest::Error, timeout: Duration) -> GraphFailure {
    let message = if e.is_timeout() {
        format!("Graph did not answer within {:.1} s", timeout.as_secs_f64())
    } else if e.is_connect() {
        format!("could not connect to Graph: {}", outbound::error_chain(e))
    } else {
        format!(
            "the connection to Graph failed: {}",
            outbound::error_chain(e)
        )
    };
    GraphFailure::without_answer(message)
}

async fn read_limited(mut response: reqwest::Response, timeout: Duration) -> Vec<u8> {
    let mut body = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = response.chunk().await {
            let room = MAX_ERROR_BODY.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= MAX_ERROR_BODY {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, read).await;
    body
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: GraphErrorBody,
}

#[derive(Deserialize)]
struct GraphErrorBody {
    code: Option<String>,
    message: Option<String>,
    #[serde(rename = "innerError", alias = "innererror")]
    inner_error: Option<InnerError>,
}

#[derive(Deserialize)]
struct InnerError {
    #[serde(rename = "request-id")]
    request_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_request_ids_are_distinct_version_4_uuids() {
        let ids: std::collections::HashSet<String> =
            (0..1000).map(|_| client_request_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(20) {
            let parsed = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(parsed.get_version_num(), 4, "{id}");
            assert_eq!(parsed.hyphenated().to_string(), *id);
        }
    }

    #[test]
    fn body_carries_only_what_graph_declares() {
        let b = ResumeBody::new(OperationStatus::Completed, "resume-gateway".into());
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            serde_json::json!({"data": {"operationStatus": "completed"}, "source": "resume-gateway", "type": "lifecycleEvent"})
        );
        let b = ResumeBody::new(OperationStatus::Failed, "hr".into());
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            serde_json::json!({"data": {"operationStatus": "failed"}, "source": "hr", "type": "lifecycleEvent"})
        );
    }

    #[test]
    fn access_package_body_carries_only_what_graph_declares() {
        let a = "0e60f18c-b2a0-4887-9da8-da2e30a39d99";
        let s = "957d0c50-466b-4840-bb5b-c92cea7141ff";
        let parse = |v: serde_json::Value| Resume::parse(v.to_string().as_bytes()).unwrap();
        let r = parse(
            serde_json::json!({"assignmentRequestId": a, "customExtensionStageInstanceId": s, "stage": "AssignmentRequestCreated", "state": "Denied", "detail": "SoD"}),
        );
        assert_eq!(
            serde_json::to_value(GraphBody::new(&r, "resume-gateway")).unwrap(),
            serde_json::json!({"source": "resume-gateway",
                "type": "microsoft.graph.accessPackageCustomExtensionStage.assignmentRequestCreated",
                "data": {"@odata.type": "microsoft.graph.accessPackageAssignmentRequestCallbackData",
                    "stage": "assignmentRequestCreated", "customExtensionStageInstanceId": s,
                    "customExtensionStageInstanceDetail": "SoD", "state": "denied"}})
        );
        let r = parse(
            serde_json::json!({"assignmentRequestId": a, "customExtensionStageInstanceId": s, "stage": "assignmentRequestGranted", "source": "la"}),
        );
        assert_eq!(
            serde_json::to_value(GraphBody::new(&r, "resume-gateway")).unwrap(),
            serde_json::json!({"source": "la",
                "type": "microsoft.graph.accessPackageCustomExtensionStage.assignmentRequestGranted",
                "data": {"@odata.type": "microsoft.graph.accessPackageAssignmentRequestCallbackData",
                    "stage": "assignmentRequestGranted", "customExtensionStageInstanceId": s}})
        );
        // A task's body is the same through either constructor.
        let task = Resume::parse(include_bytes!("../../samples/resume-callout.json")).unwrap();
        assert_eq!(
            serde_json::to_value(GraphBody::new(&task, "resume-gateway")).unwrap(),
            serde_json::to_value(ResumeBody::new(
                OperationStatus::Completed,
                "resume-gateway".into()
            ))
            .unwrap()
        );
    }

    #[test]
    fn next_links_stay_on_the_configured_graph() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = crate::config::Config::from_lookup(|k| {
            (k == "GRAPH_ENDPOINT").then(|| "http://127.0.0.1:8080".to_owned())
        })
        .unwrap();
        let g = GraphClient::new(&config);
        assert_eq!(
            g.same_graph("http://127.0.0.1:8080/v1.0/a/b?$skiptoken=x")
                .unwrap(),
            "http://127.0.0.1:8080/v1.0/a/b?$skiptoken=x"
        );
        // Graph itself names its public host even behind a proxy: mapped onto the proxy.
        assert_eq!(
            g.same_graph("https://graph.microsoft.com/v1.0/a?$skiptoken=y")
                .unwrap(),
            "http://127.0.0.1:8080/v1.0/a?$skiptoken=y"
        );
        for foreign in [
            "https://evil.example.com/v1.0/a",
            "https://graph.microsoft.com/beta/a",
            "http://127.0.0.1:8080/v1.0evil/a",
            "http://127.0.0.1:80801/v1.0/a",
        ] {
            assert!(g.same_graph(foreign).is_err(), "{foreign}");
        }
    }

    #[test]
    fn resume_urls_are_the_root_and_the_path() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let path = "/identityGovernance/lifecycleWorkflows/workflows/156bd1a0-5d7c-4b38-a8c9-1d0f7c2a9e11/tasks/2a9e1156-bd1a-4d7c-8b38-a8c91d0f7c2a/taskProcessingResults/7c2a9e11-56bd-41a0-9d7c-4b38a8c91d0f/resume";
        for (endpoint, version, expected_root) in [
            (None, None, "https://graph.microsoft.com/v1.0"),
            (
                Some("http://127.0.0.1:8080"),
                Some("beta"),
                "http://127.0.0.1:8080/beta",
            ),
            (
                Some("https://proxy.example.com/graph/"),
                None,
                "https://proxy.example.com/graph/v1.0",
            ),
        ] {
            let config = crate::config::Config::from_lookup(|k| match k {
                "GRAPH_ENDPOINT" => endpoint.map(str::to_owned),
                "GRAPH_API_VERSION" => version.map(str::to_owned),
                _ => None,
            })
            .unwrap();
            let g = GraphClient::new(&config);
            let url = g.resume_url(path);
            assert_eq!(url.as_str(), format!("{expected_root}{path}"));
            assert_eq!(url.as_str(), g.url(path), "the dry run shows the same URL");
        }
    }

    async fn client_for(server: &wiremock::MockServer) -> GraphClient {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let uri = server.uri();
        let config = Config::from_lookup(|k| (k == "GRAPH_ENDPOINT").then(|| uri.clone())).unwrap();
        GraphClient::new(&config)
    }

    #[tokio::test]
    async fn get_retries_count_every_attempt() {
        use wiremock::matchers::method;
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "0"))
            .up_to_n_times(2)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(serde_json::json!({"value": []})),
            )
            .mount(&server)
            .await;
        let graph = client_for(&server).await;
        let url = format!("{}/v1.0/x", server.uri());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let fetched = graph.get_retrying(&url, "t", deadline).await.unwrap();
        assert_eq!(fetched.attempts, 3);
        assert_eq!(server.received_requests().await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn error_bodies_are_read_past_the_first_chunk_up_to_the_limit() {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        let under = "u".repeat(MAX_ERROR_BODY - 1000);
        let over = "o".repeat(4 * MAX_ERROR_BODY);
        for (at, body) in [("/under", &under), ("/over", &over)] {
            Mock::given(method("GET"))
                .and(path(at))
                .respond_with(ResponseTemplate::new(500).set_body_string(body.clone()))
                .mount(&server)
                .await;
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let get = |at: &str| client.get(format!("{}{at}", server.uri())).send();
        let read = read_limited(get("/under").await.unwrap(), Duration::from_secs(10)).await;
        assert_eq!(
            read.len(),
            under.len(),
            "a body in several chunks is read whole"
        );
        let read = read_limited(get("/over").await.unwrap(), Duration::from_secs(10)).await;
        assert_eq!(read.len(), MAX_ERROR_BODY);
    }

    #[tokio::test]
    async fn refusals_are_classified_and_keep_graphs_code_message_ids_and_wait() {
        use retry::Failure;
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        let throttled = ResponseTemplate::new(429)
            .insert_header("Retry-After", "7")
            .insert_header("request-id", " 5f0e-throttled ")
            .insert_header("x-ms-throttle-scope", "Tenant/ApplicationId")
            .set_body_json(serde_json::json!(
                {"error": {"code": "TooManyRequests", "message": "Too many requests."}}
            ));
        // No message, and the request id only inside the error (an empty header does not count).
        let gone = ResponseTemplate::new(404)
            .insert_header("request-id", "")
            .set_body_json(serde_json::json!({"error": {
                "code": "NotFound", "message": "", "innerError": {"request-id": "inner-id"}
            }}));
        for (at, answer) in [("/throttled", throttled), ("/gone", gone)] {
            Mock::given(method("GET"))
                .and(path(at))
                .respond_with(answer)
                .mount(&server)
                .await;
        }
        let graph = client_for(&server).await;
        let send = |at: &str| {
            let url = format!("{}{at}", server.uri());
            let graph = &graph;
            async move {
                graph
                    .send(Method::GET, &url, "t", None, "c", Duration::from_secs(10))
                    .await
                    .unwrap_err()
            }
        };
        let e = send("/throttled").await;
        assert!(e.retryable(), "{e:?}");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        let AttemptError::Transient(f) = e else {
            unreachable!()
        };
        assert_eq!(
            f,
            GraphFailure {
                status: Some(429),
                code: Some("TooManyRequests".into()),
                message: "Too many requests.".into(),
                request_id: Some("5f0e-throttled".into()),
                retry_after: Some(Duration::from_secs(7)),
                throttle_scope: Some("Tenant/ApplicationId".into()),
            }
        );
        let e = send("/gone").await;
        assert!(!e.retryable(), "{e:?}");
        assert_eq!(e.retry_after(), None);
        let AttemptError::Permanent(f) = e else {
            unreachable!()
        };
        assert_eq!(
            f.message,
            "Graph answered 404 Not Found without an error message it could read"
        );
        assert_eq!(f.request_id.as_deref(), Some("inner-id"));
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_long_graph_error_message_is_kept_whole() {
        use wiremock::matchers::method;
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        // Graph's messages can list every failed property; 8 KB stays well within the limit.
        let message = "m".repeat(8 * 1024);
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!(
                {"error": {"code": "BadRequest", "message": message}}
            )))
            .mount(&server)
            .await;
        let graph = client_for(&server).await;
        let url = format!("{}/v1.0/x", server.uri());
        let e = graph
            .send(Method::GET, &url, "t", None, "c", Duration::from_secs(10))
            .await
            .unwrap_err();
        let AttemptError::Permanent(f) = e else {
            panic!("{e:?}")
        };
        assert_eq!(f.message, message);
    }
}
