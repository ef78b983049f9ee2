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

use std::borrow::Cow;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::response::Response;
use base64::Engine;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::request::echo;

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

/// An HTTP request as a JSON invocation carries it, read in place: the envelope is scanned once
/// and only the request's `Method`, `Headers` and `Body` are kept, as slices of the payload;
/// `Metadata` and every other binding are skipped unread. No part of it becomes a JSON tree, so
/// a 4 MiB envelope costs about its own size, whatever it holds.
#[derive(Debug)]
pub struct Invocation<'a> {
    pub method: Method,
    headers: Option<&'a RawValue>,
    body: Option<&'a RawValue>,
}

/// Why an invocation payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the invocation payload {0}")]
pub struct InvocationError(pub String);

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "Data", borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct InvokedRequest<'a> {
    #[serde(rename = "Method", borrow)]
    method: Option<&'a RawValue>,
    #[serde(rename = "Headers", borrow)]
    headers: Option<&'a RawValue>,
    #[serde(rename = "Body", borrow)]
    body: Option<&'a RawValue>,
}

/// Whether `payload` is a JSON invocation (an object with a `Data` object), which a resume
/// request can never be. Scanned, not built.
pub fn is_invocation(payload: &[u8]) -> bool {
    serde_json::from_slice::<Envelope<'_>>(payload)
        .is_ok_and(|e| e.data.is_some_and(|d| d.get().starts_with('{')))
}

impl<'a> Invocation<'a> {
    /// Reads the envelope, defensively: the host's serializer has changed across versions
    /// (headers as arrays or strings, the body as text, base64, a JSON-encoded string, or absent
    /// when the request was chunked).
    pub fn parse(payload: &'a [u8]) -> Result<Self, InvocationError> {
        let envelope: Envelope<'a> = serde_json::from_slice(payload)
            .map_err(|e| InvocationError(format!("is not JSON: {e}")))?;
        let data = envelope
            .data
            .filter(|d| d.get().starts_with('{'))
            .ok_or_else(|| InvocationError("has no \"Data\" object".into()))?;
        // The binding is `req` in our function.json; another name is found by its `Method`.
        let bindings: HashMap<Cow<'a, str>, &'a RawValue> = serde_json::from_str(data.get())
            .map_err(|e| InvocationError(format!("has an unreadable \"Data\": {e}")))?;
        let object = |raw: &&&'a RawValue| raw.get().starts_with('{');
        let read = |raw: &&'a RawValue| serde_json::from_str::<InvokedRequest<'a>>(raw.get()).ok();
        let request = match bindings.get("req") {
            Some(req) => Some(req).filter(object).and_then(read),
            None => bindings
                .values()
                .filter(object)
                .filter_map(read)
                .find(|r| r.method.is_some()),
        };
        let Some(request) = request else {
            return Err(InvocationError("has no HTTP request in \"Data\"".into()));
        };
        Ok(Self {
            method: method(request.method)?,
            headers: request.headers,
            body: request.body,
        })
    }

    /// The request's headers; a name or value HTTP does not allow is left out.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let Some(raw) = self.headers else {
            return headers;
        };
        let Ok(map) = serde_json::from_str::<HashMap<Cow<'_, str>, HeaderValues<'_>>>(raw.get())
        else {
            return headers;
        };
        for (name, HeaderValues(values)) in map {
            let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                continue;
            };
            for v in values {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    headers.append(name.clone(), v);
                }
            }
        }
        headers
    }

    /// The request's body, decoded.
    pub fn body(&self) -> Vec<u8> {
        body_bytes(self.body)
    }
}

/// Absent, the host's trigger allows only POST; present, it must be a method, or a GET could
/// pass for a POST.
fn method(raw: Option<&RawValue>) -> Result<Method, InvocationError> {
    let Some(raw) = raw.filter(|r| r.get() != "null") else {
        return Ok(Method::POST);
    };
    let text: Cow<'_, str> = serde_json::from_str(raw.get())
        .map_err(|_| InvocationError("has a Method that is not a string".into()))?;
    Method::from_bytes(text.to_ascii_uppercase().as_bytes()).map_err(|_| {
        InvocationError(format!(
            "has a Method that is not an HTTP method: {}",
            echo::quoted(&text)
        ))
    })
}

/// A header's values: one string, or an array whose strings are kept (anything else is
/// skipped unread).
struct HeaderValues<'a>(Vec<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for HeaderValues<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Values<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Values<'a> {
            type Value = HeaderValues<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(HeaderValues(vec![Cow::Borrowed(v)]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(HeaderValues(vec![Cow::Owned(v.to_owned())]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut values = Vec::new();
                while let Some(item) = seq.next_element::<StrOrSkip<'de>>()? {
                    if let StrOrSkip(Some(v)) = item {
                        values.push(v);
                    }
                }
                Ok(HeaderValues(values))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(HeaderValues(Vec::new()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(HeaderValues(Vec::new()))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(HeaderValues(Vec::new()))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(HeaderValues(Vec::new()))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(HeaderValues(Vec::new()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(HeaderValues(Vec::new()))
            }
        }
        deserializer.deserialize_any(Values(PhantomData))
    }
}

/// One array item of a header: a string, or anything else skipped unread.
struct StrOrSkip<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for StrOrSkip<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match HeaderValues::deserialize(deserializer)? {
            HeaderValues(mut v) if v.len() == 1 => Ok(StrOrSkip(v.pop())),
            _ => Ok(StrOrSkip(None)),
        }
    }
}

/// Whether `bytes` are one JSON document, checked without building it.
fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<IgnoredAny>(bytes).is_ok()
}

fn body_bytes(body: Option<&RawValue>) -> Vec<u8> {
    let Some(raw) = body.filter(|b| b.get() != "null") else {
        return Vec::new();
    };
    if !raw.get().starts_with('"') {
        // Deserialized by the host already: the JSON as it stands.
        return raw.get().as_bytes().to_vec();
    }
    let Ok(text) = serde_json::from_str::<Cow<'_, str>>(raw.get()) else {
        return Vec::new();
    };
    string_body(text)
}

fn string_body(text: Cow<'_, str>) -> Vec<u8> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('"') {
        // A JSON-encoded string ("\"{…}\""): the body is the string inside.
        if let Ok(inner) = serde_json::from_str::<String>(&text) {
            return string_body(Cow::Owned(inner));
        }
    }
    if is_json(text.as_bytes()) {
        return text.into_owned().into_bytes();
    }
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .filter(|bytes| is_json(bytes))
        .unwrap_or_else(|| text.into_owned().into_bytes())
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
            let payload = payload.to_string();
            let r = Invocation::parse(payload.as_bytes()).unwrap();
            assert_eq!(String::from_utf8(r.body()).unwrap(), body);
            assert_eq!(r.headers()["content-type"], "application/json");
        }
        let absent = json!({"Data": {"req": {"Method": "post", "Headers": {"x-a": "one"}}}});
        let absent = absent.to_string();
        let r = Invocation::parse(absent.as_bytes()).unwrap();
        assert!(r.body().is_empty());
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.headers()["x-a"], "one");
        assert!(Invocation::parse(b"{}").is_err());
        assert!(Invocation::parse(b"nope").is_err());
        assert!(Invocation::parse(br#"{"Data": []}"#).is_err());
        assert!(is_invocation(
            br#"{"Data": {}, "Metadata": {"a": [1, {"b": 2}]}}"#
        ));
        assert!(!is_invocation(br#"{"Data": "x"}"#));
        assert!(!is_invocation(br#"{"operationStatus": "completed"}"#));
    }

    #[test]
    fn headers_in_any_shape_and_another_binding_name() {
        let payload = json!({"Data": {"request": {"Method": "POST", "Headers": {
            "x-one": "1", "x-many": ["a", 2, "b", null, {"c": 3}], "x-odd": {"k": "v"}, "x-num": 7,
            "bad name": ["v"], "x-bad-value": ["a\nb"], "x-esc": "caf\u{e9}\"q"
        }}}, "Metadata": {"sys": {"MethodName": "x"}}})
        .to_string();
        let r = Invocation::parse(payload.as_bytes()).unwrap();
        let h = r.headers();
        assert_eq!(h["x-one"], "1");
        let many: Vec<_> = h
            .get_all("x-many")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(many, ["a", "b"]);
        assert!(
            !h.contains_key("x-odd") && !h.contains_key("x-num") && !h.contains_key("x-bad-value")
        );
        assert_eq!(h.len(), 4, "{h:?}");
    }

    #[test]
    fn an_unreadable_method_is_refused_not_taken_for_post() {
        let with = |method: Value| json!({"Data": {"req": {"Method": method}}}).to_string();
        let read = |payload: String| Invocation::parse(payload.as_bytes()).map(|i| i.method);
        assert_eq!(read(with(json!("get"))).unwrap(), Method::GET);
        assert_eq!(read(with(Value::Null)).unwrap(), Method::POST);
        let long = format!("P OST{}", "x".repeat(10_000));
        for bad in [
            json!("P OST"),
            json!(""),
            json!(long),
            json!(1),
            json!(["POST"]),
        ] {
            let e = read(with(bad.clone())).unwrap_err();
            assert!(e.0.contains("Method"), "{bad}: {e}");
            assert!(e.0.len() < 200, "{e}");
        }
    }
}
