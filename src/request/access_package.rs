//! The Entitlement Management form of a resume request: an access-package assignment request
//! paused at a custom extension stage, resumed with Graph's `accessPackageAssignmentRequest:
//! resume` (graph-docs-contrib `accesspackageassignmentrequest-resume.md`).
//!
//! A body is of this kind when it carries an access-package callout (`callout.data` with an
//! `@odata.type` of an access-package callout, or a `callbackUriPath` under
//! `/identityGovernance/entitlementManagement/`), or the explicit fields `assignmentRequestId`,
//! `customExtensionStageInstanceId`, `stage`. The callout's `assignment` holds the target
//! user's name and email: only the ids, the stage and the path are read of it
//! ([`super::pruned`]), and nothing of it is logged or kept.

use serde::Serialize;
use serde_json::{Map, Value};

use super::ids::Guid;
use super::path::AssignmentRequestPath;
use super::pruned::{self, Shape};
use super::{RequestError, Text, echo, from_path, guid, source, without_position};

/// The longest `detail` sent as `customExtensionStageInstanceDetail`: Graph declares no limit
/// (`Edm.String`), so the bound is the gateway's, as for Lifecycle Workflows' reasons.
pub const MAX_DETAIL_CHARS: usize = 1024;
const FIELDS: &[&str] = &[
    "callout",
    "callbackUriPath",
    "assignmentRequestId",
    "customExtensionStageInstanceId",
    "stage",
    "state",
    "detail",
    "source",
];
const TARGETS: &str = "`callout` (the trigger body, unchanged), or `assignmentRequestId` (or `callbackUriPath`) + `customExtensionStageInstanceId` + `stage`";
/// The fields only the explicit form has.
const EXPLICIT: [&str; 3] = [
    "assignmentRequestId",
    "customExtensionStageInstanceId",
    "stage",
];

/// A stage at which a catalog's custom extension calls out: the members of Graph's
/// `accessPackageCustomExtensionStage` (without `unknownFutureValue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    AssignmentRequestCreated,
    AssignmentRequestApproved,
    AssignmentRequestGranted,
    AssignmentRequestRemoved,
    AssignmentFourteenDaysBeforeExpiration,
    AssignmentOneDayBeforeExpiration,
}

impl Stage {
    /// Every stage, in the metadata's order.
    pub const ALL: [Self; 6] = [
        Self::AssignmentRequestCreated,
        Self::AssignmentRequestApproved,
        Self::AssignmentRequestGranted,
        Self::AssignmentRequestRemoved,
        Self::AssignmentFourteenDaysBeforeExpiration,
        Self::AssignmentOneDayBeforeExpiration,
    ];

    /// The enum member's name, as Graph declares it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AssignmentRequestCreated => "assignmentRequestCreated",
            Self::AssignmentRequestApproved => "assignmentRequestApproved",
            Self::AssignmentRequestGranted => "assignmentRequestGranted",
            Self::AssignmentRequestRemoved => "assignmentRequestRemoved",
            Self::AssignmentFourteenDaysBeforeExpiration => {
                "assignmentFourteenDaysBeforeExpiration"
            }
            Self::AssignmentOneDayBeforeExpiration => "assignmentOneDayBeforeExpiration",
        }
    }

    /// Any case: Microsoft's own example sends `AssignmentRequestCreated`.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(value))
    }
}

/// What the callback decides for a request paused at `assignmentRequestCreated`; without one
/// the request carries on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestState {
    Denied,
    Canceled,
}

impl RequestState {
    /// As sent in `data.state`: lower-case, as Microsoft's v1.0 example sends `denied`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Denied => "denied",
            Self::Canceled => "canceled",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        if value.eq_ignore_ascii_case("denied") {
            Some(Self::Denied)
        } else if value.eq_ignore_ascii_case("canceled") {
            Some(Self::Canceled)
        } else {
            None
        }
    }
}

/// One paused stage of one assignment request, and what to tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPackageTarget {
    pub request: AssignmentRequestPath,
    pub stage_instance_id: Guid,
    pub stage: Stage,
    pub state: Option<RequestState>,
}

/// A validated Entitlement Management resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPackageResume {
    pub target: AccessPackageTarget,
    /// Sent as `customExtensionStageInstanceDetail`; never logged (free text about a person).
    pub detail: Option<String>,
    pub source: Option<String>,
}

/// What is read of a body to tell its kind and, when it is this kind, to validate it: the
/// top-level scalars, and of a callout only `data`'s type, path, ids and stage.
const REQUEST: &[(&str, Shape)] = &[
    ("callout", Shape::Object(CALLOUT, &Shape::Kind)),
    ("data", Shape::Object(DATA, &Shape::Kind)),
];
const CALLOUT: &[(&str, Shape)] = &[("data", Shape::Object(DATA, &Shape::Kind))];
const DATA: &[(&str, Shape)] = &[
    ("@odata.type", Shape::Scalar),
    ("callbackUriPath", Shape::Scalar),
    ("customExtensionStageInstanceId", Shape::Scalar),
    ("stage", Shape::Scalar),
    ("accessPackageAssignmentRequestId", Shape::Scalar),
];

/// `None` when `body` is not an Entitlement Management request (the Lifecycle Workflows
/// parser then judges it); otherwise the request, or why it is refused.
pub(super) fn parse(body: &[u8]) -> Option<Result<AccessPackageResume, RequestError>> {
    let object = pruned::object_from_slice(body, REQUEST, &Shape::Scalar).ok()?;
    let callout = callout_of(object.get("callout"));
    let claimed = EXPLICIT.iter().any(|f| object.contains_key(*f))
        || object.get("callbackUriPath").is_some_and(em_path)
        || matches!(&callout, Some(Ok(c)) if is_access_package(c))
        || object.get("data").is_some_and(is_access_package_data);
    claimed.then(|| validate(&object, callout))
}

/// The callout object, parsed when Logic Apps' `@{triggerBody()}` made it a string.
fn callout_of(value: Option<&Value>) -> Option<Result<Value, RequestError>> {
    match value? {
        Value::String(text) => Some(
            pruned::from_str(text, Shape::Object(CALLOUT, &Shape::Kind))
                .map_err(|e| RequestError::callout_not_json(&without_position(&e))),
        ),
        other => Some(Ok(other.clone())),
    }
}

fn em_path(value: &Value) -> bool {
    value.as_str().is_some_and(AssignmentRequestPath::claims)
}

fn is_access_package(callout: &Value) -> bool {
    callout.get("data").is_some_and(is_access_package_data)
}

/// `accessPackageAssignmentRequestCalloutData` or `accessPackageAssignmentCalloutData` (with
/// or without the `#`), or a callback path under Entitlement Management.
fn is_access_package_data(data: &Value) -> bool {
    let typed = data
        .get("@odata.type")
        .and_then(Value::as_str)
        .is_some_and(is_access_package_type);
    typed || data.get("callbackUriPath").is_some_and(em_path)
}

/// Whether a callout's `@odata.type` names an access-package callout. The fast reading asks
/// too ([`super::Fields::claims_access_package`]): such a callout is never a task.
pub(super) fn is_access_package_type(odata_type: &str) -> bool {
    odata_type
        .trim_start_matches('#')
        .get(..29)
        .is_some_and(|h| h.eq_ignore_ascii_case("microsoft.graph.accessPackage"))
}

fn validate(
    object: &Map<String, Value>,
    callout: Option<Result<Value, RequestError>>,
) -> Result<AccessPackageResume, RequestError> {
    if object.contains_key("data") && !object.contains_key("callout") {
        return Err(RequestError::field(
            "data",
            "is not a field of a resume request: this body is an Entitlement Management callout itself; wrap it as {\"callout\":<the trigger body>}",
        ));
    }
    for name in object.keys() {
        if let Some(why) = misplaced(name) {
            return Err(RequestError::field(name, why));
        }
        if !FIELDS.contains(&name.as_str()) {
            return Err(RequestError::field(
                name,
                format!(
                    "is not a field of an Entitlement Management resume request; the fields are {}",
                    FIELDS.join(", ")
                ),
            ));
        }
    }
    let get = |name: &str| object.get(name).filter(|v| !v.is_null());
    let text = |name: &str| get(name).map(Text::of);
    let source = source(text("source"))?;
    let detail = detail(text("detail"))?;
    let (request, stage_instance_id, stage) = match callout {
        Some(callout) => {
            if let Some(extra) = ["callbackUriPath"]
                .into_iter()
                .chain(EXPLICIT)
                .find(|f| get(f).is_some())
            {
                return Err(RequestError::field(
                    extra,
                    format!("cannot be combined with callout: give exactly one target: {TARGETS}"),
                ));
            }
            from_callout(&callout?)?
        }
        None => explicit(&get)?,
    };
    let state = state(text("state"), stage)?;
    Ok(AccessPackageResume {
        target: AccessPackageTarget {
            request,
            stage_instance_id,
            stage,
            state,
        },
        detail,
        source,
    })
}

/// The Lifecycle Workflows fields that mean nothing here, and what to send instead.
fn misplaced(name: &str) -> Option<&'static str> {
    Some(match name {
        "operationStatus" => {
            "has no meaning for an Entitlement Management resume: leave it out; the request continues, or send \"state\": \"denied\" or \"canceled\" (only at assignmentRequestCreated) to stop it"
        }
        "statusReasons" => {
            "has no meaning for an Entitlement Management resume: send `detail` (a string), which Graph records as customExtensionStageInstanceDetail"
        }
        "type" => {
            "is set by the gateway for an Entitlement Management resume (microsoft.graph.accessPackageCustomExtensionStage.<stage>): leave it out"
        }
        "workflowId" | "taskId" | "taskProcessingResultId" => {
            "names a Lifecycle Workflows task, but this request targets an access-package assignment request: send only one kind of target"
        }
        _ => return None,
    })
}

type Parts = (AssignmentRequestPath, Guid, Stage);

fn from_callout(callout: &Value) -> Result<Parts, RequestError> {
    let Some(data) = callout.get("data").and_then(Value::as_object) else {
        return Err(RequestError::no_callout_data());
    };
    let get = |name: &str| data.get(name).filter(|v| !v.is_null());
    let by_path = get("callbackUriPath")
        .map(|p| path("callout.data.callbackUriPath", p))
        .transpose()?;
    let by_id = get("accessPackageAssignmentRequestId")
        .map(|v| {
            guid(
                "callout.data.accessPackageAssignmentRequestId",
                Some(Text::of(v)),
            )
        })
        .transpose()?;
    let request = match (by_path, by_id) {
        (Some(p), Some(id)) if p.request_id != id => {
            return Err(RequestError::field(
                "callout.data.accessPackageAssignmentRequestId",
                format!(
                    "is {id} but callbackUriPath names {}; the callout is inconsistent, pass it unchanged",
                    p.request_id
                ),
            ));
        }
        (Some(p), _) => p,
        (None, Some(id)) => AssignmentRequestPath::from_id(id),
        (None, None) => {
            return Err(RequestError::field(
                "callout.data.callbackUriPath",
                "is missing, and so is accessPackageAssignmentRequestId: pass the callout unchanged",
            ));
        }
    };
    Ok((
        request,
        guid(
            "callout.data.customExtensionStageInstanceId",
            get("customExtensionStageInstanceId").map(Text::of),
        )?,
        stage("callout.data.stage", get("stage").map(Text::of))?,
    ))
}

fn explicit<'a>(get: &impl Fn(&str) -> Option<&'a Value>) -> Result<Parts, RequestError> {
    let request = match (get("assignmentRequestId"), get("callbackUriPath")) {
        (Some(_), Some(_)) => {
            return Err(RequestError::field(
                "callbackUriPath",
                format!(
                    "cannot be combined with assignmentRequestId: give exactly one target: {TARGETS}"
                ),
            ));
        }
        (Some(id), None) => {
            AssignmentRequestPath::from_id(guid("assignmentRequestId", Some(Text::of(id)))?)
        }
        (None, Some(p)) => path("callbackUriPath", p)?,
        (None, None) => {
            return Err(RequestError::field(
                "assignmentRequestId",
                format!("is missing: the targets are {TARGETS}"),
            ));
        }
    };
    let instance = get("customExtensionStageInstanceId").ok_or_else(|| {
        RequestError::field(
            "customExtensionStageInstanceId",
            format!("is missing: the callout's data carries it; the targets are {TARGETS}"),
        )
    })?;
    Ok((
        request,
        guid("customExtensionStageInstanceId", Some(Text::of(instance)))?,
        stage("stage", get("stage").map(Text::of))?,
    ))
}

fn path(field: &str, value: &Value) -> Result<AssignmentRequestPath, RequestError> {
    from_path(field, Text::of(value), AssignmentRequestPath::parse)
}

/// `detail`, sent to Graph as `customExtensionStageInstanceDetail`: a string, bounded.
fn detail(value: Option<Text<'_>>) -> Result<Option<String>, RequestError> {
    match value {
        None => Ok(None),
        Some(Text::Str(s)) if s.chars().count() <= MAX_DETAIL_CHARS => Ok(Some(s.to_owned())),
        Some(Text::Str(_)) => Err(RequestError::field(
            "detail",
            format!("is longer than {MAX_DETAIL_CHARS} characters"),
        )),
        Some(Text::Not(kind)) => Err(RequestError::field(
            "detail",
            format!("must be a string, not {kind}"),
        )),
    }
}

/// `state`: what to tell a request paused at `stage`; only `assignmentRequestCreated` can be
/// denied or canceled (Graph's resume action page).
fn state(value: Option<Text<'_>>, stage: Stage) -> Result<Option<RequestState>, RequestError> {
    let state = match value {
        None => return Ok(None),
        Some(Text::Str(s)) => RequestState::parse(s).ok_or_else(|| {
            RequestError::field(
                "state",
                format!(
                    "must be \"denied\" or \"canceled\" (any case), or left out to let the request continue; not {}",
                    echo::quoted(s)
                ),
            )
        })?,
        Some(Text::Not(kind)) => {
            return Err(RequestError::field(
                "state",
                format!("must be the string \"denied\" or \"canceled\", not {kind}"),
            ));
        }
    };
    if stage != Stage::AssignmentRequestCreated {
        return Err(RequestError::field(
            "state",
            format!(
                "can deny or cancel a request only at the assignmentRequestCreated stage; this callout is at {}: leave `state` out",
                stage.as_str()
            ),
        ));
    }
    Ok(Some(state))
}

fn stage(field: &str, value: Option<Text<'_>>) -> Result<Stage, RequestError> {
    let names = || {
        Stage::ALL
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match value {
        None => Err(RequestError::field(
            field,
            format!("is required: one of {}", names()),
        )),
        Some(Text::Str(s)) => Stage::parse(s).ok_or_else(|| {
            RequestError::field(
                field,
                format!(
                    "must be one of {} (any case), not {}",
                    names(),
                    echo::quoted(s)
                ),
            )
        }),
        Some(Text::Not(kind)) => Err(RequestError::field(
            field,
            format!("must be a string, not {kind}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const A: &str = "0e60f18c-b2a0-4887-9da8-da2e30a39d99";
    const S: &str = "957d0c50-466b-4840-bb5b-c92cea7141ff";

    fn em_path() -> String {
        format!("/identityGovernance/entitlementManagement/assignmentRequests/{A}/resume")
    }

    /// A callout as the platform notes describe it, with the target user's personal data.
    fn callout(stage: &str) -> Value {
        json!({
            "source": "EntitlementManagement",
            "type": format!("microsoft.graph.accessPackageCustomExtensionStage.{stage}"),
            "data": {
                "@odata.type": "#microsoft.graph.accessPackageAssignmentRequestCalloutData",
                "callbackUriPath": em_path(),
                "customExtensionStageInstanceId": S,
                "stage": stage,
                "accessPackageAssignmentRequestId": A,
                "state": "submitted",
                "requestType": "userAdd",
                "assignment": {"id": "x", "target": {"displayName": "Ada Lovelace", "email": "ada@contoso.com"}}
            }
        })
    }

    fn parse(body: Value) -> Option<Result<AccessPackageResume, RequestError>> {
        super::parse(body.to_string().as_bytes())
    }

    fn ok(body: Value) -> AccessPackageResume {
        parse(body.clone())
            .expect("claimed")
            .unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    fn field_of(body: Value) -> String {
        match parse(body.clone()).expect("claimed") {
            Err(e) => e.field_name().unwrap_or("").to_owned(),
            Ok(r) => panic!("accepted {body}: {r:?}"),
        }
    }

    #[test]
    fn every_stage_through_the_callout() {
        for stage in Stage::ALL {
            let r = ok(json!({"callout": callout(stage.as_str())}));
            assert_eq!(r.target.stage, stage);
            assert_eq!(r.target.request.path, em_path());
            assert_eq!(r.target.stage_instance_id.as_str(), S);
            assert_eq!(r.target.state, None);
        }
        // Any case of the stage, and the callout as a string (Logic Apps' interpolation).
        let r = ok(
            json!({"callout": callout("AssignmentRequestCreated").to_string(), "state": "Denied", "detail": "SoD conflict"}),
        );
        assert_eq!(r.target.stage, Stage::AssignmentRequestCreated);
        assert_eq!(r.target.state, Some(RequestState::Denied));
        assert_eq!(r.detail.as_deref(), Some("SoD conflict"));
    }

    #[test]
    fn the_callout_is_recognised_by_its_type_or_its_path() {
        let mut by_type = callout("assignmentRequestGranted");
        by_type["data"]
            .as_object_mut()
            .unwrap()
            .remove("callbackUriPath");
        assert_eq!(
            ok(json!({"callout": by_type})).target.request.path,
            em_path()
        );
        let mut by_path = callout("assignmentRequestGranted");
        by_path["data"]
            .as_object_mut()
            .unwrap()
            .remove("@odata.type");
        assert!(parse(json!({"callout": by_path})).is_some());
        // A Lifecycle Workflows body is not claimed.
        let lw = json!({"operationStatus": "completed", "callout": {"data": {"callbackUriPath": "/identityGovernance/lifecycleWorkflows/x"}}});
        assert!(parse(lw).is_none());
        assert!(parse(json!({"operationStatus": "completed"})).is_none());
        assert!(super::parse(b"not json").is_none());
    }

    #[test]
    fn the_explicit_forms() {
        let r = ok(
            json!({"assignmentRequestId": A.to_uppercase(), "customExtensionStageInstanceId": S, "stage": "assignmentRequestApproved", "source": "la"}),
        );
        assert_eq!(r.target.request.path, em_path());
        assert_eq!(r.source.as_deref(), Some("la"));
        let r = ok(
            json!({"callbackUriPath": em_path(), "customExtensionStageInstanceId": S, "stage": "assignmentRequestCreated", "state": "CANCELED"}),
        );
        assert_eq!(r.target.state, Some(RequestState::Canceled));
    }

    #[test]
    fn denied_and_canceled_only_at_assignment_request_created() {
        for stage in Stage::ALL {
            for state in ["denied", "canceled"] {
                let body = json!({"callout": callout(stage.as_str()), "state": state});
                if stage == Stage::AssignmentRequestCreated {
                    assert!(parse(body).unwrap().is_ok());
                } else {
                    let e = parse(body).unwrap().unwrap_err().to_string();
                    assert!(e.contains("only at the assignmentRequestCreated"), "{e}");
                    assert!(e.contains(stage.as_str()), "{e}");
                }
            }
        }
    }

    #[test]
    fn refusals_name_the_field() {
        let c = callout("assignmentRequestCreated");
        let mut no_instance = c.clone();
        no_instance["data"]
            .as_object_mut()
            .unwrap()
            .remove("customExtensionStageInstanceId");
        let mut bad_stage = c.clone();
        bad_stage["data"]["stage"] = json!("unknownFutureValue");
        let mut other_id = c.clone();
        other_id["data"]["accessPackageAssignmentRequestId"] = json!(S);
        let mut foreign = c.clone();
        foreign["data"]["callbackUriPath"] = json!(format!(
            "/identityGovernance/entitlementManagement/assignmentRequests/{A}/cancel"
        ));
        let cases = [
            (
                json!({"callout": c, "operationStatus": "completed"}),
                "operationStatus",
            ),
            (
                json!({"callout": c, "statusReasons": ["x"]}),
                "statusReasons",
            ),
            (json!({"callout": c, "type": "lifecycleEvent"}), "type"),
            (json!({"callout": c, "state": "approved"}), "state"),
            (json!({"callout": c, "state": 1}), "state"),
            (
                json!({"callout": c, "detail": "x".repeat(MAX_DETAIL_CHARS + 1)}),
                "detail",
            ),
            (json!({"callout": c, "detail": 5}), "detail"),
            (json!({"callout": c, "source": ""}), "source"),
            (json!({"callout": c, "other": 1}), "other"),
            (
                json!({"callout": c, "assignmentRequestId": A}),
                "assignmentRequestId",
            ),
            (
                json!({"callout": no_instance}),
                "callout.data.customExtensionStageInstanceId",
            ),
            (json!({"callout": bad_stage}), "callout.data.stage"),
            (
                json!({"callout": other_id}),
                "callout.data.accessPackageAssignmentRequestId",
            ),
            (json!({"callout": foreign}), "callout.data.callbackUriPath"),
            (
                json!({"stage": "assignmentRequestCreated"}),
                "assignmentRequestId",
            ),
            (
                json!({"assignmentRequestId": A, "stage": "assignmentRequestCreated"}),
                "customExtensionStageInstanceId",
            ),
            (
                json!({"assignmentRequestId": A, "customExtensionStageInstanceId": S}),
                "stage",
            ),
            (
                json!({"assignmentRequestId": "x", "customExtensionStageInstanceId": S, "stage": "assignmentRequestCreated"}),
                "assignmentRequestId",
            ),
            (
                json!({"assignmentRequestId": A, "callbackUriPath": em_path(), "customExtensionStageInstanceId": S, "stage": "assignmentRequestCreated"}),
                "callbackUriPath",
            ),
            (
                json!({"assignmentRequestId": A, "customExtensionStageInstanceId": S, "stage": "assignmentRequestCreated", "workflowId": A}),
                "workflowId",
            ),
            (
                json!({"callbackUriPath": format!("/identityGovernance/entitlementManagement/accessPackages/{A}")}),
                "callbackUriPath",
            ),
            (callout("assignmentRequestCreated"), "data"),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(body.clone()), field, "{body}");
        }
        let e = parse(json!({"callout": c, "operationStatus": "completed"}))
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"state\": \"denied\" or \"canceled\""), "{e}");
    }

    #[test]
    fn foreign_paths_are_path_refusals() {
        let e = parse(json!({"callbackUriPath": format!("/identityGovernance/entitlementManagement/assignmentRequests/{A}/cancel"), "customExtensionStageInstanceId": S, "stage": "assignmentRequestCreated"}))
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(e, RequestError::CallbackPathRefused { .. }),
            "{e:?}"
        );
    }
}
