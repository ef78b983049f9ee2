//! The request a Logic App (or an operator) sends to the gateway, validated into a
//! [`ResumeRequest`]. Every refusal names the field and says how to fix it.
//!
//! The Lifecycle Workflows callout carries the subject's personal data; only the ids and
//! `callbackUriPath` are read from it, and nothing of it is logged or kept.

pub(crate) mod echo;
pub(crate) mod ids;
pub mod path;
pub(crate) mod pruned;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::request::ids::Guid;
use crate::request::path::ResumeTarget;
use crate::request::pruned::Shape;

/// The largest request body the gateway reads.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
const MAX_REASONS: usize = 16;
const MAX_REASON_CHARS: usize = 1024;
const MAX_SOURCE_CHARS: usize = 256;
/// The summary log line keeps this many reasons, each cut to [`MAX_LOGGED_REASON_CHARS`]: enough
/// to tell why a task failed, without a caller's free text swelling every line.
const MAX_LOGGED_REASONS: usize = 4;
const MAX_LOGGED_REASON_CHARS: usize = 200;
const FIELDS: &[&str] = &[
    "operationStatus",
    "statusReasons",
    "source",
    "type",
    "callout",
    "callbackUriPath",
    "workflowId",
    "taskId",
    "taskProcessingResultId",
];
const TARGETS: &str = "`callout` (the trigger body, unchanged), `callbackUriPath`, or `workflowId` + `taskId` + `taskProcessingResultId`";

/// The outcome of the custom task extension, as Lifecycle Workflows records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationStatus {
    Completed,
    Failed,
}

impl OperationStatus {
    fn parse(value: &str) -> Option<Self> {
        if value.eq_ignore_ascii_case("completed") {
            Some(Self::Completed)
        } else if value.eq_ignore_ascii_case("failed") {
            Some(Self::Failed)
        } else {
            None
        }
    }

    /// The lower-case name used in the gateway's answers, and sent to Graph: the member names
    /// of Graph's `customTaskExtensionOperationStatus` enum.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

/// A validated request to resume one task processing result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeRequest {
    pub target: ResumeTarget,
    pub status: OperationStatus,
    pub status_reasons: Vec<String>,
    /// The caller's `source`, if it gave one; the configured default applies otherwise.
    pub source: Option<String>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the body is not a JSON object: {0}")]
    Malformed(String),
    #[error("`{field}` {detail}")]
    InvalidField { field: String, detail: String },
    #[error("`{field}` {detail}")]
    CallbackPathRefused { field: String, detail: String },
}

impl RequestError {
    fn field(field: &str, detail: impl Into<String>) -> Self {
        Self::InvalidField {
            field: echo::cut(field).into_owned(),
            detail: detail.into(),
        }
    }

    /// The field at fault, when there is one.
    pub fn field_name(&self) -> Option<&str> {
        match self {
            Self::Malformed(_) => None,
            Self::InvalidField { field, .. } | Self::CallbackPathRefused { field, .. } => {
                Some(field)
            }
        }
    }
}

impl ResumeRequest {
    /// The caller's reasons as the summary log line records them (a JSON array, bounded in
    /// count and length, with how many were left out); `None` when there are none.
    /// They are never sent to Graph (see [`crate::graph::ResumeBody`]).
    pub fn reasons_for_log(&self) -> Option<String> {
        if self.status_reasons.is_empty() {
            return None;
        }
        let mut kept: Vec<String> = self
            .status_reasons
            .iter()
            .take(MAX_LOGGED_REASONS)
            .map(|r| match r.char_indices().nth(MAX_LOGGED_REASON_CHARS) {
                Some((cut, _)) => format!("{}…", &r[..cut]),
                None => r.clone(),
            })
            .collect();
        let left_out = self.status_reasons.len().saturating_sub(MAX_LOGGED_REASONS);
        if left_out > 0 {
            kept.push(format!("(and {left_out} more)"));
        }
        serde_json::to_string(&kept).ok()
    }

    /// Parses and validates a request body.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        match fast::parse(body) {
            Some(request) => Ok(request),
            None => Self::parse_any(body),
        }
    }

    /// The complete parser: any body, every refusal explained. [`Self::parse`] only comes
    /// here when the fast path declines.
    fn parse_any(body: &[u8]) -> Result<Self, RequestError> {
        let object = pruned::object_from_slice(body, REQUEST, &Shape::Scalar)
            .map_err(|e| RequestError::Malformed(without_position(&e)))?;
        if let Some(unknown) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            if is_raw_callout(&object) {
                return Err(RequestError::field(
                    "data",
                    "is not a field of a resume request: this body is a Lifecycle Workflows callout itself; wrap it as {\"operationStatus\":\"completed\" or \"failed\",\"callout\":<the trigger body>}",
                ));
            }
            return Err(RequestError::field(
                unknown,
                format!(
                    "is not a field of a resume request; the fields are {}",
                    FIELDS.join(", ")
                ),
            ));
        }
        let get = |name: &str| object.get(name).filter(|v| !v.is_null());

        let status = match get("operationStatus") {
            None => {
                return Err(RequestError::field(
                    "operationStatus",
                    "is required: \"completed\" or \"failed\"",
                ));
            }
            Some(Value::String(s)) => OperationStatus::parse(s).ok_or_else(|| {
                RequestError::field(
                    "operationStatus",
                    format!(
                        "must be \"completed\" or \"failed\" (any case), not {}",
                        echo::quoted(s)
                    ),
                )
            })?,
            Some(other) => {
                return Err(RequestError::field(
                    "operationStatus",
                    format!(
                        "must be the string \"completed\" or \"failed\", not {}",
                        kind(other)
                    ),
                ));
            }
        };

        let status_reasons = match get("statusReasons") {
            None => Vec::new(),
            Some(Value::Array(items)) => reasons(items)?,
            Some(other) => {
                return Err(RequestError::field(
                    "statusReasons",
                    format!("must be an array of strings, not {}", kind(other)),
                ));
            }
        };

        let source = get("source")
            .map(|v| match v {
                Value::String(s) if source_ok(s) => Ok(s.clone()),
                _ => Err(RequestError::field(
                    "source",
                    format!(
                        "must be a non-empty string of at most {MAX_SOURCE_CHARS} printable characters"
                    ),
                )),
            })
            .transpose()?;

        match get("type") {
            None => {}
            Some(Value::String(s)) if type_ok(s) => {}
            Some(_) => {
                return Err(RequestError::field(
                    "type",
                    "must be \"lifecycleEvent\" (or left out)",
                ));
            }
        }

        let target = target(&get)?;
        Ok(Self {
            target,
            status,
            status_reasons,
            source,
        })
    }
}

/// The callout as Lifecycle Workflows sends it (`data.callbackUriPath`), posted without the
/// resume request around it: a common first try, which deserves more than "unknown field".
fn is_raw_callout(object: &Map<String, Value>) -> bool {
    object
        .get("data")
        .and_then(Value::as_object)
        .is_some_and(|data| data.contains_key("callbackUriPath"))
}

fn target<'a>(get: &impl Fn(&str) -> Option<&'a Value>) -> Result<ResumeTarget, RequestError> {
    let callout = get("callout");
    let path = get("callbackUriPath");
    let ids = ["workflowId", "taskId", "taskProcessingResultId"].map(get);
    let given: Vec<&str> = [
        callout.map(|_| "callout"),
        path.map(|_| "callbackUriPath"),
        ids.iter().any(Option::is_some).then_some("explicit ids"),
    ]
    .into_iter()
    .flatten()
    .collect();
    match given.as_slice() {
        [] => Err(RequestError::field(
            "callout",
            format!("is missing, and so is every other target: give exactly one of {TARGETS}"),
        )),
        [_] => {
            if let Some(callout) = callout {
                from_callout(callout)
            } else if let Some(path) = path {
                from_path("callbackUriPath", path)
            } else {
                let [w, t, r] = ids;
                if let Some(missing) = ["workflowId", "taskId", "taskProcessingResultId"]
                    .into_iter()
                    .zip(ids)
                    .find_map(|(name, v)| v.is_none().then_some(name))
                {
                    return Err(RequestError::field(
                        missing,
                        format!(
                            "is missing: explicit ids need all three; the targets are {TARGETS}"
                        ),
                    ));
                }
                Ok(ResumeTarget::from_ids(
                    guid("workflowId", w)?,
                    guid("taskId", t)?,
                    guid("taskProcessingResultId", r)?,
                ))
            }
        }
        _ => Err(RequestError::field(
            given[1],
            format!(
                "cannot be combined with {}: give exactly one target: {TARGETS}",
                given[0]
            ),
        )),
    }
}

/// What the complete parser reads of a request: the top-level fields (scalars; the first
/// reasons beyond the limit only to count past it) and, of the callout, only `data`'s
/// `callbackUriPath` and ids. Everything else, the subject's personal data included, is
/// skipped unread and never built ([`pruned`]).
const REQUEST: &[(&str, Shape)] = &[
    ("statusReasons", Shape::Items(MAX_REASONS + 1)),
    ("callout", Shape::Object(CALLOUT, &Shape::Kind)),
    // Only to tell a raw callout posted as the request that it is one (`is_raw_callout`).
    (
        "data",
        Shape::Object(&[("callbackUriPath", Shape::Kind)], &Shape::Kind),
    ),
];
const CALLOUT: &[(&str, Shape)] = &[("data", Shape::Object(CALLOUT_DATA, &Shape::Kind))];
const CALLOUT_DATA: &[(&str, Shape)] = &[
    ("callbackUriPath", Shape::Scalar),
    ("workflow", Shape::Object(ID, &Shape::Kind)),
    ("task", Shape::Object(ID, &Shape::Kind)),
    ("taskProcessingResult", Shape::Object(ID, &Shape::Kind)),
    ("taskProcessingresult", Shape::Object(ID, &Shape::Kind)),
];
const ID: &[(&str, Shape)] = &[("id", Shape::Scalar)];

fn from_callout(value: &Value) -> Result<ResumeTarget, RequestError> {
    // Logic Apps' `@{triggerBody()}` interpolation hands over the callout as a JSON string.
    let parsed;
    let callout = match value {
        Value::Object(_) => value,
        Value::String(text) => {
            parsed = pruned::from_str(text, Shape::Object(CALLOUT, &Shape::Kind)).map_err(|e| {
                RequestError::field(
                    "callout",
                    format!(
                        "is a string that is not JSON ({}); pass the callout object, e.g. @triggerBody()",
                        without_position(&e)
                    ),
                )
            })?;
            &parsed
        }
        other => {
            return Err(RequestError::field(
                "callout",
                format!(
                    "must be the Lifecycle Workflows callout object, not {}",
                    kind(other)
                ),
            ));
        }
    };
    let Some(data) = callout.get("data").and_then(Value::as_object) else {
        return Err(RequestError::field(
            "callout.data",
            "is missing: pass the whole callout the Logic App trigger received (@triggerBody())",
        ));
    };
    let id_of = |name: &str| {
        data.get(name)
            .and_then(|o| o.get("id"))
            .filter(|v| !v.is_null())
    };
    let mut given = [None; 4];
    for (slot, (holder, field)) in given.iter_mut().zip(CALLOUT_IDS) {
        *slot = match id_of(holder) {
            None => None,
            Some(Value::String(id)) => Some(id.as_str()),
            Some(other) => {
                return Err(RequestError::field(
                    field,
                    format!("must be a GUID string, not {}", kind(other)),
                ));
            }
        };
    }
    match data.get("callbackUriPath").filter(|v| !v.is_null()) {
        Some(path) => consistent(from_path("callout.data.callbackUriPath", path)?, given),
        None => from_callout_ids(given),
    }
}

/// Where a callout carries ids: `data.{holder}.id`, and the field named when one is wrong.
/// Graph's metadata spells the result's navigation `taskProcessingresult`
/// (`customTaskExtensionCalloutData`), the Lifecycle Workflows docs `taskProcessingResult`:
/// either may arrive.
const CALLOUT_IDS: [(&str, &str); 4] = [
    ("workflow", "callout.data.workflow.id"),
    ("task", "callout.data.task.id"),
    (
        "taskProcessingResult",
        "callout.data.taskProcessingResult.id",
    ),
    (
        "taskProcessingresult",
        "callout.data.taskProcessingresult.id",
    ),
];

/// Every id a callout carries must be a GUID, whether or not the path lets it be compared: a
/// malformed one means a mangled callout, and nothing is sent for it.
fn well_formed(given: &[Option<&str>; 4]) -> Result<(), RequestError> {
    for (id, (_, field)) in given.iter().zip(CALLOUT_IDS) {
        if let Some(id) = id.filter(|id| !Guid::is_well_formed(id)) {
            return Err(RequestError::field(
                field,
                format!(
                    "must be a GUID like 00000000-0000-0000-0000-000000000000, not {}; pass the callout unchanged",
                    echo::quoted(id)
                ),
            ));
        }
    }
    Ok(())
}

/// A callout without `callbackUriPath`: the target Lifecycle Workflows documents from its
/// workflow, task and result ids (either spelling of the result; both, if given, must agree).
fn from_callout_ids(given: [Option<&str>; 4]) -> Result<ResumeTarget, RequestError> {
    well_formed(&given)?;
    let [workflow, task, result, result_lower] = given;
    if let (Some(a), Some(b)) = (result, result_lower)
        && !a.eq_ignore_ascii_case(b)
    {
        return Err(RequestError::field(
            CALLOUT_IDS[3].1,
            format!(
                "is {} but {} is {}; the callout is inconsistent, pass it unchanged",
                b.to_ascii_lowercase(),
                CALLOUT_IDS[2].1,
                a.to_ascii_lowercase()
            ),
        ));
    }
    let required = |id: Option<&str>, field: &str| {
        id.and_then(Guid::parse)
            .ok_or_else(|| RequestError::field(field, "is required (a GUID)"))
    };
    Ok(ResumeTarget::from_ids(
        required(workflow, CALLOUT_IDS[0].1)?,
        required(task, CALLOUT_IDS[1].1)?,
        required(result.or(result_lower), CALLOUT_IDS[2].1)?,
    ))
}

/// The ids travel twice in a callout; disagreement means a mangled or forged callout.
/// `given` are the ids of `callout.data` in [`CALLOUT_IDS`] order, where they are strings.
/// The workflow and result ids are in every resume path; the task id only in the
/// `tasks/{id}` and `versions/{n}/tasks/{id}` shapes (a `runs`, `userProcessingResults` or
/// `taskReports` path names another object there), so elsewhere it is checked as a GUID only.
fn consistent(
    target: ResumeTarget,
    given: [Option<&str>; 4],
) -> Result<ResumeTarget, RequestError> {
    well_formed(&given)?;
    let expected = [
        Some(&target.workflow_id),
        target.task_id.as_ref(),
        Some(&target.result_id),
        Some(&target.result_id),
    ];
    for ((given, expected), (_, field)) in given.into_iter().zip(expected).zip(CALLOUT_IDS) {
        // Compared in place: this runs for every callout, and a GUID needs no copy to compare.
        if let (Some(given), Some(expected)) = (given, expected)
            && !given.eq_ignore_ascii_case(expected.as_str())
        {
            return Err(RequestError::field(
                field,
                format!(
                    "is {} but callbackUriPath names {expected}; the callout is inconsistent, pass it unchanged",
                    given.to_ascii_lowercase()
                ),
            ));
        }
    }
    Ok(target)
}

fn source_ok(s: &str) -> bool {
    !s.trim().is_empty()
        && s.chars().count() <= MAX_SOURCE_CHARS
        && !s.chars().any(char::is_control)
}

fn type_ok(s: &str) -> bool {
    s.eq_ignore_ascii_case("lifecycleEvent")
}

fn reason_ok(s: &str) -> bool {
    s.chars().count() <= MAX_REASON_CHARS
}

fn from_path(field: &str, value: &Value) -> Result<ResumeTarget, RequestError> {
    let Value::String(path) = value else {
        return Err(RequestError::field(
            field,
            format!("must be a string, not {}", kind(value)),
        ));
    };
    ResumeTarget::parse(path).map_err(|e| RequestError::CallbackPathRefused {
        field: field.to_owned(),
        detail: e.0,
    })
}

fn guid(field: &str, value: Option<&Value>) -> Result<Guid, RequestError> {
    match value {
        None => Err(RequestError::field(field, "is required (a GUID)")),
        Some(Value::String(s)) => Guid::parse(s).ok_or_else(|| {
            RequestError::field(
                field,
                format!(
                    "must be a GUID like 00000000-0000-0000-0000-000000000000, not {}",
                    echo::quoted(s)
                ),
            )
        }),
        Some(other) => Err(RequestError::field(
            field,
            format!("must be a GUID string, not {}", kind(other)),
        )),
    }
}

fn reasons(items: &[Value]) -> Result<Vec<String>, RequestError> {
    if items.len() > MAX_REASONS {
        return Err(RequestError::field(
            "statusReasons",
            // Reasons past the limit are not read (`REQUEST`), so their number is not known.
            format!("has more than {MAX_REASONS} entries; at most {MAX_REASONS} are accepted"),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) if reason_ok(s) => Ok(s.clone()),
            Value::String(_) => Err(RequestError::field(
                &format!("statusReasons[{i}]"),
                format!("is longer than {MAX_REASON_CHARS} characters"),
            )),
            other => Err(RequestError::field(
                &format!("statusReasons[{i}]"),
                format!("must be a string, not {}", kind(other)),
            )),
        })
        .collect()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// serde_json's message without "at line 1 column 5", which means little to a Logic App author.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// The common, valid request, parsed without building a JSON tree: borrowed strings, and the
/// callout's other contents (the subject's personal data among them) skipped unread. Under
/// load, the tree was the largest part of the gateway's own work (`valgrind --tool=callgrind`).
///
/// It accepts a subset of what [`ResumeRequest::parse_any`] accepts, with the same result; on
/// anything else (an escaped string, a wrong type, an invalid value) it declines, and the
/// complete parser decides and explains. A property test holds the two to that.
mod fast {
    use serde::Deserialize;

    use super::{
        MAX_REASONS, OperationStatus, ResumeRequest, consistent, from_callout_ids, reason_ok,
        source_ok, type_ok,
    };
    use crate::request::ids::Guid;
    use crate::request::path::ResumeTarget;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Body<'a> {
        #[serde(borrow)]
        operation_status: Option<&'a str>,
        #[serde(borrow)]
        status_reasons: Option<Vec<&'a str>>,
        source: Option<&'a str>,
        #[serde(rename = "type")]
        kind: Option<&'a str>,
        #[serde(borrow)]
        callout: Option<Callout<'a>>,
        callback_uri_path: Option<&'a str>,
        workflow_id: Option<&'a str>,
        task_id: Option<&'a str>,
        task_processing_result_id: Option<&'a str>,
    }

    /// Unknown fields are skipped: the callout carries much the gateway never reads.
    #[derive(Deserialize)]
    struct Callout<'a> {
        #[serde(borrow)]
        data: Option<Data<'a>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Data<'a> {
        callback_uri_path: Option<&'a str>,
        #[serde(borrow)]
        workflow: Option<Id<'a>>,
        #[serde(borrow)]
        task: Option<Id<'a>>,
        #[serde(borrow)]
        task_processing_result: Option<Id<'a>>,
        /// The metadata's spelling (`customTaskExtensionCalloutData`).
        #[serde(borrow, rename = "taskProcessingresult")]
        task_processing_result_lower: Option<Id<'a>>,
    }

    #[derive(Deserialize)]
    struct Id<'a> {
        id: Option<&'a str>,
    }

    /// More nesting than the complete parser allows (serde_json's limit is 128) is left to it;
    /// skipping unread values has no such limit. Counting every bracket over-counts, safely.
    const MAX_BRACKETS: usize = 64;

    pub(super) fn parse(body: &[u8]) -> Option<ResumeRequest> {
        // `b | 0x20` is `{` exactly for `{` and `[`; written so, the count vectorizes.
        let brackets: usize = body.iter().map(|b| usize::from(b | 0x20 == b'{')).sum();
        if brackets > MAX_BRACKETS {
            return None;
        }
        // Checked whole, as the complete parser does: skipped strings are not checked otherwise.
        let text = std::str::from_utf8(body).ok()?;
        let b: Body<'_> = serde_json::from_str(text).ok()?;
        let status = OperationStatus::parse(b.operation_status?)?;
        let status_reasons = match b.status_reasons {
            None => Vec::new(),
            Some(r) if r.len() <= MAX_REASONS && r.iter().all(|s| reason_ok(s)) => {
                r.into_iter().map(str::to_owned).collect()
            }
            Some(_) => return None,
        };
        let source = match b.source {
            None => None,
            Some(s) if source_ok(s) => Some(s.to_owned()),
            Some(_) => return None,
        };
        if b.kind.is_some_and(|t| !type_ok(t)) {
            return None;
        }
        let ids = [b.workflow_id, b.task_id, b.task_processing_result_id];
        let target = match (b.callout, b.callback_uri_path, ids) {
            (Some(callout), None, [None, None, None]) => {
                let data = callout.data?;
                let given = [
                    data.workflow,
                    data.task,
                    data.task_processing_result,
                    data.task_processing_result_lower,
                ]
                .map(|holder| holder.and_then(|h| h.id));
                match data.callback_uri_path {
                    Some(path) => consistent(ResumeTarget::parse(path).ok()?, given).ok()?,
                    None => from_callout_ids(given).ok()?,
                }
            }
            (None, Some(path), [None, None, None]) => ResumeTarget::parse(path).ok()?,
            (None, None, [Some(w), Some(t), Some(r)]) => {
                ResumeTarget::from_ids(Guid::parse(w)?, Guid::parse(t)?, Guid::parse(r)?)
            }
            _ => return None,
        };
        Some(ResumeRequest {
            target,
            status,
            status_reasons,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const W: &str = "156bd1a0-5d7c-4b38-a8c9-1d0f7c2a9e11";
    const T: &str = "2a9e1156-bd1a-4d7c-8b38-a8c91d0f7c2a";
    const R: &str = "7c2a9e11-56bd-41a0-9d7c-4b38a8c91d0f";

    fn path() -> String {
        format!(
            "/identityGovernance/lifecycleWorkflows/workflows/{W}/tasks/{T}/taskProcessingResults/{R}/resume"
        )
    }

    fn callout() -> Value {
        json!({
            "source": "sample", "type": "lifecycleEvent",
            "data": {
                "@odata.type": "#microsoft.graph.identityGovernance.customTaskExtensionCalloutData",
                "callbackUriPath": path(),
                "subject": {"id": "e1f2", "displayName": "Ada", "userPrincipalName": "ada@contoso.com"},
                "task": {"id": T, "displayName": "Provision"},
                "taskProcessingResult": {"id": R, "createdDateTime": "2026-11-28T10:00:00Z"},
                "workflow": {"id": W, "displayName": "Onboarding", "workflowVersion": 1}
            }
        })
    }

    fn parse(v: Value) -> Result<ResumeRequest, RequestError> {
        ResumeRequest::parse(v.to_string().as_bytes())
    }

    fn field_of(v: Value) -> String {
        parse(v).unwrap_err().field_name().unwrap().to_owned()
    }

    #[test]
    fn three_target_forms_agree() {
        let a = parse(json!({"operationStatus": "Completed", "callout": callout()})).unwrap();
        let b = parse(json!({"operationStatus": "completed", "callbackUriPath": path()})).unwrap();
        let c = parse(json!({"operationStatus": "COMPLETED", "workflowId": W, "taskId": T, "taskProcessingResultId": R})).unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a.status, OperationStatus::Completed);
        assert_eq!(a.target.path, path());
    }

    #[test]
    fn callout_may_be_a_json_string_and_ids_any_case() {
        let text = callout()
            .to_string()
            .replace(R, &R.to_uppercase())
            .replace(W, &W.to_uppercase());
        let r = parse(json!({"operationStatus": "failed", "callout": text})).unwrap();
        assert_eq!(r.status, OperationStatus::Failed);
        assert_eq!(r.target.result_id.as_str(), R);
        assert_eq!(r.target.path, path());
    }

    #[test]
    fn callout_without_path_uses_its_ids() {
        let mut c = callout();
        c["data"].as_object_mut().unwrap().remove("callbackUriPath");
        let r = parse(json!({"operationStatus": "completed", "callout": c})).unwrap();
        assert_eq!(r.target.path, path());
    }

    #[test]
    fn inconsistent_callout_is_refused() {
        let mut c = callout();
        c["data"]["taskProcessingResult"]["id"] = json!(W.to_uppercase());
        let e = parse(json!({"operationStatus": "completed", "callout": c})).unwrap_err();
        assert_eq!(e.field_name(), Some("callout.data.taskProcessingResult.id"));
        assert_eq!(
            e.to_string(),
            format!(
                "`callout.data.taskProcessingResult.id` is {W} but callbackUriPath names {R}; the callout is inconsistent, pass it unchanged"
            )
        );
        // The same id in another case is the same id.
        let mut c = callout();
        c["data"]["taskProcessingResult"]["id"] = json!(R.to_uppercase());
        assert!(parse(json!({"operationStatus": "completed", "callout": c})).is_ok());
    }

    #[test]
    fn callout_ids_must_be_guids_whatever_the_path_shape() {
        let run_path = format!(
            "/identityGovernance/lifecycleWorkflows/workflows/{W}/runs/{T}/taskProcessingResults/{R}/resume"
        );
        for (holder, bad) in [
            ("workflow", json!("not-a-guid")),
            ("task", json!("1234")),
            ("taskProcessingResult", json!(7)),
            ("taskProcessingresult", json!(format!("{{{R}}}"))),
        ] {
            let field = format!("callout.data.{holder}.id");
            for path in [Some(path()), Some(run_path.clone()), None] {
                let mut c = callout();
                c["data"][holder] = json!({"id": bad});
                match &path {
                    Some(p) => c["data"]["callbackUriPath"] = json!(p),
                    None => {
                        c["data"].as_object_mut().unwrap().remove("callbackUriPath");
                    }
                }
                let body = json!({"operationStatus": "completed", "callout": c});
                let e = parse(body.clone()).unwrap_err();
                assert_eq!(e.field_name(), Some(field.as_str()), "{path:?}: {e}");
                assert!(e.to_string().contains("GUID"), "{e}");
                assert!(fast::parse(body.to_string().as_bytes()).is_none());
            }
        }
        // The metadata's spelling is read, compared, and used when it is the only one.
        let mut c = callout();
        c["data"]["taskProcessingresult"] = json!({"id": W});
        assert_eq!(
            field_of(json!({"operationStatus": "completed", "callout": c})),
            "callout.data.taskProcessingresult.id"
        );
        let mut c = callout();
        let data = c["data"].as_object_mut().unwrap();
        data.remove("callbackUriPath");
        let result = data.remove("taskProcessingResult").unwrap();
        data.insert("taskProcessingresult".into(), result);
        let r = parse(json!({"operationStatus": "completed", "callout": c})).unwrap();
        assert_eq!(r.target.path, path());
    }

    #[test]
    fn optional_fields_pass_through() {
        let r = parse(
            json!({"operationStatus": "failed", "callbackUriPath": path(),
            "statusReasons": ["HR system down"], "source": "contoso-hr", "type": "lifecycleEvent"}),
        )
        .unwrap();
        assert_eq!(r.status_reasons, vec!["HR system down"]);
        assert_eq!(r.source.as_deref(), Some("contoso-hr"));
        let r = parse(
            json!({"operationStatus": "failed", "callbackUriPath": path(),
            "statusReasons": null, "source": null}),
        )
        .unwrap();
        assert!(r.status_reasons.is_empty());
        assert!(r.source.is_none());
    }

    #[test]
    fn reasons_are_logged_bounded() {
        let mut r = parse(json!({"operationStatus": "failed", "callbackUriPath": path()})).unwrap();
        assert_eq!(r.reasons_for_log(), None);
        r.status_reasons = vec!["é".repeat(1024); 16];
        let logged: Vec<String> = serde_json::from_str(&r.reasons_for_log().unwrap()).unwrap();
        assert_eq!(logged.len(), MAX_LOGGED_REASONS + 1);
        assert_eq!(
            logged[0],
            format!("{}…", "é".repeat(MAX_LOGGED_REASON_CHARS))
        );
        assert_eq!(logged[MAX_LOGGED_REASONS], "(and 12 more)");
        r.status_reasons = vec!["HR system down".into()];
        assert_eq!(
            r.reasons_for_log().as_deref(),
            Some(r#"["HR system down"]"#)
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let p = path();
        let cases: Vec<(Value, &str)> = vec![
            (json!({"callbackUriPath": p}), "operationStatus"),
            (
                json!({"operationStatus": "done", "callbackUriPath": p}),
                "operationStatus",
            ),
            (
                json!({"operationStatus": "unknownFutureValue", "callbackUriPath": p}),
                "operationStatus",
            ),
            (
                json!({"operationStatus": 1, "callbackUriPath": p}),
                "operationStatus",
            ),
            (json!({"operationStatus": "completed"}), "callout"),
            (
                json!({"operationStatus": "completed", "callbackUriPath": p, "callout": callout()}),
                "callbackUriPath",
            ),
            (
                json!({"operationStatus": "completed", "callbackUriPath": p, "taskId": T}),
                "explicit ids",
            ),
            (
                json!({"operationStatus": "completed", "workflowId": W, "taskId": T}),
                "taskProcessingResultId",
            ),
            (
                json!({"operationStatus": "completed", "workflowId": W, "taskId": "x", "taskProcessingResultId": R}),
                "taskId",
            ),
            (
                json!({"operationStatus": "completed", "callbackUriPath": 5}),
                "callbackUriPath",
            ),
            (
                json!({"operationStatus": "completed", "callbackUriPath": "/users"}),
                "callbackUriPath",
            ),
            (
                json!({"operationStatus": "completed", "callout": {"source": "x"}}),
                "callout.data",
            ),
            (
                json!({"operationStatus": "completed", "callout": "{not json"}),
                "callout",
            ),
            (
                json!({"operationStatus": "completed", "callout": 3}),
                "callout",
            ),
            (
                json!({"operationStatus": "completed", "callout": {"data": {"task": {"id": T}}}}),
                "callout.data.workflow.id",
            ),
            (
                json!({"operationStatus": "completed", "callbackUriPath": p, "statusReasons": "x"}),
                "statusReasons",
            ),
            (
                json!({"operationStatus": "completed", "callbackUriPath": p, "statusReasons": [1]}),
                "statusReasons[0]",
            ),
            (
                json!({"operationStatus": "completed", "callbackUriPath": p, "statusReasons": vec!["a"; 17]}),
                "statusReasons",
            ),
            (
                json!({"operationStatus": "completed", "callbackUriPath": p, "statusReasons": ["x".repeat(1025)]}),
                "statusReasons[0]",
            ),
            (
                json!({"operationStatus": "completed", "callbackUriPath": p, "source": ""}),
                "source",
            ),
            (
                json!({"operationStatus": "completed", "callbackUriPath": p, "source": "a\nb"}),
                "source",
            ),
            (
                json!({"operationStatus": "completed", "callbackUriPath": p, "type": "other"}),
                "type",
            ),
            (
                json!({"operationStatus": "completed", "callbackUriPath": p, "operationstatus": "x"}),
                "operationstatus",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(body.clone()), field, "{body}");
        }
    }

    #[test]
    fn a_raw_callout_is_told_to_wrap_itself() {
        let RequestError::InvalidField { field, detail } = parse(callout()).unwrap_err() else {
            panic!("not a field error");
        };
        assert_eq!(field, "data");
        assert!(
            detail.contains(
                r#"{"operationStatus":"completed" or "failed","callout":<the trigger body>}"#
            ),
            "{detail}"
        );
        // Another unknown `data` is only an unknown field.
        let e =
            parse(json!({"operationStatus": "completed", "callbackUriPath": path(), "data": {}}))
                .unwrap_err();
        assert!(!e.to_string().contains("wrap"), "{e}");
    }

    #[test]
    fn a_missing_target_names_all_three_forms() {
        for body in [
            json!({"operationStatus": "completed"}),
            json!({"operationStatus": "completed", "workflowId": W, "taskProcessingResultId": R}),
        ] {
            let e = parse(body.clone()).unwrap_err().to_string();
            for form in [
                "`callout`",
                "`callbackUriPath`",
                "`workflowId` + `taskId` + `taskProcessingResultId`",
            ] {
                assert!(e.contains(form), "{body}: {e}");
            }
        }
    }

    #[test]
    fn path_refusals_are_their_own_kind() {
        let e = parse(json!({"operationStatus": "completed", "callbackUriPath": "/users/x"}))
            .unwrap_err();
        assert!(matches!(e, RequestError::CallbackPathRefused { .. }));
    }

    #[test]
    fn malformed_bodies() {
        for body in [&b"not json"[..], b"[]", b"\"x\"", b"", b"{\"a\":"] {
            assert!(matches!(
                ResumeRequest::parse(body),
                Err(RequestError::Malformed(_))
            ));
        }
        let deep = "[".repeat(10_000);
        assert!(ResumeRequest::parse(format!("{{\"callout\":{deep}").as_bytes()).is_err());
    }

    #[test]
    fn the_fast_path_takes_the_common_requests() {
        let sample = include_bytes!("../../samples/resume-callout.json");
        for body in [
            sample.to_vec(),
            json!({"operationStatus": "Completed", "callout": callout(), "source": "la", "type": "lifecycleEvent"}).to_string().into_bytes(),
            json!({"operationStatus": "failed", "callbackUriPath": path(), "statusReasons": ["a", "b"]}).to_string().into_bytes(),
            json!({"operationStatus": "completed", "workflowId": W, "taskId": T, "taskProcessingResultId": R}).to_string().into_bytes(),
        ] {
            let fast = fast::parse(&body).expect("the fast path takes it");
            assert_eq!(Ok(fast), ResumeRequest::parse_any(&body));
        }
        // Declined, and left to the complete parser: escapes, a callout as a string, deep nesting.
        let escaped = json!({"operationStatus": "completed", "callbackUriPath": path(), "source": "a \"quoted\" source"});
        let as_string = json!({"operationStatus": "completed", "callout": callout().to_string()});
        let mut deep = callout();
        deep["data"]["subject"] =
            serde_json::from_str(&format!("{}{}", "[".repeat(100), "]".repeat(100))).unwrap();
        let deep = json!({"operationStatus": "completed", "callout": deep});
        for body in [escaped, as_string, deep] {
            let bytes = body.to_string().into_bytes();
            assert!(fast::parse(&bytes).is_none(), "{body}");
            assert!(ResumeRequest::parse(&bytes).is_ok(), "{body}");
        }
    }

    #[test]
    fn the_fast_path_leaves_deep_objects_to_the_complete_parser() {
        let mut deep = callout();
        deep["data"]["subject"] =
            serde_json::from_str(&format!("{}0{}", "{\"a\":".repeat(100), "}".repeat(100)))
                .unwrap();
        let bytes = json!({"operationStatus": "completed", "callout": deep})
            .to_string()
            .into_bytes();
        assert!(fast::parse(&bytes).is_none());
        assert!(ResumeRequest::parse(&bytes).is_ok());
    }

    mod fast_path_agrees {
        use super::*;
        use proptest::prelude::*;

        fn text() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(json!(W)),
                Just(json!(W.to_uppercase())),
                Just(json!(R)),
                Just(json!(path())),
                Just(json!(path().replace("/resume", "/other"))),
                Just(json!("completed")),
                Just(json!("FAILED")),
                Just(json!("lifecycleEvent")),
                Just(json!("")),
                Just(json!("   ")),
                Just(json!("a \"quoted\" one")),
                Just(json!("tab\there")),
                Just(json!("x".repeat(300))),
                Just(json!("é".repeat(300))),
                Just(json!("x".repeat(1100))),
                Just(json!(7)),
                Just(json!(true)),
                Just(Value::Null),
                Just(json!([])),
                Just(json!({})),
                Just(json!(ESCAPE)),
                Just(json!(format!("a{ESCAPE}b{ESCAPE}"))),
            ]
        }

        /// Stands in the generated body for a raw escape sequence from [`escape`], written into
        /// the JSON text after serialization (serde_json would never write most of them).
        const ESCAPE: &str = "ESCAPE-HERE";

        fn escape() -> impl Strategy<Value = &'static str> {
            prop_oneof![
                Just(r"\udfff"),
                Just(r"\ud800"),
                Just(r"\ud800\u0041"),
                Just(r"\ud83d\ude00"),
                Just(r"\u00e9"),
                Just(r"\u0000"),
                Just(r"\/"),
                Just(r"\\"),
                Just(r#"\""#),
                Just(r"\n\t\r\b\f"),
                Just(r"\x"),
                Just(r"\u12"),
                Just(r"\uZZZZ"),
            ]
        }

        /// Mostly `good`, sometimes anything: the fast path must be taken often to be tested.
        fn mostly(good: Value) -> impl Strategy<Value = Value> {
            prop_oneof![4 => Just(good), 1 => text()]
        }

        fn holder(id: &'static str) -> impl Strategy<Value = Option<Value>> {
            prop_oneof![
                1 => Just(None),
                4 => mostly(json!(id)).prop_map(|id| Some(json!({"id": id, "displayName": "x"}))),
                1 => text().prop_map(Some),
            ]
        }

        fn data() -> impl Strategy<Value = Value> {
            (
                prop_oneof![3 => mostly(json!(path())).prop_map(Some), 1 => Just(None)],
                holder(W),
                holder(T),
                holder(R),
                prop_oneof![2 => Just(None), 1 => holder(R)],
                any::<bool>(),
            )
                .prop_map(|(path, w, t, r, r_lower, subject)| {
                    let mut d = serde_json::Map::new();
                    for (k, v) in [
                        ("callbackUriPath", path),
                        ("workflow", w),
                        ("task", t),
                        ("taskProcessingResult", r),
                        ("taskProcessingresult", r_lower),
                    ] {
                        if let Some(v) = v {
                            d.insert(k.into(), v);
                        }
                    }
                    if subject {
                        d.insert(
                            "subject".into(),
                            json!({"id": "x", "displayName": format!("Ada {ESCAPE}"), "manager": {"id": "y"}}),
                        );
                    }
                    Value::Object(d)
                })
        }

        fn callout_value() -> impl Strategy<Value = Value> {
            prop_oneof![
                6 => data().prop_map(|d| json!({"source": "s", "type": "lifecycleEvent", "data": d})),
                1 => data().prop_map(|d| Value::String(json!({"data": d}).to_string())),
                1 => Just(json!({"type": "lifecycleEvent"})),
                1 => text(),
            ]
        }

        fn body() -> impl Strategy<Value = Value> {
            let status =
                prop_oneof![Just(json!("completed")), Just(json!("Failed"))].prop_flat_map(mostly);
            let reasons = prop_oneof![
                4 => proptest::collection::vec(mostly(json!("reason")), 0..20).prop_map(Value::Array),
                1 => text(),
            ];
            (
                proptest::option::weighted(0.9, status),
                proptest::option::of(reasons),
                proptest::option::of(mostly(json!("a Logic App"))),
                proptest::option::of(mostly(json!("lifecycleEvent"))),
                proptest::option::weighted(0.5, callout_value()),
                proptest::option::weighted(0.3, mostly(json!(path()))),
                proptest::option::weighted(
                    0.3,
                    (mostly(json!(W)), mostly(json!(T)), mostly(json!(R))),
                ),
                proptest::bool::weighted(0.1),
            )
                .prop_map(
                    |(status, reasons, source, kind, callout, path, ids, extra)| {
                        let mut b = serde_json::Map::new();
                        let fields = [
                            ("operationStatus", status),
                            ("statusReasons", reasons),
                            ("source", source),
                            ("type", kind),
                            ("callout", callout),
                            ("callbackUriPath", path),
                        ];
                        for (k, v) in fields {
                            if let Some(v) = v {
                                b.insert(k.into(), v);
                            }
                        }
                        if let Some((w, t, r)) = ids {
                            b.insert("workflowId".into(), w);
                            b.insert("taskId".into(), t);
                            b.insert("taskProcessingResultId".into(), r);
                        }
                        if extra {
                            b.insert("unexpected".into(), json!(1));
                        }
                        Value::Object(b)
                    },
                )
        }

        /// Whatever the fast path accepts, the complete parser accepts alike; and the fast path
        /// is taken often enough for that to mean something.
        #[test]
        fn whatever_the_fast_path_accepts_the_complete_parser_accepts_alike() {
            use proptest::test_runner::{Config, TestRunner};
            let cases = 4000;
            let taken = std::cell::Cell::new(0u32);
            let mut runner = TestRunner::new(Config::with_cases(cases));
            runner
                .run(&(body(), escape()), |(body, escape)| {
                    let bytes = body.to_string().replace(ESCAPE, escape).into_bytes();
                    if let Some(fast) = fast::parse(&bytes) {
                        taken.set(taken.get() + 1);
                        prop_assert_eq!(Ok(fast), ResumeRequest::parse_any(&bytes));
                    }
                    Ok(())
                })
                .unwrap();
            assert!(
                taken.get() > cases / 20,
                "fast path taken {} times",
                taken.get()
            );
        }
    }

    #[test]
    fn the_complete_parser_keeps_reasons_source_and_type_within_their_limits() {
        // Escaped quotes send these bodies to the complete parser.
        let reasons: Vec<String> = (0..MAX_REASONS)
            .map(|i| format!("step {i} said \"no\""))
            .collect();
        let body = |reasons: &[String]| {
            json!({"operationStatus": "failed", "callbackUriPath": path(),
            "statusReasons": reasons, "source": "hr \"sync\"", "type": "lifecycleEvent"})
        };
        let r = parse(body(&reasons)).unwrap();
        assert_eq!(r.status_reasons, reasons);
        assert_eq!(r.source.as_deref(), Some("hr \"sync\""));
        let mut one_more = reasons.clone();
        one_more.push("and \"this\"".into());
        assert_eq!(field_of(body(&one_more)), "statusReasons");
    }

    #[test]
    fn a_source_needs_text_and_at_most_256_characters() {
        let with_source = |s: &str| json!({"operationStatus": "completed", "callbackUriPath": path(), "source": s});
        for bad in ["   ".to_owned(), "é".repeat(MAX_SOURCE_CHARS + 1)] {
            assert_eq!(field_of(with_source(&bad)), "source", "{bad}");
        }
        let longest = "é".repeat(MAX_SOURCE_CHARS);
        assert_eq!(parse(with_source(&longest)).unwrap().source, Some(longest));
    }

    #[test]
    fn refusals_name_the_json_type_that_was_sent() {
        let p = path();
        let cases = [
            (
                json!({"operationStatus": 1, "callbackUriPath": p}),
                "not a number",
            ),
            (
                json!({"operationStatus": true, "callbackUriPath": p}),
                "not a boolean",
            ),
            (
                json!({"operationStatus": [], "callbackUriPath": p}),
                "not an array",
            ),
            (
                json!({"operationStatus": {}, "callbackUriPath": p}),
                "not an object",
            ),
            (
                json!({"operationStatus": "failed", "callbackUriPath": p, "statusReasons": "x"}),
                "not a string",
            ),
            (
                json!({"operationStatus": "failed", "callbackUriPath": p, "statusReasons": [null]}),
                "not null",
            ),
        ];
        for (body, words) in cases {
            let e = parse(body.clone()).unwrap_err().to_string();
            assert!(e.ends_with(words), "{body}: {e}");
        }
    }

    #[test]
    fn a_callout_without_a_path_may_spell_the_result_both_ways_if_they_agree() {
        let with_results = |lower: &str| {
            let mut c = callout();
            let data = c["data"].as_object_mut().unwrap();
            data.remove("callbackUriPath");
            data.insert("taskProcessingresult".into(), json!({"id": lower}));
            json!({"operationStatus": "completed", "callout": c})
        };
        let r = parse(with_results(&R.to_uppercase())).unwrap();
        assert_eq!(r.target.path, path());
        assert_eq!(
            field_of(with_results(W)),
            "callout.data.taskProcessingresult.id"
        );
    }

    #[test]
    fn malformed_bodies_are_explained_without_serde_positions() {
        let Err(RequestError::Malformed(why)) = ResumeRequest::parse(b"{\"operationStatus\":")
        else {
            panic!("not malformed")
        };
        assert!(
            why.starts_with("EOF while parsing") && !why.contains("line"),
            "{why}"
        );
    }
}
