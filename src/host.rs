//! The Azure Functions host's side of the contract.
//!
//! - Which functions exist: read once at start from every `<name>/function.json` under the app
//!   root, with `host.json`'s `extensions.http.routePrefix`, so a renamed folder or a `route`
//!   setting keeps working.
//! - JSON invocation mode (no request forwarding): the host POSTs `/<FunctionName>` with
//!   `{"Data":{"req":{…}},"Metadata":{…}}` and expects HTTP 200 with
//!   `{"Outputs":{"res":{"statusCode","headers","body"}},"Logs":[…],"ReturnValue":…}`.
//!   Any non-2xx is a failed invocation whose logs are dropped, so the real status goes in
//!   `res.statusCode` and this adapter always answers 200.

use std::path::{Path, PathBuf};

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::response::Response;
use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::echo;

/// What the gateway serves when no `function.json` is found (e.g. `cargo run` elsewhere).
pub const DEFAULT_FUNCTION: &str = "function-resume";
const DEFAULT_ROUTE_PREFIX: &str = "api";
/// The gateway's own answers are small; this only guards against a broken response body.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// An HTTP-triggered function the host will call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpFunction {
    /// The function's name: its folder, and the path of its JSON invocations (`/<name>`).
    pub name: String,
    /// The path forwarded and proxied requests arrive at: `/<routePrefix>/<route>`.
    pub path: String,
}

/// The app's function layout could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid function app file {file}: {problem}")]
pub struct LayoutError {
    pub file: String,
    pub problem: String,
}

/// Reads the HTTP-triggered functions under `app_root`; the default function when there are none.
pub fn discover(app_root: &Path) -> Result<Vec<HttpFunction>, LayoutError> {
    let prefix = route_prefix(&app_root.join("host.json"))?;
    let mut functions = Vec::new();
    let entries = match std::fs::read_dir(app_root) {
        Ok(entries) => entries,
        Err(_) => return Ok(vec![default_function(&prefix)]),
    };
    let mut folders: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("function.json").is_file())
        .collect();
    folders.sort();
    for folder in folders {
        let file = folder.join("function.json");
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let definition: Value = read_json(&file)?;
        let error = |problem: String| LayoutError {
            file: file.display().to_string(),
            problem,
        };
        let bindings = definition
            .get("bindings")
            .and_then(Value::as_array)
            .ok_or_else(|| error("has no \"bindings\" array".into()))?;
        let Some(trigger) = bindings.iter().find(|b| {
            b.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("httpTrigger"))
        }) else {
            continue;
        };
        let route = trigger
            .get("route")
            .and_then(Value::as_str)
            .map(|r| r.trim_matches('/').to_owned())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| name.clone());
        if route.contains(['{', '}', '*', '?', '#']) {
            return Err(error(format!(
                "route {route:?} has parameters or wildcards; the gateway serves fixed routes only"
            )));
        }
        if !valid_segment(&name) {
            return Err(error(format!("function name {name:?} is not a plain name")));
        }
        functions.push(HttpFunction {
            path: join_path(&prefix, &route),
            name,
        });
    }
    if functions.is_empty() {
        functions.push(default_function(&prefix));
    }
    Ok(functions)
}

fn default_function(prefix: &str) -> HttpFunction {
    HttpFunction {
        name: DEFAULT_FUNCTION.into(),
        path: join_path(prefix, DEFAULT_FUNCTION),
    }
}

fn valid_segment(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn join_path(prefix: &str, route: &str) -> String {
    if prefix.is_empty() {
        format!("/{route}")
    } else {
        format!("/{prefix}/{route}")
    }
}

fn route_prefix(host_json: &Path) -> Result<String, LayoutError> {
    if !host_json.is_file() {
        return Ok(DEFAULT_ROUTE_PREFIX.into());
    }
    let host = read_json(host_json)?;
    Ok(host
        .pointer("/extensions/http/routePrefix")
        .and_then(Value::as_str)
        .map(|p| p.trim_matches('/').to_owned())
        .unwrap_or_else(|| DEFAULT_ROUTE_PREFIX.into()))
}

fn read_json(file: &Path) -> Result<Value, LayoutError> {
    let error = |problem: String| LayoutError {
        file: file.display().to_string(),
        problem,
    };
    let text = std::fs::read_to_string(file).map_err(|e| error(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| error(format!("not valid JSON: {e}")))
}

/// An HTTP request as a JSON invocation carries it.
#[derive(Debug)]
pub struct InvokedRequest {
    pub method: Method,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Why an invocation payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the invocation payload {0}")]
pub struct InvocationError(pub String);

/// Reads the HTTP request out of a JSON invocation, defensively: the host's serializer has
/// changed across versions (headers as arrays or strings, the body as text, base64, a
/// JSON-encoded string, or absent when the request was chunked).
pub fn read_invocation(payload: &[u8]) -> Result<InvokedRequest, InvocationError> {
    let invocation: Value = serde_json::from_slice(payload)
        .map_err(|e| InvocationError(format!("is not JSON: {e}")))?;
    let data = invocation
        .get("Data")
        .and_then(Value::as_object)
        .ok_or_else(|| InvocationError("has no \"Data\" object".into()))?;
    let req = data
        .get("req")
        .or_else(|| data.values().find(|v| v.get("Method").is_some()))
        .and_then(Value::as_object)
        .ok_or_else(|| InvocationError("has no HTTP request in \"Data\"".into()))?;

    // Absent, the host's trigger allows only POST; present, it must be a method, or a GET
    // could pass for a POST.
    let method = match req.get("Method") {
        None | Some(Value::Null) => Method::POST,
        Some(Value::String(m)) => {
            Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| {
                InvocationError(format!(
                    "has a Method that is not an HTTP method: {}",
                    echo::quoted(m)
                ))
            })?
        }
        Some(_) => return Err(InvocationError("has a Method that is not a string".into())),
    };
    let mut headers = HeaderMap::new();
    if let Some(Value::Object(h)) = req.get("Headers") {
        for (name, value) in h {
            let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                continue;
            };
            let values: Vec<&str> = match value {
                Value::String(s) => vec![s.as_str()],
                Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            for v in values {
                if let Ok(v) = HeaderValue::from_str(v) {
                    headers.append(name.clone(), v);
                }
            }
        }
    }
    let body = body_bytes(req.get("Body"));
    Ok(InvokedRequest {
        method,
        headers,
        body,
    })
}

fn body_bytes(body: Option<&Value>) -> Vec<u8> {
    match body {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            // A JSON-encoded string ("\"{…}\""): the body is the string inside.
            Ok(Value::String(inner)) => body_bytes(Some(&Value::String(inner))),
            Ok(_) => text.clone().into_bytes(),
            Err(_) => base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .ok()
                .filter(|bytes| serde_json::from_slice::<Value>(bytes).is_ok())
                .unwrap_or_else(|| text.clone().into_bytes()),
        },
        // Deserialized by the host already.
        Some(other) => serde_json::to_vec(other).unwrap_or_default(),
    }
}

/// The host's view of a function's answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvocationResult {
    pub outputs: Map<String, Value>,
    pub logs: Vec<String>,
    pub return_value: Value,
}

/// Wraps an HTTP answer as the `res` output of an invocation, with one log line for the host.
pub async fn invocation_result(response: Response) -> InvocationResult {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ANSWER_BYTES)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        if let Ok(v) = value.to_str() {
            headers.insert(name.as_str().to_owned(), Value::String(v.to_owned()));
        }
    }
    let status = parts.status.as_u16();
    let log = match serde_json::from_str::<Value>(&text) {
        Ok(answer) if status >= 400 => format!(
            "resume-gateway answered {status} {}: {}",
            answer["type"].as_str().unwrap_or(""),
            answer["detail"].as_str().unwrap_or("")
        ),
        Ok(answer) => format!(
            "resume-gateway answered {status}: {} taskProcessingResult {}",
            answer["outcome"].as_str().unwrap_or(""),
            answer["taskProcessingResultId"].as_str().unwrap_or("")
        ),
        Err(_) => format!("resume-gateway answered {status}"),
    };
    let mut outputs = Map::new();
    outputs.insert(
        "res".into(),
        json!({"statusCode": status, "headers": headers, "body": text}),
    );
    InvocationResult {
        outputs,
        logs: vec![log],
        return_value: Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_app(files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rg-host-{}", uuid::Uuid::new_v4()));
        for (path, text) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    const HTTP: &str = r#"{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["post"]},{"type":"http","direction":"out","name":"res"}]}"#;

    #[test]
    fn folders_routes_and_prefix_are_read() {
        let app = temp_app(&[
            (
                "host.json",
                r#"{"version":"2.0","extensions":{"http":{"routePrefix":"gw"}}}"#,
            ),
            ("resume/function.json", HTTP),
            (
                "other/function.json",
                r#"{"bindings":[{"type":"httpTrigger","route":"/lcw/resume/","name":"req"}]}"#,
            ),
            (
                "timer/function.json",
                r#"{"bindings":[{"type":"timerTrigger","name":"t"}]}"#,
            ),
        ]);
        let f = discover(&app).unwrap();
        assert_eq!(
            f,
            vec![
                HttpFunction {
                    name: "other".into(),
                    path: "/gw/lcw/resume".into()
                },
                HttpFunction {
                    name: "resume".into(),
                    path: "/gw/resume".into()
                },
            ]
        );
    }

    #[test]
    fn empty_prefix_and_defaults() {
        let app = temp_app(&[
            (
                "host.json",
                r#"{"version":"2.0","extensions":{"http":{"routePrefix":""}}}"#,
            ),
            ("function-resume/function.json", HTTP),
        ]);
        assert_eq!(discover(&app).unwrap()[0].path, "/function-resume");
        let nothing = temp_app(&[]);
        assert_eq!(
            discover(&nothing).unwrap(),
            vec![HttpFunction {
                name: DEFAULT_FUNCTION.into(),
                path: "/api/function-resume".into()
            }]
        );
    }

    #[test]
    fn templates_and_broken_files_are_refused_with_the_file_named() {
        let app = temp_app(&[(
            "f/function.json",
            r#"{"bindings":[{"type":"httpTrigger","route":"resume/{id}","name":"req"}]}"#,
        )]);
        let e = discover(&app).unwrap_err();
        assert!(
            e.file.ends_with("function.json") && e.problem.contains("{id}"),
            "{e}"
        );
        let app = temp_app(&[("f/function.json", "{")]);
        assert!(
            discover(&app)
                .unwrap_err()
                .problem
                .contains("not valid JSON")
        );
    }

    #[test]
    fn invocation_bodies_in_every_encoding() {
        let body = r#"{"operationStatus":"completed"}"#;
        let b64 = base64::engine::general_purpose::STANDARD.encode(body);
        for encoded in [
            json!(body),
            json!(serde_json::to_string(body).unwrap()),
            json!(b64),
            serde_json::from_str::<Value>(body).unwrap(),
        ] {
            let payload = json!({"Data": {"req": {"Method": "POST", "Headers": {"Content-Type": ["application/json"]}, "Body": encoded}}, "Metadata": {}});
            let r = read_invocation(payload.to_string().as_bytes()).unwrap();
            assert_eq!(String::from_utf8(r.body).unwrap(), body);
            assert_eq!(r.headers["content-type"], "application/json");
        }
        let absent = json!({"Data": {"req": {"Method": "post", "Headers": {"x-a": "one"}}}});
        let r = read_invocation(absent.to_string().as_bytes()).unwrap();
        assert!(r.body.is_empty());
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.headers["x-a"], "one");
        assert!(read_invocation(b"{}").is_err());
        assert!(read_invocation(b"nope").is_err());
    }

    #[test]
    fn an_unreadable_method_is_refused_not_taken_for_post() {
        let with = |method: Value| json!({"Data": {"req": {"Method": method}}}).to_string();
        assert_eq!(
            read_invocation(with(json!("get")).as_bytes())
                .unwrap()
                .method,
            Method::GET
        );
        assert_eq!(
            read_invocation(with(Value::Null).as_bytes())
                .unwrap()
                .method,
            Method::POST
        );
        let long = format!("P OST{}", "x".repeat(10_000));
        for bad in [
            json!("P OST"),
            json!(""),
            json!(long),
            json!(1),
            json!(["POST"]),
        ] {
            let e = read_invocation(with(bad.clone()).as_bytes()).unwrap_err();
            assert!(e.0.contains("Method"), "{bad}: {e}");
            assert!(e.0.len() < 200, "{e}");
        }
    }
}
