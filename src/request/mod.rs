//! The request a Logic App (or an operator) sends to the gateway, validated into a
//! [`ResumeRequest`]. Every refusal names the field and says how to fix it.
//!
//! The Lifecycle Workflows callout carries the subject's personal data; only the ids and
//! `callbackUriPath` are read from it, and nothing of it is logged or kept.

pub mod access_package;
pub(crate) mod echo;
pub(crate) mod ids;
pub mod path;
pub(crate) mod pruned;
mod target;

// Entitlement Management (issue 17): the two kinds of resume, and the dispatch between them.
pub use target::{Resume, Target};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::request::ids::Guid;
use crate::request::path::{PathError, ResumeTarget};
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

    /// A callout without `data`, of either kind.
    fn no_callout_data() -> Self {
        Self::field(
            "callout.data",
            "is missing: pass the whole callout the Logic App trigger received (@triggerBody())",
        )
    }

    /// A callout sent as a string (Logic Apps' `@{triggerBody()}`) that does not parse, with
    /// serde_json's reason; of either kind.
    fn callout_not_json(reason: &str) -> Self {
        Self::field(
            "callout",
            format!(
                "is a string that is not JSON ({reason}); pass the callout object, e.g. @triggerBody()"
            ),
        )
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

    /// Parses and validates a request body. The fast reading takes the common body; anything
    /// it cannot represent goes to the complete reading. Either way [`Fields::validate`] decides.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        match fast::read(body) {
            Some(fields) => fields.validate(),
            None => Self::parse_any(body),
        }
    }

    /// The complete reading: any body. It explains what the fast reading cannot represent (a
    /// body that is not a JSON object, an unknown member, a value of the wrong JSON kind, a
    /// callout sent as a string) and leaves every other decision to [`Fields::validate`].
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
        let text = |name: &str| get(name).map(Text::of);
        // Logic Apps' `@{triggerBody()}` interpolation hands over the callout as a JSON string;
        // it is parsed here so that its fields can borrow from it, and refused only if it is
        // the target `validate` looks at.
        let parsed;
        let callout = match get("callout") {
            None => None,
            Some(Value::String(callout)) => Some(
                match pruned::from_str(callout, Shape::Object(CALLOUT, &Shape::Kind)) {
                    Ok(tree) => {
                        parsed = tree;
                        Callout::of(&parsed)
                    }
                    Err(e) => Callout::NotJson(without_position(&e)),
                },
            ),
            Some(value @ Value::Object(_)) => Some(Callout::of(value)),
            Some(other) => Some(Callout::Not(kind(other))),
        };
        Fields {
            operation_status: text("operationStatus"),
            status_reasons: get("statusReasons").map(|v| match v {
                Value::Array(items) => Reasons::Items(items.iter().map(Text::of).collect()),
                other => Reasons::Not(kind(other)),
            }),
            source: text("source"),
            kind: text("type"),
            callout,
            callback_uri_path: text("callbackUriPath"),
            workflow_id: text(EXPLICIT_IDS[0]),
            task_id: text(EXPLICIT_IDS[1]),
            task_processing_result_id: text(EXPLICIT_IDS[2]),
        }
        .validate()
    }
}

/// What a request says, as read by either reading: borrowed from the body (the fast one) or
/// from its JSON tree (the complete one), nothing decided yet. [`Fields::validate`] is the one
/// place that decides; the two readings differ only in what they can represent, and the fast
/// one declines (`None`) whatever it cannot, so the complete one reads it alike.
///
/// A member is absent (`None`) when it is missing or `null`. The fast reading derives from
/// this struct (serde, members named as on the wire); the complete one lists the same names in
/// [`FIELDS`] to refuse the others with a message.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Fields<'a> {
    #[serde(borrow)]
    operation_status: Option<Text<'a>>,
    #[serde(borrow)]
    status_reasons: Option<Reasons<'a>>,
    #[serde(borrow)]
    source: Option<Text<'a>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    callout: Option<Callout<'a>>,
    #[serde(borrow)]
    callback_uri_path: Option<Text<'a>>,
    #[serde(borrow)]
    workflow_id: Option<Text<'a>>,
    #[serde(borrow)]
    task_id: Option<Text<'a>>,
    #[serde(borrow)]
    task_processing_result_id: Option<Text<'a>>,
}

/// A member that should be a string: the string, or the JSON kind it was instead (for the
/// refusal to name). The fast reading only ever gives [`Text::Str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Text<'a> {
    Str(&'a str),
    Not(&'static str),
}

impl<'a> Text<'a> {
    fn of(value: &'a Value) -> Self {
        match value {
            Value::String(s) => Self::Str(s),
            other => Self::Not(kind(other)),
        }
    }
}

/// `statusReasons`: its items (the complete reading keeps one past [`MAX_REASONS`], enough to
/// refuse the array), or the JSON kind it was instead of an array.
#[derive(Debug)]
enum Reasons<'a> {
    Items(Vec<Text<'a>>),
    Not(&'static str),
}

/// `callout`: its `data`, if it has an object there; or why it is not a callout.
#[derive(Debug)]
enum Callout<'a> {
    Read(Option<CalloutData<'a>>),
    /// A string that does not parse, with serde_json's reason.
    NotJson(String),
    Not(&'static str),
}

/// Of `callout.data`, only what names the target.
#[derive(Debug)]
struct CalloutData<'a> {
    /// `data.@odata.type`: read only by the fast reading, to leave an access-package callout
    /// to the dispatch ([`Fields::claims_access_package`]).
    odata_type: Option<Text<'a>>,
    callback_uri_path: Option<Text<'a>>,
    /// `data.{holder}.id` in [`CALLOUT_IDS`] order; a holder that is not an object has none.
    ids: [Option<Text<'a>>; 4],
}

impl<'a> Callout<'a> {
    fn of(callout: &'a Value) -> Self {
        let present = |v: &&Value| !v.is_null();
        Self::Read(
            callout
                .get("data")
                .and_then(Value::as_object)
                .map(|data| CalloutData {
                    odata_type: None,
                    callback_uri_path: data.get("callbackUriPath").filter(present).map(Text::of),
                    ids: CALLOUT_IDS.map(|(holder, _)| {
                        data.get(holder)
                            .and_then(|h| h.get("id"))
                            .filter(present)
                            .map(Text::of)
                    }),
                }),
        )
    }
}

/// The explicit-id target's members.
const EXPLICIT_IDS: [&str; 3] = ["workflowId", "taskId", "taskProcessingResultId"];

/// A target form the request gives, with what it gives.
enum Form<'f, 'a> {
    Callout(&'f Callout<'a>),
    Path(Text<'a>),
    Ids([Option<Text<'a>>; 3]),
}

impl Fields<'_> {
    /// Whether the callout says it is an Entitlement Management one (its `@odata.type`): the
    /// complete readings then decide, as they would without the fast one (a property test,
    /// `fast_path_agrees`, holds the dispatch to that).
    fn claims_access_package(&self) -> bool {
        matches!(
            &self.callout,
            Some(Callout::Read(Some(CalloutData {
                odata_type: Some(Text::Str(t)),
                ..
            }))) if access_package::is_access_package_type(t)
        )
    }

    /// The one decision on a request, whichever reading produced the fields: each member's
    /// rule, in a fixed order (the first refusal is the one answered), then the target.
    fn validate(self) -> Result<ResumeRequest, RequestError> {
        let status = match self.operation_status {
            None => {
                return Err(RequestError::field(
                    "operationStatus",
                    "is required: \"completed\" or \"failed\"",
                ));
            }
            Some(Text::Str(s)) => OperationStatus::parse(s).ok_or_else(|| {
                RequestError::field(
                    "operationStatus",
                    format!(
                        "must be \"completed\" or \"failed\" (any case), not {}",
                        echo::quoted(s)
                    ),
                )
            })?,
            Some(Text::Not(kind)) => {
                return Err(RequestError::field(
                    "operationStatus",
                    format!("must be the string \"completed\" or \"failed\", not {kind}"),
                ));
            }
        };

        let status_reasons = match &self.status_reasons {
            None => Vec::new(),
            Some(Reasons::Items(items)) => reasons(items)?,
            Some(Reasons::Not(kind)) => {
                return Err(RequestError::field(
                    "statusReasons",
                    format!("must be an array of strings, not {kind}"),
                ));
            }
        };

        let source = source(self.source)?;

        match self.kind {
            None => {}
            Some(Text::Str(s)) if type_ok(s) => {}
            Some(_) => {
                return Err(RequestError::field(
                    "type",
                    "must be \"lifecycleEvent\" (or left out)",
                ));
            }
        }

        Ok(ResumeRequest {
            target: self.target()?,
            status,
            status_reasons,
            source,
        })
    }

    /// Exactly one target form, then that form's rules. A new kind of target is one more row
    /// here and its own rules.
    fn target(&self) -> Result<ResumeTarget, RequestError> {
        let ids = [
            self.workflow_id,
            self.task_id,
            self.task_processing_result_id,
        ];
        let forms = [
            self.callout.as_ref().map(|c| ("callout", Form::Callout(c))),
            self.callback_uri_path
                .map(|p| ("callbackUriPath", Form::Path(p))),
            ids.iter()
                .any(Option::is_some)
                .then_some(("explicit ids", Form::Ids(ids))),
        ];
        let mut given = forms.into_iter().flatten();
        match (given.next(), given.next()) {
            (None, _) => Err(RequestError::field(
                "callout",
                format!("is missing, and so is every other target: give exactly one of {TARGETS}"),
            )),
            (Some((first, _)), Some((second, _))) => Err(RequestError::field(
                second,
                format!("cannot be combined with {first}: give exactly one target: {TARGETS}"),
            )),
            (Some((_, Form::Callout(callout))), None) => callout.target(),
            (Some((_, Form::Path(path))), None) => {
                from_path("callbackUriPath", path, ResumeTarget::parse)
            }
            (Some((_, Form::Ids(ids))), None) => {
                if let Some(missing) = EXPLICIT_IDS
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
                let [w, t, r] = ids;
                Ok(ResumeTarget::from_ids(
                    guid(EXPLICIT_IDS[0], w)?,
                    guid(EXPLICIT_IDS[1], t)?,
                    guid(EXPLICIT_IDS[2], r)?,
                ))
            }
        }
    }
}

impl Callout<'_> {
    fn target(&self) -> Result<ResumeTarget, RequestError> {
        let data = match self {
            Self::Read(Some(data)) => data,
            Self::Read(None) => return Err(RequestError::no_callout_data()),
            Self::NotJson(reason) => return Err(RequestError::callout_not_json(reason)),
            Self::Not(kind) => {
                return Err(RequestError::field(
                    "callout",
                    format!("must be the Lifecycle Workflows callout object, not {kind}"),
                ));
            }
        };
        let mut given = [None; 4];
        for ((slot, id), (_, field)) in given.iter_mut().zip(data.ids).zip(CALLOUT_IDS) {
            *slot = match id {
                None => None,
                Some(Text::Str(id)) => Some(id),
                Some(Text::Not(kind)) => {
                    return Err(RequestError::field(
                        field,
                        format!("must be a GUID string, not {kind}"),
                    ));
                }
            };
        }
        match data.callback_uri_path {
            Some(path) => consistent(
                from_path("callout.data.callbackUriPath", path, ResumeTarget::parse)?,
                given,
            ),
            None => from_callout_ids(given),
        }
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

/// `source`, the one rule for both kinds: the caller's name for itself, sent to Graph (Lifecycle
/// Workflows) or answered and logged (both).
fn source(value: Option<Text<'_>>) -> Result<Option<String>, RequestError> {
    match value {
        None => Ok(None),
        Some(Text::Str(s))
            if !s.trim().is_empty()
                && s.chars().count() <= MAX_SOURCE_CHARS
                && !s.chars().any(char::is_control) =>
        {
            Ok(Some(s.to_owned()))
        }
        Some(_) => Err(RequestError::field(
            "source",
            format!(
                "must be a non-empty string of at most {MAX_SOURCE_CHARS} printable characters"
            ),
        )),
    }
}

fn type_ok(s: &str) -> bool {
    s.eq_ignore_ascii_case("lifecycleEvent")
}

fn reason_ok(s: &str) -> bool {
    s.chars().count() <= MAX_REASON_CHARS
}

/// A `callbackUriPath` read by one of the two closed grammars: [`ResumeTarget::parse`]
/// (Lifecycle Workflows) or [`path::AssignmentRequestPath::parse`] (Entitlement Management).
/// Either refusal is a [`RequestError::CallbackPathRefused`], with the grammar's words.
fn from_path<T>(
    field: &str,
    path: Text<'_>,
    grammar: impl FnOnce(&str) -> Result<T, PathError>,
) -> Result<T, RequestError> {
    match path {
        Text::Str(path) => grammar(path).map_err(|e| RequestError::CallbackPathRefused {
            field: field.to_owned(),
            detail: e.0,
        }),
        Text::Not(kind) => Err(RequestError::field(
            field,
            format!("must be a string, not {kind}"),
        )),
    }
}

fn guid(field: &str, value: Option<Text<'_>>) -> Result<Guid, RequestError> {
    match value {
        None => Err(RequestError::field(field, "is required (a GUID)")),
        Some(Text::Str(s)) => Guid::parse(s).ok_or_else(|| {
            RequestError::field(
                field,
                format!(
                    "must be a GUID like 00000000-0000-0000-0000-000000000000, not {}",
                    echo::quoted(s)
                ),
            )
        }),
        Some(Text::Not(kind)) => Err(RequestError::field(
            field,
            format!("must be a GUID string, not {kind}"),
        )),
    }
}

fn reasons(items: &[Text<'_>]) -> Result<Vec<String>, RequestError> {
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
        .map(|(i, item)| match *item {
            Text::Str(s) if reason_ok(s) => Ok(s.to_owned()),
            Text::Str(_) => Err(RequestError::field(
                &format!("statusReasons[{i}]"),
                format!("is longer than {MAX_REASON_CHARS} characters"),
            )),
            Text::Not(kind) => Err(RequestError::field(
                &format!("statusReasons[{i}]"),
                format!("must be a string, not {kind}"),
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

/// The fast reading: the common body read without building a JSON tree, its strings borrowed
/// from the body, and the callout's other contents (the subject's personal data among them)
/// skipped unread. Under load, the tree was the largest part of the gateway's own work
/// (`valgrind --tool=callgrind`).
///
/// It reads into the same [`Fields`] as the complete reading, and declines (`None`) whatever
/// it cannot represent: an escaped string, a value of another JSON kind, an unknown member,
/// a callout sent as a string, deep nesting. What it reads, the complete reading reads alike;
/// a property test holds the two to that.
mod fast {
    use serde::de::{Deserialize, Deserializer, Visitor};

    use super::{Callout, CalloutData, Fields, Reasons, Text};

    /// More nesting than the complete reading allows (serde_json's limit is 128) is left to
    /// it; skipping unread values has no such limit. Counting every bracket over-counts, safely.
    const MAX_BRACKETS: usize = 64;

    pub(super) fn read(body: &[u8]) -> Option<Fields<'_>> {
        // `b | 0x20` is `{` exactly for `{` and `[`; written so, the count vectorizes.
        let brackets: usize = body.iter().map(|b| usize::from(b | 0x20 == b'{')).sum();
        if brackets > MAX_BRACKETS {
            return None;
        }
        // Checked whole, as the complete reading does: skipped strings are not checked otherwise.
        let text = std::str::from_utf8(body).ok()?;
        let mut de = serde_json::Deserializer::from_str(text);
        let fields = Fields::deserialize(Object(&mut de)).ok()?;
        de.end().ok()?;
        Some(fields)
    }

    impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            <&'a str>::deserialize(d).map(Text::Str)
        }
    }

    impl<'de: 'a, 'a> Deserialize<'de> for Reasons<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            Vec::deserialize(d).map(Reasons::Items)
        }
    }

    /// Unknown members are skipped: the callout carries much the gateway never reads.
    #[derive(serde::Deserialize)]
    struct Wire<'a> {
        #[serde(borrow)]
        data: Option<InObject<WireData<'a>>>,
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct WireData<'a> {
        #[serde(borrow, rename = "@odata.type")]
        odata_type: Option<Text<'a>>,
        #[serde(borrow)]
        callback_uri_path: Option<Text<'a>>,
        #[serde(borrow)]
        workflow: Option<InObject<Id<'a>>>,
        #[serde(borrow)]
        task: Option<InObject<Id<'a>>>,
        #[serde(borrow)]
        task_processing_result: Option<InObject<Id<'a>>>,
        /// The metadata's spelling (`customTaskExtensionCalloutData`).
        #[serde(borrow, rename = "taskProcessingresult")]
        task_processing_result_lower: Option<InObject<Id<'a>>>,
    }

    #[derive(serde::Deserialize)]
    struct Id<'a> {
        #[serde(borrow)]
        id: Option<Text<'a>>,
    }

    impl<'de: 'a, 'a> Deserialize<'de> for Callout<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let wire = Wire::deserialize(Object(d))?;
            Ok(Callout::Read(wire.data.map(|InObject(data)| {
                CalloutData {
                    odata_type: data.odata_type,
                    callback_uri_path: data.callback_uri_path,
                    // In `CALLOUT_IDS` order.
                    ids: [
                        data.workflow,
                        data.task,
                        data.task_processing_result,
                        data.task_processing_result_lower,
                    ]
                    .map(|holder| holder.and_then(|InObject(h)| h.id)),
                }
            })))
        }
    }

    /// A struct read only from a JSON object. serde's derived structs also read an array, by
    /// position, where the complete reading sees no members at all.
    struct InObject<T>(T);

    impl<'de, T: Deserialize<'de>> Deserialize<'de> for InObject<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            T::deserialize(Object(d)).map(InObject)
        }
    }

    /// Hands a derived struct's request to the JSON deserializer as a request for a map.
    struct Object<D>(D);

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for Object<D> {
        type Error = D::Error;

        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.0.deserialize_map(visitor)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
            identifier ignored_any
        }
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

    /// What the fast reading makes of a body: `None` when it declines.
    fn fast(body: &[u8]) -> Option<Result<ResumeRequest, RequestError>> {
        fast::read(body).map(Fields::validate)
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
                assert!(!matches!(fast(body.to_string().as_bytes()), Some(Ok(_))));
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
            let fast = fast(&body).expect("the fast path takes it");
            assert!(fast.is_ok(), "{fast:?}");
            assert_eq!(fast, ResumeRequest::parse_any(&body));
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
            assert!(fast(&bytes).is_none(), "{body}");
            assert!(ResumeRequest::parse(&bytes).is_ok(), "{body}");
        }
    }

    #[test]
    fn objects_are_objects_on_both_paths() {
        // serde's derived structs also read an array, by position; the complete parser does
        // not, and neither may the fast path (it once took this body as a valid request).
        let positional = json!([
            "completed",
            null,
            null,
            null,
            null,
            path(),
            null,
            null,
            null
        ]);
        let bytes = positional.to_string().into_bytes();
        assert!(fast(&bytes).is_none());
        assert!(matches!(
            ResumeRequest::parse(&bytes),
            Err(RequestError::Malformed(_))
        ));
        // A holder that is an array has no id; the path still names the target.
        let mut c = callout();
        c["data"]["workflow"] = json!([W]);
        c["data"]["taskProcessingResult"] = json!([W]);
        let bytes = json!({"operationStatus": "completed", "callout": c.clone()})
            .to_string()
            .into_bytes();
        assert!(fast(&bytes).is_none());
        assert_eq!(ResumeRequest::parse(&bytes).unwrap().target.path, path());
        let body = json!({"operationStatus": "completed", "callout": [c]});
        assert!(fast(body.to_string().as_bytes()).is_none());
        let e = parse(body).unwrap_err().to_string();
        assert!(e.ends_with("callout object, not an array"), "{e}");
    }

    #[test]
    fn both_readings_know_the_same_fields() {
        for name in FIELDS {
            let body = json!({ *name: null }).to_string();
            assert!(fast(body.as_bytes()).is_some(), "{name}");
        }
        assert!(fast(br#"{"unknown": null}"#).is_none());
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
        assert!(fast(&bytes).is_none());
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
                // An array where a struct is read: serde's derived structs would take it by position.
                Just(json!([W])),
                Just(json!(["completed", null])),
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

        /// An Entitlement Management assignment request and stage instance id.
        const A: &str = "0e60f18c-b2a0-4887-9da8-da2e30a39d99";
        const S: &str = "957d0c50-466b-4840-bb5b-c92cea7141ff";

        fn em_path() -> String {
            format!("/identityGovernance/entitlementManagement/assignmentRequests/{A}/resume")
        }

        fn stage() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(json!("assignmentRequestCreated")),
                Just(json!("AssignmentRequestGranted")),
                Just(json!("assignmentOneDayBeforeExpiration")),
            ]
            .prop_flat_map(mostly)
        }

        /// An access-package callout's `data`: its type, path, ids and stage, mostly right,
        /// sometimes wrong, missing, or a Lifecycle Workflows path; and the target user's data.
        fn em_data() -> impl Strategy<Value = Value> {
            (
                proptest::option::weighted(
                    0.7,
                    mostly(json!(
                        "#microsoft.graph.accessPackageAssignmentRequestCalloutData"
                    )),
                ),
                proptest::option::weighted(
                    0.8,
                    prop_oneof![4 => mostly(json!(em_path())), 1 => Just(json!(path()))],
                ),
                proptest::option::weighted(0.9, mostly(json!(S))),
                proptest::option::weighted(0.9, stage()),
                proptest::option::weighted(0.3, mostly(json!(A))),
                any::<bool>(),
            )
                .prop_map(|(kind, path, instance, stage, request, assignment)| {
                    let mut d = serde_json::Map::new();
                    for (k, v) in [
                        ("@odata.type", kind),
                        ("callbackUriPath", path),
                        ("customExtensionStageInstanceId", instance),
                        ("stage", stage),
                        ("accessPackageAssignmentRequestId", request),
                    ] {
                        if let Some(v) = v {
                            d.insert(k.into(), v);
                        }
                    }
                    if assignment {
                        d.insert(
                            "assignment".into(),
                            json!({"id": "x", "target": {"displayName": format!("Ada {ESCAPE}"), "email": "ada@contoso.com"}}),
                        );
                    }
                    Value::Object(d)
                })
        }

        /// An Entitlement Management body: a callout (object or string) or the explicit
        /// fields, with `state`, `detail`, `source`, and sometimes a Lifecycle Workflows member.
        fn em_body() -> impl Strategy<Value = Value> {
            let target = prop_oneof![
                3 => em_data().prop_map(|d| json!({"callout": {"source": "EntitlementManagement", "data": d}})),
                1 => em_data().prop_map(|d| json!({"callout": json!({"data": d}).to_string()})),
                2 => (
                    prop_oneof![3 => mostly(json!(A)).prop_map(|a| ("assignmentRequestId", a)), 1 => mostly(json!(em_path())).prop_map(|p| ("callbackUriPath", p))],
                    proptest::option::weighted(0.9, mostly(json!(S))),
                    proptest::option::weighted(0.9, stage()),
                )
                    .prop_map(|((name, request), instance, stage)| {
                        let mut b = serde_json::Map::new();
                        b.insert(name.into(), request);
                        for (k, v) in [("customExtensionStageInstanceId", instance), ("stage", stage)] {
                            if let Some(v) = v {
                                b.insert(k.into(), v);
                            }
                        }
                        Value::Object(b)
                    }),
            ];
            (
                target,
                proptest::option::weighted(
                    0.2,
                    prop_oneof![Just(json!("denied")), Just(json!("Canceled"))]
                        .prop_flat_map(mostly),
                ),
                proptest::option::weighted(0.3, mostly(json!("SoD conflict"))),
                proptest::option::weighted(0.3, mostly(json!("a Logic App"))),
                proptest::option::weighted(0.1, mostly(json!("completed"))),
            )
                .prop_map(|(target, state, detail, source, status)| {
                    let mut b = target;
                    for (k, v) in [
                        ("state", state),
                        ("detail", detail),
                        ("source", source),
                        ("operationStatus", status),
                    ] {
                        if let Some(v) = v {
                            b[k] = v;
                        }
                    }
                    b
                })
        }

        fn body() -> impl Strategy<Value = Value> {
            prop_oneof![3 => lw_body().boxed(), 1 => em_body().boxed()]
        }

        fn lw_body() -> impl Strategy<Value = Value> {
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

        /// Whatever the fast path reads, the complete parser decides alike (the same request,
        /// or the same refusal: one `validate` decides both); and the fast path accepts often
        /// enough for that to mean something.
        #[test]
        fn whatever_the_fast_path_accepts_the_complete_parser_accepts_alike() {
            use proptest::test_runner::{Config, TestRunner};
            let cases = 4000;
            let taken = std::cell::Cell::new(0u32);
            let access_packages = std::cell::Cell::new(0u32);
            let mut runner = TestRunner::new(Config::with_cases(cases));
            runner
                .run(&(body(), escape()), |(body, escape)| {
                    let bytes = body.to_string().replace(ESCAPE, escape).into_bytes();
                    if let Some(fast) = fast(&bytes) {
                        if fast.is_ok() {
                            taken.set(taken.get() + 1);
                        }
                        prop_assert_eq!(fast, ResumeRequest::parse_any(&bytes));
                    }
                    // The dispatch of both kinds: its fast step changes no answer.
                    let either = Resume::parse(&bytes);
                    if matches!(either, Ok(Resume::AccessPackage(_))) {
                        access_packages.set(access_packages.get() + 1);
                    }
                    prop_assert_eq!(either, Resume::parse_complete(&bytes));
                    Ok(())
                })
                .unwrap();
            // About 5 % of the bodies take the fast path (a quarter are access-package bodies,
            // which it never takes); the seed is random, so the bound leaves room below that.
            assert!(
                taken.get() > cases / 40,
                "fast path taken {} times",
                taken.get()
            );
            assert!(
                access_packages.get() > cases / 40,
                "access-package resumes accepted {} times",
                access_packages.get()
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
