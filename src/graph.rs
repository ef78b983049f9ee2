//! One resume call to Microsoft Graph, and what its answer means: accepted, worth retrying,
//! or refused for good.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::{Deserialize, Serialize};

use crate::callout::OperationStatus;
use crate::config::Config;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of an error answer is read; Graph's errors are a few hundred bytes.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// A `Retry-After` beyond this is taken as this: nobody waits an hour inside a resume.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// The `User-Agent` Graph sees, so its logs name the gateway and its version.
pub const USER_AGENT: &str = concat!(
    "resume-gateway/",
    env!("CARGO_PKG_VERSION"),
    " (Azure Functions custom handler)"
);

/// The body Graph's `resume` action takes (`customExtensionCalloutResponse`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ResumeBody {
    pub data: ResumeData,
    pub source: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// `customTaskExtensionCallbackData`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ResumeData {
    #[serde(rename = "operationStatus")]
    pub operation_status: &'static str,
    #[serde(rename = "statusReasons", skip_serializing_if = "Vec::is_empty")]
    pub status_reasons: Vec<String>,
}

impl ResumeBody {
    /// The body for a status, with reasons and the `source` Graph records.
    pub fn new(status: OperationStatus, status_reasons: Vec<String>, source: String) -> Self {
        Self {
            data: ResumeData {
                operation_status: status.graph_value(),
                status_reasons,
            },
            source,
            kind: "lifecycleEvent",
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

/// A reqwest client whose construction runs on a thread of its own from the moment it is
/// asked for. Building one loads and parses the system's root certificates, the largest part
/// of the gateway's start (measured with `perf`); off the main thread, the host's readiness
/// poll does not wait for it. The first use waits for the build if it is still running.
#[derive(Clone)]
pub struct LazyClient(Arc<LazyInner>);

struct LazyInner {
    client: OnceLock<reqwest::Client>,
    builder: Mutex<Option<reqwest::ClientBuilder>>,
}

impl LazyClient {
    pub fn new(builder: reqwest::ClientBuilder) -> Self {
        let lazy = Self(Arc::new(LazyInner {
            client: OnceLock::new(),
            builder: Mutex::new(Some(builder)),
        }));
        let early = lazy.clone();
        // Without the thread, the first use builds it.
        let _ = std::thread::Builder::new()
            .name("http-client-init".into())
            .spawn(move || {
                early.get();
            });
        lazy
    }

    fn get(&self) -> &reqwest::Client {
        self.0.client.get_or_init(|| {
            let builder = self
                .0
                .builder
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .expect("the one initialisation takes the builder");
            match builder.build() {
                Ok(client) => client,
                // Only the TLS setup can fail (no root certificates on the machine): no request
                // could be served, so stop as a bad start would, and the host restarts us.
                Err(e) => {
                    let cause = std::error::Error::source(&e)
                        .map(|c| format!(": {c}"))
                        .unwrap_or_default();
                    eprintln!("resume-gateway: cannot set up HTTPS: {e}{cause}");
                    std::process::exit(1)
                }
            }
        })
    }
}

impl std::ops::Deref for LazyClient {
    type Target = reqwest::Client;

    fn deref(&self) -> &reqwest::Client {
        self.get()
    }
}

/// So the identity pipeline's transport starts the same way. The signature is the one
/// `#[async_trait]` gives the trait; this only hands the call to reqwest's own implementation.
impl azure_core::http::HttpClient for LazyClient {
    fn execute_request<'life0, 'life1, 'async_trait>(
        &'life0 self,
        request: &'life1 azure_core::http::Request,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = azure_core::Result<azure_core::http::AsyncRawResponse>>
                + Send
                + 'async_trait,
        >,
    >
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        azure_core::http::HttpClient::execute_request(self.get(), request)
    }
}

impl std::fmt::Debug for LazyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyClient")
            .field("built", &self.0.client.get().is_some())
            .finish()
    }
}

/// A Graph client for resume calls.
#[derive(Debug, Clone)]
pub struct GraphClient {
    http: LazyClient,
    /// `{base}/{version}`, to which the resume path is appended.
    root: String,
}

impl GraphClient {
    /// A client for the Graph and API version the settings name.
    pub fn new(config: &Config) -> Self {
        let http = LazyClient::new(
            reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .user_agent(USER_AGENT)
                // A redirect would carry the bearer token elsewhere; Graph never redirects here.
                .redirect(reqwest::redirect::Policy::none()),
        );
        Self {
            http,
            root: format!("{}/{}", config.graph_base, config.api_version.as_str()),
        }
    }

    /// The full URL for a resume path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.root)
    }

    /// Sends one resume; `timeout` bounds the whole attempt.
    pub async fn resume(
        &self,
        path: &str,
        body: &ResumeBody,
        bearer: &str,
        client_request_id: &str,
        timeout: Duration,
    ) -> Result<Accepted, AttemptError> {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(bearer)
            .header("client-request-id", client_request_id)
            .header("return-client-request-id", "true")
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| AttemptError::Transient(transport_failure(&e, timeout)))?;

        let status = response.status();
        let headers = response.headers().clone();
        let request_id = header(&headers, "request-id");
        if status.is_success() {
            return Ok(Accepted {
                status: status.as_u16(),
                request_id,
            });
        }
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
            retry_after: retry_after(&headers, SystemTime::now()),
            throttle_scope: header(&headers, "x-ms-throttle-scope"),
        };
        if is_transient(status) {
            Err(AttemptError::Transient(failure))
        } else {
            Err(AttemptError::Permanent(failure))
        }
    }
}

/// Statuses worth another try; every other refusal is final.
fn is_transient(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

fn transport_failure(e: &reqwest::Error, timeout: Duration) -> GraphFailure {
    let message = if e.is_timeout() {
        format!("Graph did not answer within {:.1} s", timeout.as_secs_f64())
    } else if e.is_connect() {
        format!("could not connect to Graph: {}", error_chain(e))
    } else {
        format!("the connection to Graph failed: {}", error_chain(e))
    };
    GraphFailure {
        status: None,
        code: None,
        message,
        request_id: None,
        retry_after: None,
        throttle_scope: None,
    }
}

/// reqwest's top-level message hides the cause ("error sending request"); the chain names it.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
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

/// `Retry-After` as delta-seconds or an HTTP date, relative to `now`.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
    };
    Some(wait.min(MAX_RETRY_AFTER))
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
    use reqwest::header::HeaderValue;

    #[test]
    fn body_matches_the_documented_shape() {
        let b = ResumeBody::new(OperationStatus::Completed, vec![], "resume-gateway".into());
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            serde_json::json!({"data": {"operationStatus": "Completed"}, "source": "resume-gateway", "type": "lifecycleEvent"})
        );
        let b = ResumeBody::new(
            OperationStatus::Failed,
            vec!["no mailbox".into()],
            "hr".into(),
        );
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            serde_json::json!({"data": {"operationStatus": "Failed", "statusReasons": ["no mailbox"]}, "source": "hr", "type": "lifecycleEvent"})
        );
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(12));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(12)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(12));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&past).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("999999"));
        assert_eq!(retry_after(&h, now), Some(MAX_RETRY_AFTER));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn only_throttling_and_server_faults_are_transient() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_transient(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [301, 400, 401, 403, 404, 405, 409, 412, 501, 505] {
            assert!(!is_transient(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }
}
