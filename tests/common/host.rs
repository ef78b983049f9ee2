//! An Azure Functions host emulator for tests (never shipped): it reads `host.json` and every
//! `function.json` of an app folder, starts the custom handler the way the host does, and
//! serves the public front end (`/api/<route>`) in the mode `host.json` selects:
//! request forwarding, request proxying, or JSON invocations.
//!
//! Behaviour copied from the host's `Workers/Http` code: the readiness poll (GET / every
//! 25 ms, 30 s), the added headers (`X-Azure-Functions-InvocationId`,
//! `X-Azure-Functions-HostVersion`, `User-Agent: Azure-Functions-Host/<v>`), forwarding copies
//! the body (and its Content-Type) only when Content-Length > 0, repeated query keys are
//! comma-joined, JSON invocations go to `/<FunctionName>` with `Data.req` (headers as arrays,
//! the body as a string) and a non-2xx from the handler fails the invocation (caller sees 500,
//! logs dropped).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Output;

pub const HOST_VERSION: &str = "4.1037.0.0";
/// The function key the emulated front end checks for `authLevel: function`.
pub const FUNCTION_KEY: &str = "emulated-function-key-Zx81";

/// How the host hands requests to the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Forwarding,
    Proxying,
    Json,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Forwarding, Mode::Proxying, Mode::Json];
}

/// One HTTP-triggered function as the host reads it.
#[derive(Debug, Clone)]
struct Function {
    name: String,
    route: String,
    methods: Vec<String>,
    auth_level: String,
    /// Forwarding needs exactly one httpTrigger in and one http out.
    forwardable: bool,
}

/// The emulated host with its handler process and front end.
pub struct FunctionsHost {
    pub child: Child,
    pub output: Output,
    pub front: String,
    pub mode: Mode,
    /// Exec to first answer on GET /.
    pub ready_after: Duration,
    /// The `Logs` the handler returned from JSON invocations.
    pub invocation_logs: Arc<Mutex<Vec<String>>>,
    /// Invocation ids the host assigned, in order.
    pub invocation_ids: Arc<Mutex<Vec<String>>>,
    pub client: reqwest::Client,
}

impl Drop for FunctionsHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lays out an app folder as a user deploys it: host.json, the function folder and `handler`.
pub fn app_folder(host_json: &Value, function_folder: &str, function_json: &Value) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rg-app-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join(function_folder)).unwrap();
    std::fs::write(
        dir.join("host.json"),
        serde_json::to_vec_pretty(host_json).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join(function_folder).join("function.json"),
        serde_json::to_vec_pretty(function_json).unwrap(),
    )
    .unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_handler"), dir.join("handler")).unwrap();
    dir
}

/// The repository's own host.json and function.json.
pub fn repo_json(path: &str) -> Value {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The repository's host.json switched to `mode`.
pub fn host_json_for(mode: Mode) -> Value {
    let mut host = repo_json("host.json");
    let ch = host["customHandler"].as_object_mut().unwrap();
    ch.remove("enableForwardingHttpRequest");
    ch.remove("enableProxyingHttpRequest");
    match mode {
        Mode::Forwarding => {
            ch.insert("enableForwardingHttpRequest".into(), json!(true));
        }
        Mode::Proxying => {
            ch.insert("enableProxyingHttpRequest".into(), json!(true));
        }
        Mode::Json => {}
    }
    host
}

/// `%SETTING%` expansion of `customHandler.description.arguments`, as the host does it.
pub fn expand(arg: &str, settings: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = arg;
    while let Some(start) = rest.find('%') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('%') {
            Some(end) => {
                let name = &after[..end];
                out.push_str(settings.get(name).map(String::as_str).unwrap_or(""));
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn read_functions(app: &Path) -> Vec<Function> {
    let mut functions = Vec::new();
    for entry in std::fs::read_dir(app).unwrap() {
        let dir = entry.unwrap().path();
        let file = dir.join("function.json");
        if !file.is_file() {
            continue;
        }
        let def: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let bindings = def["bindings"]
            .as_array()
            .expect("function.json has bindings");
        let triggers: Vec<&Value> = bindings
            .iter()
            .filter(|b| b["type"] == "httpTrigger")
            .collect();
        let Some(trigger) = triggers.first() else {
            continue;
        };
        assert_eq!(
            trigger["direction"], "in",
            "{file:?}: httpTrigger must be an input"
        );
        let http_outs = bindings
            .iter()
            .filter(|b| b["type"] == "http" && b["direction"] == "out")
            .count();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        functions.push(Function {
            route: trigger["route"]
                .as_str()
                .map(|r| r.trim_matches('/').to_owned())
                .unwrap_or_else(|| name.clone()),
            methods: trigger["methods"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_ascii_uppercase)
                        .collect()
                })
                .unwrap_or_default(),
            auth_level: trigger["authLevel"]
                .as_str()
                .unwrap_or("function")
                .to_ascii_lowercase(),
            forwardable: triggers.len() == 1 && http_outs == 1 && bindings.len() == 2,
            name,
        });
    }
    functions
}

struct Front {
    mode: Mode,
    prefix: String,
    functions: Vec<Function>,
    worker: String,
    client: reqwest::Client,
    logs: Arc<Mutex<Vec<String>>>,
    ids: Arc<Mutex<Vec<String>>>,
}

impl FunctionsHost {
    /// Starts the handler of the app in `app` as the host would, with `settings` as app settings.
    pub async fn start(app: &Path, settings: &[(String, String)]) -> Self {
        super::install_crypto();
        let host: Value =
            serde_json::from_str(&std::fs::read_to_string(app.join("host.json")).unwrap()).unwrap();
        assert_eq!(
            host["version"], "2.0",
            "the host only reads host.json version 2.0"
        );
        let description = &host["customHandler"]["description"];
        let exe = description["defaultExecutablePath"]
            .as_str()
            .expect("defaultExecutablePath");
        let exe_path = app.join(exe);
        assert!(
            exe_path.exists(),
            "{exe_path:?} missing: docs/deploy.md's build step must put the binary there"
        );
        let working = match description["workingDirectory"].as_str() {
            Some(w) if !w.is_empty() => app.join(w),
            _ => app.to_path_buf(),
        };
        let mode = if host["customHandler"]["enableProxyingHttpRequest"] == true {
            Mode::Proxying
        } else if host["customHandler"]["enableForwardingHttpRequest"] == true {
            Mode::Forwarding
        } else {
            Mode::Json
        };
        let prefix = host
            .pointer("/extensions/http/routePrefix")
            .and_then(Value::as_str)
            .unwrap_or("api")
            .trim_matches('/')
            .to_owned();
        let functions = read_functions(app);
        assert!(!functions.is_empty(), "no HTTP function in {app:?}");

        let settings: HashMap<String, String> = settings.iter().cloned().collect();
        let args: Vec<String> = description["arguments"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|s| expand(s, &settings))
                    .collect()
            })
            .unwrap_or_default();
        let started = Instant::now();
        let mut cmd = Command::new(&exe_path);
        cmd.args(&args)
            .current_dir(&working)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&settings)
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", super::ANY_PORT.to_string())
            .env(
                "FUNCTIONS_CUSTOMHANDLER_WORKER_ID",
                uuid::Uuid::new_v4().to_string(),
            )
            .env("FUNCTIONS_APP_ROOT_PATH", app)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("the host starts the handler");
        let output = Output::default();
        output.pipe(child.stdout.take().unwrap(), output.stdout.clone());
        output.pipe(child.stderr.take().unwrap(), output.stderr.clone());

        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(240))
            .build()
            .unwrap();
        let (port, ready_after) = super::wait_ready(&client, &mut child, &output, started).await;
        let worker = format!("http://127.0.0.1:{port}");

        let logs = Arc::new(Mutex::new(Vec::new()));
        let ids = Arc::new(Mutex::new(Vec::new()));
        let front = Arc::new(Front {
            mode,
            prefix,
            functions,
            worker,
            client: client.clone(),
            logs: logs.clone(),
            ids: ids.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front_url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(serve_front).with_state(front);
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            child,
            output,
            front: front_url,
            mode,
            ready_after,
            invocation_logs: logs,
            invocation_ids: ids,
            client,
        }
    }

    /// The public URL of a path, e.g. `/api/function-resume`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.front)
    }

    /// POSTs a JSON body with the function key, as a Logic App would.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("x-functions-key", FUNCTION_KEY)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }
}

fn plain(status: StatusCode, text: &str) -> Response {
    (status, text.to_owned()).into_response()
}

async fn serve_front(State(front): State<Arc<Front>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let Some(function) = front.functions.iter().find(|f| {
        let route = if front.prefix.is_empty() {
            format!("/{}", f.route)
        } else {
            format!("/{}/{}", front.prefix, f.route)
        };
        route.eq_ignore_ascii_case(&path)
    }) else {
        return plain(StatusCode::NOT_FOUND, "");
    };
    let method = request.method().as_str().to_owned();
    if !function.methods.is_empty() && !function.methods.contains(&method) {
        return plain(StatusCode::NOT_FOUND, "");
    }
    if function.auth_level != "anonymous" {
        let key_in_query = query
            .as_deref()
            .is_some_and(|q| q.split('&').any(|p| p == format!("code={FUNCTION_KEY}")));
        let key_in_header = request
            .headers()
            .get("x-functions-key")
            .is_some_and(|v| v == FUNCTION_KEY);
        if !key_in_query && !key_in_header {
            return plain(StatusCode::UNAUTHORIZED, "");
        }
    }
    let invocation_id = uuid::Uuid::new_v4().to_string();
    front.ids.lock().unwrap().push(invocation_id.clone());
    let mode = if function.forwardable {
        front.mode
    } else {
        Mode::Json
    };
    match mode {
        Mode::Forwarding | Mode::Proxying => {
            forward(
                &front,
                request,
                &path,
                query.as_deref(),
                &invocation_id,
                mode,
            )
            .await
        }
        Mode::Json => {
            invoke(
                &front,
                function,
                request,
                &path,
                query.as_deref(),
                &invocation_id,
            )
            .await
        }
    }
}

fn host_headers(builder: reqwest::RequestBuilder, invocation_id: &str) -> reqwest::RequestBuilder {
    builder
        .header("X-Azure-Functions-HostVersion", HOST_VERSION)
        .header("X-Azure-Functions-InvocationId", invocation_id)
}

const HOP_BY_HOP: [&str; 6] = [
    "host",
    "connection",
    "transfer-encoding",
    "content-length",
    "keep-alive",
    "upgrade",
];

async fn forward(
    front: &Front,
    request: Request,
    path: &str,
    query: Option<&str>,
    invocation_id: &str,
    mode: Mode,
) -> Response {
    let (parts, body) = request.into_parts();
    let url = match query {
        Some(q) => format!("{}{path}?{q}", front.worker),
        None => format!("{}{path}", front.worker),
    };
    let declared = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut builder = front.client.request(parts.method.clone(), url);
    let mut user_agent = String::new();
    for (name, value) in &parts.headers {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) {
            continue;
        }
        if n == "user-agent" {
            user_agent = value.to_str().unwrap_or("").to_owned();
            continue;
        }
        // The legacy forwarder rebuilds the request: content headers travel with a copied body only.
        if mode == Mode::Forwarding && n == "content-type" && declared.unwrap_or(0) == 0 {
            continue;
        }
        builder = builder.header(name, value);
    }
    builder = builder.header(
        "user-agent",
        format!("{user_agent} Azure-Functions-Host/{HOST_VERSION}")
            .trim()
            .to_owned(),
    );
    builder = host_headers(builder, invocation_id);
    builder = match mode {
        Mode::Forwarding if declared.unwrap_or(0) > 0 => {
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            builder.body(bytes)
        }
        Mode::Forwarding => builder,
        _ => builder.body(reqwest::Body::wrap_stream(body.into_data_stream())),
    };
    match builder.send().await {
        Ok(answer) => relay(answer).await,
        Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, ""),
    }
}

async fn relay(answer: reqwest::Response) -> Response {
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}

async fn invoke(
    front: &Front,
    function: &Function,
    request: Request,
    path: &str,
    query: Option<&str>,
    invocation_id: &str,
) -> Response {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut headers = serde_json::Map::new();
    for (name, value) in &parts.headers {
        let entry = headers
            .entry(canonical(name.as_str()))
            .or_insert_with(|| json!([]));
        entry
            .as_array_mut()
            .unwrap()
            .push(json!(value.to_str().unwrap_or("")));
    }
    let mut query_map = serde_json::Map::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let joined = match query_map.get(k).and_then(Value::as_str) {
            Some(existing) => format!("{existing},{v}"),
            None => v.to_owned(),
        };
        query_map.insert(k.to_owned(), json!(joined));
    }
    let mut req = json!({
        "Url": format!("http://localhost:7071{path}{}", query.map(|q| format!("?{q}")).unwrap_or_default()),
        "Method": parts.method.as_str(),
        "Query": query_map,
        "Headers": headers,
        "Params": {},
        "Identities": [],
    });
    if declared.unwrap_or(0) > 0 {
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        req["Body"] = json!(String::from_utf8_lossy(&bytes));
    }
    let invocation = json!({
        "Data": {"req": req},
        "Metadata": {"sys": {"MethodName": function.name, "UtcNow": "2026-11-28T10:00:00Z", "RandGuid": uuid::Uuid::new_v4().to_string()}},
    });
    let sent = host_headers(
        front
            .client
            .post(format!("{}/{}", front.worker, function.name)),
        invocation_id,
    )
    .header("user-agent", format!("Azure-Functions-Host/{HOST_VERSION}"))
    .json(&invocation)
    .send()
    .await;
    let Ok(answer) = sent else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "");
    };
    // EnsureSuccessStatusCode: a non-2xx fails the invocation and its logs are lost.
    if !answer.status().is_success() {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "");
    }
    let Ok(result) = answer.json::<Value>().await else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "");
    };
    if let Some(logs) = result["Logs"].as_array() {
        front
            .logs
            .lock()
            .unwrap()
            .extend(logs.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    let res = &result["Outputs"]["res"];
    let status = match &res["statusCode"] {
        Value::Number(n) => n.as_u64().unwrap_or(200) as u16,
        Value::String(s) => s.parse().unwrap_or(200),
        _ => 200,
    };
    let body = match &res["body"] {
        Value::String(s) => s.clone().into_bytes(),
        Value::Null => Vec::new(),
        other => other.to_string().into_bytes(),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    let mut out = HeaderMap::new();
    if let Some(h) = res["headers"].as_object() {
        for (k, v) in h {
            if let (Ok(name), Some(value)) = (
                HeaderName::from_bytes(k.as_bytes()),
                v.as_str().and_then(|v| HeaderValue::from_str(v).ok()),
            ) {
                out.insert(name, value);
            }
        }
    }
    *response.headers_mut() = out;
    response
}

/// ASP.NET keeps header names as received; the test clients send them lower-case, so give them
/// the capitalisation the host's serializer would usually show.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}
