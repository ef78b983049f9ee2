//! Test harness: runs the real `handler` binary as the Functions host does (environment,
//! `FUNCTIONS_CUSTOMHANDLER_PORT`, readiness polling on `GET /`), with a mock Graph and a
//! mock App Service managed-identity endpoint.
#![allow(dead_code)]

pub mod app;
pub mod docs;
pub mod host;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub const WORKFLOW: &str = "156bd1a0-5d7c-4b38-a8c9-1d0f7c2a9e11";
pub const TASK: &str = "2a9e1156-bd1a-4d7c-8b38-a8c91d0f7c2a";
pub const RESULT: &str = "7c2a9e11-56bd-41a0-9d7c-4b38a8c91d0f";
/// The gateway identity's application id, as the mock token's claims carry it.
pub const GATEWAY_APP_ID: &str = "8e1f5a3c-2b4d-4c6e-9f70-1a2b3c4d5e6f";
pub const GATEWAY_OBJECT_ID: &str = "3c4d5e6f-8e1f-4a3c-9b4d-7e6f1a2b3c4d";
pub const IDENTITY_SECRET: &str = "identity-header-value-for-tests";
/// Personal data in the sample callout: it must never reach a log line.
pub const SUBJECT_NAMES: [&str; 3] = [
    "Ada Lovelace",
    "ada.lovelace@contoso.com",
    "ada@contoso.com",
];

pub fn resume_path(workflow: &str, task: &str, result: &str) -> String {
    format!(
        "/identityGovernance/lifecycleWorkflows/workflows/{workflow}/tasks/{task}/taskProcessingResults/{result}/resume"
    )
}

/// A Lifecycle Workflows callout as the Logic App trigger receives it.
pub fn callout(workflow: &str, task: &str, result: &str) -> Value {
    json!({
        "source": "sample",
        "type": "lifecycleEvent",
        "data": {
            "@odata.type": "#microsoft.graph.identityGovernance.customTaskExtensionCalloutData",
            "callbackUriPath": resume_path(workflow, task, result),
            "subject": {
                "id": "0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b",
                "displayName": SUBJECT_NAMES[0],
                "email": SUBJECT_NAMES[2],
                "userPrincipalName": SUBJECT_NAMES[1],
                "manager": null
            },
            "task": {"id": task, "displayName": "Provision the mailbox"},
            "taskProcessingResult": {"id": result, "createdDateTime": "2026-11-28T10:00:00Z"},
            "workflow": {"id": workflow, "displayName": "Onboard new hires", "workflowVersion": 3}
        }
    })
}

/// A JWT-shaped token carrying the gateway identity's claims (unsigned: only the gateway
/// reads it, to name its identity in remedies).
pub fn gateway_token(roles: &[&str], marker: &str) -> String {
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = json!({
        "aud": "https://graph.microsoft.com", "appid": GATEWAY_APP_ID, "oid": GATEWAY_OBJECT_ID,
        "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47", "roles": roles, "idtyp": "app",
        "marker": marker
    });
    format!(
        "{}.{}.{}",
        e.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
        e.encode(claims.to_string()),
        e.encode(marker)
    )
}

/// wiremock checks `.expect()` counts when a server is dropped, by blocking the dropping thread
/// on the server's state lock. After a test killed the gateway with a thousand connections
/// open, that wait once never returned (a hung test run). The shared mocks set no `.expect()`
/// (tests assert on `received_requests` instead), so they are never dropped: each server's
/// thread ends with the test process.
pub type Server = std::mem::ManuallyDrop<MockServer>;

async fn server() -> Server {
    std::mem::ManuallyDrop::new(MockServer::start().await)
}

/// A mock App Service managed-identity endpoint (`IDENTITY_ENDPOINT`, api-version 2019-08-01).
pub struct Identity {
    pub server: Server,
    pub token: String,
}

impl Identity {
    pub async fn start() -> Self {
        Self::start_with_roles(&[]).await
    }

    pub async fn start_with_roles(roles: &[&str]) -> Self {
        let server = server().await;
        let token = gateway_token(roles, "secret-token-marker-6f1d");
        Mock::given(method("GET"))
            .and(path("/msi/token"))
            .and(query_param("api-version", "2019-08-01"))
            .and(query_param("resource", "https://graph.microsoft.com"))
            .and(header("x-identity-header", IDENTITY_SECRET))
            .respond_with(token_response(&token))
            .mount(&server)
            .await;
        Self { server, token }
    }

    /// An identity endpoint with no mocks mounted (tests add their own).
    pub async fn bare() -> Self {
        Self {
            server: server().await,
            token: gateway_token(&[], "secret-token-marker-6f1d"),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("{}/msi/token", self.server.uri())
    }

    pub async fn calls(&self) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .len()
    }
}

pub fn token_response(token: &str) -> ResponseTemplate {
    let expires_on = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": token,
        "expires_on": expires_on.to_string(),
        "resource": "https://graph.microsoft.com",
        "token_type": "Bearer",
        "client_id": GATEWAY_APP_ID
    }))
}

/// An access package assignment request and a stage instance paused in it.
pub const ASSIGNMENT_REQUEST: &str = "0e60f18c-b2a0-4887-9da8-da2e30a39d99";
pub const STAGE_INSTANCE: &str = "957d0c50-466b-4840-bb5b-c92cea7141ff";
/// Personal data in the access-package callout (the assignment's target and the requestor):
/// it must never reach a log line.
pub const ACCESS_PACKAGE_PERSONAL: [&str; 4] = [
    "Grace Hopper",
    "grace.hopper@contoso.com",
    "Alan Turing",
    "alan.turing@contoso.com",
];

pub fn assignment_request_path(request: &str) -> String {
    format!("/identityGovernance/entitlementManagement/assignmentRequests/{request}/resume")
}

/// An Entitlement Management callout as the Logic App trigger receives it (the shape the
/// platform notes give: `accessPackageAssignmentRequestCalloutData` with the assignment, its
/// target user, the access package and the catalog).
pub fn access_package_callout(request: &str, instance: &str, stage: &str) -> Value {
    json!({
        "source": "EntitlementManagement",
        "type": format!("microsoft.graph.accessPackageCustomExtensionStage.{stage}"),
        "data": {
            "@odata.type": "#microsoft.graph.accessPackageAssignmentRequestCalloutData",
            "callbackUriPath": assignment_request_path(request),
            "customExtensionStageInstanceId": instance,
            "stage": stage,
            "accessPackageAssignmentRequestId": request,
            "state": "submitted",
            "requestType": "userAdd",
            "accessPackage": {"id": "1b4c8f6e-2d3a-4e5f-9a0b-c1d2e3f4a5b6", "displayName": "Sales tools"},
            "accessPackageCatalog": {"id": "4a5b6c7d-8e9f-4a0b-8c1d-2e3f4a5b6c7d", "displayName": "Sales"},
            "assignment": {
                "id": "6c7d8e9f-0a1b-4c2d-9e3f-4a5b6c7d8e9f",
                "target": {"id": "7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a",
                    "displayName": ACCESS_PACKAGE_PERSONAL[0], "email": ACCESS_PACKAGE_PERSONAL[1]}
            },
            "requestor": {"displayName": ACCESS_PACKAGE_PERSONAL[2], "email": ACCESS_PACKAGE_PERSONAL[3]}
        }
    })
}

/// A mock Graph.
pub struct Graph {
    pub server: Server,
}

impl Graph {
    pub async fn start() -> Self {
        Self {
            server: server().await,
        }
    }

    /// Graph that accepts every resume with 204 and a request-id.
    pub async fn accepting() -> Self {
        let g = Self::start().await;
        Mock::given(method("POST"))
            .and(wiremock::matchers::path_regex(
                r"^/(v1\.0|beta)/identityGovernance/(lifecycleWorkflows|entitlementManagement)/.*[/.]resume$",
            ))
            .respond_with(
                ResponseTemplate::new(204).insert_header("request-id", "graph-request-0001"),
            )
            .mount(&g.server)
            .await;
        g
    }

    /// Graph that accepts every resume with 204 and `request_id`, after `delay`.
    pub async fn slow(delay: Duration, request_id: &str) -> Self {
        let g = Self::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(204)
                    .insert_header("request-id", request_id)
                    .set_delay(delay),
            )
            .mount(&g.server)
            .await;
        g
    }

    pub async fn requests(&self) -> Vec<Request> {
        self.server.received_requests().await.unwrap_or_default()
    }

    pub async fn calls(&self) -> usize {
        self.requests().await.len()
    }
}

/// The environment a Function App gives the handler, pointed at the mocks.
pub fn env_for(graph: &Graph, identity: &Identity) -> Vec<(String, String)> {
    vec![
        ("GRAPH_ENDPOINT".into(), graph.server.uri()),
        ("IDENTITY_ENDPOINT".into(), identity.endpoint()),
        ("IDENTITY_HEADER".into(), IDENTITY_SECRET.into()),
    ]
}

/// [`env_for`] plus extra settings.
pub fn env_with(
    graph: &Graph,
    identity: &Identity,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut env = env_for(graph, identity);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// A distinct, valid result id for request number `n`.
pub fn result_id(n: usize) -> String {
    format!("7c2a9e11-56bd-41a0-9d7c-{n:012}")
}

/// A resume request by explicit ids for result number `n`.
pub fn request_for(n: usize, status: &str) -> Value {
    json!({"operationStatus": status, "workflowId": WORKFLOW, "taskId": TASK, "taskProcessingResultId": result_id(n)})
}

/// Captured output lines of the child process.
#[derive(Clone, Default)]
pub struct Output {
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
    /// How many of the two streams have reached end of file.
    pub closed: Arc<std::sync::atomic::AtomicUsize>,
}

impl Output {
    /// Waits until both streams are closed (the process exited and every line was read).
    pub fn wait_closed(&self, limit: Duration) {
        let started = Instant::now();
        while self.closed.load(std::sync::atomic::Ordering::SeqCst) < 2 {
            assert!(
                started.elapsed() < limit,
                "output still open after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }
    pub fn all(&self) -> String {
        let mut all = self.stdout();
        all.extend(self.stderr());
        all.join("\n")
    }
    /// Every line parsed as JSON (panics on a line that is not: logs are JSON lines).
    pub fn json_lines(lines: &[String]) -> Vec<Value> {
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not a JSON log line: {l}")))
            .collect()
    }
}

/// The `handler` binary, started as the Functions host starts it.
pub struct Gateway {
    pub child: Child,
    pub port: u16,
    pub output: Output,
    pub client: reqwest::Client,
    /// Time from spawn to the first answer on `GET /`.
    pub ready_after: Duration,
}

/// The port a child asks for: 0, any free one, bound by the child itself. Reserving a port
/// here and releasing it for the child would leave a gap in which another test takes it;
/// [`listening_port`] reads the one the child got.
pub const ANY_PORT: u16 = 0;

/// The TCP port `pid` listens on, read from its own sockets (`/proc/<pid>/fd`) and the kernel's
/// table of IPv4 sockets: `None` until it listens. Unlike the start-up log line, this holds
/// whatever `RUST_LOG` hides.
pub fn listening_port(pid: u32) -> Option<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // local_address is f[1] (hex ip:port), st f[3] (0A: LISTEN), inode f[9].
        (f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]))
            .then(|| u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok())?
    })
}

/// A loopback port on which nothing listens, kept so until the socket is dropped: bound but
/// never listening, so a connection is refused and no other test can take the port.
pub fn closed_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Spawns the binary with exactly `env` (plus PATH and the port), capturing its output.
pub fn spawn(env: &[(String, String)], port: u16) -> (Child, Output) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_handler"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the handler binary starts");
    let output = Output::default();
    output.pipe(child.stdout.take().unwrap(), output.stdout.clone());
    output.pipe(child.stderr.take().unwrap(), output.stderr.clone());
    (child, output)
}

/// Starts the handler with `env` and asserts it stops within `within` as a bad setting must:
/// exit code 2, nothing on stdout, one line on stderr naming `setting` and showing `shown`.
pub fn assert_stops_on_bad_setting(
    env: &[(String, String)],
    setting: &str,
    shown: &str,
    within: Duration,
) {
    let started = Instant::now();
    let (mut child, output) = spawn(env, ANY_PORT);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < within,
            "{setting}: still running after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    output.wait_closed(Duration::from_secs(5));
    assert_eq!(status.code(), Some(2), "{setting}");
    let stderr = output.stderr();
    assert_eq!(stderr.len(), 1, "{setting}: {stderr:?}");
    assert!(
        stderr[0].contains(setting) && stderr[0].contains(shown),
        "{}",
        stderr[0]
    );
    assert!(
        output.stdout().is_empty(),
        "{setting}: {:?}",
        output.stdout()
    );
}

/// Waits for the child to listen, then polls `GET http://127.0.0.1:<port>/` as the Functions
/// host does (every 25 ms, 30 s limit); returns the port and the time since `started`; panics
/// with the child's output if it exits first.
pub async fn wait_ready(
    client: &reqwest::Client,
    child: &mut Child,
    output: &Output,
    started: Instant,
) -> (u16, Duration) {
    let mut port = None;
    loop {
        port = port.or_else(|| listening_port(child.id()));
        if let Some(port) = port {
            let ready = format!("http://127.0.0.1:{port}/");
            if let Ok(r) = client
                .get(&ready)
                .timeout(Duration::from_secs(1))
                .send()
                .await
            {
                assert_eq!(r.status(), 200, "GET / must answer 200");
                return (port, started.elapsed());
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "handler exited with {status} before it was ready:\n{}",
                output.all()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "handler not ready within 30 s:\n{}",
            output.all()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

impl Output {
    /// Collects a child's output lines in the background, counting the stream closed at EOF.
    pub fn pipe(&self, stream: impl std::io::Read + Send + 'static, sink: Arc<Mutex<Vec<String>>>) {
        let closed = self.closed.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
            closed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
    }
}

impl Gateway {
    /// Starts the gateway and waits, as the host does (poll `GET /` every 25 ms, 30 s limit).
    pub async fn start(env: &[(String, String)]) -> Self {
        install_crypto();
        let started = Instant::now();
        let (mut child, output) = spawn(env, ANY_PORT);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(240))
            .build()
            .unwrap();
        let (port, ready_after) = wait_ready(&client, &mut child, &output, started).await;
        Self {
            child,
            port,
            output,
            client,
            ready_after,
        }
    }

    /// Sends SIGTERM, as the host does on shutdown.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.output.wait_closed(Duration::from_secs(5));
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "handler did not exit within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Endpoint for Gateway {
    fn port(&self) -> u16 {
        self.port
    }
    fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

/// A gateway under test, in a child process ([`Gateway`]) or in this one ([`app::App`]): the
/// requests tests send it.
pub trait Endpoint {
    fn port(&self) -> u16;
    fn client(&self) -> &reqwest::Client;

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port())
    }

    /// POSTs a JSON body to the resume function.
    fn resume(&self, body: &Value) -> impl Future<Output = reqwest::Response> {
        self.resume_with(body, &[])
    }

    fn resume_with(
        &self,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> impl Future<Output = reqwest::Response> {
        let mut req = self
            .client()
            .post(self.url("/api/function-resume"))
            .header("content-type", "application/json")
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        async move { req.send().await.expect("the gateway answers") }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a JSON answer with its status and content type.
pub async fn answer(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, content_type, body)
}

/// A whole HTTP/1.1 POST of `body` to `path`, as bytes on the wire (for tests that need to
/// send part of a request, or many at once without a client's pooling).
pub fn raw_post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads what the gateway sends on a raw connection until it closes it: `Ok` with the status
/// of the first answer (`None` if it closed without one), `Err` on a reset.
pub async fn raw_answer(
    stream: &mut tokio::net::TcpStream,
) -> std::io::Result<(Option<u16>, String)> {
    use tokio::io::AsyncReadExt;
    let mut all = Vec::new();
    stream.read_to_end(&mut all).await?;
    let text = String::from_utf8_lossy(&all).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    Ok((status, text))
}

/// A `/proc/<pid>/status` figure in bytes (`VmHWM`: peak resident, `VmRSS`: resident now).
pub fn proc_status_bytes(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"));
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// `count` objects `{"":0}` as a JSON array: the shape that costs a JSON tree the most per byte.
pub fn tiny_objects(count: usize) -> String {
    let mut s = String::with_capacity(count * 7 + 2);
    s.push('[');
    for i in 0..count {
        if i > 0 {
            s.push(',');
        }
        s.push_str(r#"{"":0}"#);
    }
    s.push(']');
    s
}

/// A body sent in chunks without Content-Length.
pub fn futures_stream(
    bytes: Vec<u8>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    tokio_stream_iter(chunks)
}

pub fn tokio_stream_iter<T: Send + 'static>(
    items: Vec<T>,
) -> impl futures_core::Stream<Item = T> + Send + 'static {
    struct Iter<T>(std::vec::IntoIter<T>);
    impl<T> futures_core::Stream for Iter<T> {
        type Item = T;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    impl<T> Unpin for Iter<T> {}
    Iter(items.into_iter())
}

pub fn result_path(workflow: &str, task: &str, result: &str) -> String {
    resume_path(workflow, task, result)
        .strip_suffix("/resume")
        .unwrap()
        .to_owned()
}

/// Graph answering the resume with `resume`, and a read of the result with `read`. The
/// shared mock servers are never dropped (see `common::Server`), so counts are asserted on
/// the received requests ([`counts`]).
pub async fn graph_resume_and_read(resume: ResponseTemplate, read: ResponseTemplate) -> Graph {
    let graph = Graph::start().await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/v1.0{}",
            resume_path(WORKFLOW, TASK, RESULT)
        )))
        .respond_with(resume)
        .mount(&graph.server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/v1.0{}",
            result_path(WORKFLOW, TASK, RESULT)
        )))
        .and(query_param("$select", "id,processingStatus"))
        .respond_with(read)
        .mount(&graph.server)
        .await;
    graph
}

pub fn graph_error(status: u16) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("request-id", format!("resume-{status}").as_str())
        .set_body_json(json!({"error": {"code": format!("Code{status}"), "message": format!("message {status}")}}))
}

pub fn held(status: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("request-id", "read-1")
        .set_body_json(json!({"id": RESULT, "processingStatus": status}))
}

/// How many resumes and reads Graph received; every read carries the resume's token.
pub async fn counts(graph: &Graph) -> (usize, usize) {
    let sent = graph.requests().await;
    let (posts, gets): (Vec<_>, Vec<_>) = sent.iter().partition(|r| r.method.as_str() == "POST");
    for get in &gets {
        assert_eq!(
            get.headers.get("authorization"),
            posts[0].headers.get("authorization"),
            "the read uses the resume's token"
        );
    }
    (posts.len(), gets.len())
}

/// Resumes the sample result by its `callbackUriPath` with `status`: the answer's status and body.
pub async fn resume_the_result(gateway: &impl Endpoint, status: &str) -> (u16, Value) {
    let body =
        json!({"operationStatus": status, "callbackUriPath": resume_path(WORKFLOW, TASK, RESULT)});
    let (got, _, body) = answer(gateway.resume(&body).await).await;
    (got, body)
}
