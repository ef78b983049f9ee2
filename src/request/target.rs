//! The two kinds of resume one body can ask for (a Lifecycle Workflows task, or an
//! Entitlement Management access-package request paused at a custom extension stage), and the
//! target as the rest of the gateway sees it: what to call, what to share, what to log.

use std::borrow::Cow;

use super::access_package::{self, AccessPackageResume, AccessPackageTarget};
use super::path::ResumeTarget;
use super::{Fields, OperationStatus, RequestError, ResumeRequest, fast};

/// A validated resume request of either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    Task(ResumeRequest),
    AccessPackage(AccessPackageResume),
}

/// What one resume acts on, with the outcome asked for: the part of a request that decides
/// whether two requests are the same resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Task(ResumeTarget, OperationStatus),
    AccessPackage(AccessPackageTarget),
}

impl Resume {
    /// Parses and validates a body of either kind. The Lifecycle Workflows fast reading goes
    /// first and never yields a valid task from an Entitlement Management body (its paths and
    /// fields are not Lifecycle Workflows'), so that path costs nothing more; a body it reads
    /// but cannot validate is left to the complete parsers, which explain.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        if let Some(Ok(task)) = fast::read(body)
            .filter(|f| !f.claims_access_package())
            .map(Fields::validate)
        {
            return Ok(Self::Task(task));
        }
        Self::parse_complete(body)
    }

    /// The complete readings alone: the one the fast reading must agree with (the property
    /// test `fast_path_agrees` generates bodies of both kinds against it).
    pub(super) fn parse_complete(body: &[u8]) -> Result<Self, RequestError> {
        match access_package::parse(body) {
            Some(request) => request.map(Self::AccessPackage),
            None => ResumeRequest::parse_any(body).map(Self::Task),
        }
    }

    /// The target and the outcome asked for.
    pub fn target(&self) -> Target {
        match self {
            Self::Task(r) => Target::Task(r.target.clone(), r.status),
            Self::AccessPackage(r) => Target::AccessPackage(r.target.clone()),
        }
    }

    /// The caller's `source`, if it gave one.
    pub fn source(&self) -> Option<&str> {
        match self {
            Self::Task(r) => r.source.as_deref(),
            Self::AccessPackage(r) => r.source.as_deref(),
        }
    }

    /// A Lifecycle Workflows caller's reasons (answered and logged, never sent); none for an
    /// access-package resume, whose `detail` Graph takes.
    pub fn status_reasons(&self) -> &[String] {
        match self {
            Self::Task(r) => &r.status_reasons,
            Self::AccessPackage(_) => &[],
        }
    }

    /// [`ResumeRequest::reasons_for_log`]; `detail` is never logged (free text about a person).
    pub fn reasons_for_log(&self) -> Option<String> {
        match self {
            Self::Task(r) => r.reasons_for_log(),
            Self::AccessPackage(_) => None,
        }
    }
}

impl Target {
    /// The resume action's path, relative to the Graph version root.
    pub fn path(&self) -> &str {
        match self {
            Self::Task(t, _) => &t.path,
            Self::AccessPackage(t) => &t.request.path,
        }
    }

    /// What identifies one resume, whatever else the requests say: a task's whole result
    /// path (never the result id alone: a right id under a wrong workflow must not share the
    /// real request's outcome), or an assignment request with the stage instance paused in
    /// it (a request pauses at several stages, each resumed once). Ends with a GUID.
    pub fn key(&self) -> Cow<'_, str> {
        match self {
            Self::Task(t, _) => Cow::Borrowed(t.result_path()),
            Self::AccessPackage(t) => Cow::Owned(format!(
                "{}#{}",
                t.request.request_path(),
                t.stage_instance_id
            )),
        }
    }

    /// The outcome asked for: two requests for one target asking different ones conflict.
    pub fn verdict(&self) -> &'static str {
        match self {
            Self::Task(_, status) => status.as_str(),
            Self::AccessPackage(t) => t.state.map_or("continue", |s| s.as_str()),
        }
    }

    /// The target in words, for answers and logs (ids only).
    pub fn describe(&self) -> String {
        match self {
            Self::Task(t, _) => format!("task processing result {}", t.result_id),
            Self::AccessPackage(t) => format!(
                "access package assignment request {} (stage {}, instance {})",
                t.request.request_id,
                t.stage.as_str(),
                t.stage_instance_id
            ),
        }
    }

    /// The Lifecycle Workflows target, when it is one.
    pub fn task(&self) -> Option<&ResumeTarget> {
        match self {
            Self::Task(t, _) => Some(t),
            Self::AccessPackage(_) => None,
        }
    }

    /// The Entitlement Management target, when it is one.
    pub fn access_package(&self) -> Option<&AccessPackageTarget> {
        match self {
            Self::Task(..) => None,
            Self::AccessPackage(t) => Some(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const A: &str = "0e60f18c-b2a0-4887-9da8-da2e30a39d99";
    const S: &str = "957d0c50-466b-4840-bb5b-c92cea7141ff";

    fn em(stage: &str, instance: &str) -> Resume {
        Resume::parse(
            json!({"assignmentRequestId": A, "customExtensionStageInstanceId": instance, "stage": stage})
                .to_string()
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn both_kinds_come_through_one_parser() {
        let sample = include_bytes!("../../samples/resume-callout.json");
        assert!(matches!(Resume::parse(sample), Ok(Resume::Task(_))));
        let Resume::Task(task) = Resume::parse(sample).unwrap() else {
            unreachable!()
        };
        assert_eq!(Ok(task), ResumeRequest::parse(sample));
        assert!(matches!(
            em("assignmentRequestCreated", S),
            Resume::AccessPackage(_)
        ));
        // The fast path never takes an access-package body (nor one that carries an
        // operationStatus beside an access-package callout): the complete parsers decide.
        let callout = json!({"callout": {"data": {
            "@odata.type": "#microsoft.graph.accessPackageAssignmentRequestCalloutData",
            "callbackUriPath": format!("/identityGovernance/entitlementManagement/assignmentRequests/{A}/resume"),
            "customExtensionStageInstanceId": S, "stage": "assignmentRequestCreated"}}});
        let mut with_status = callout.clone();
        with_status["operationStatus"] = json!("completed");
        for body in [callout, with_status] {
            let bytes = body.to_string().into_bytes();
            assert!(
                !matches!(fast::read(&bytes).map(Fields::validate), Some(Ok(_))),
                "{body}"
            );
            assert!(
                !matches!(Resume::parse(&bytes), Ok(Resume::Task(_))),
                "{body}"
            );
        }
        // A callout typed as an access-package one but carrying a Lifecycle Workflows path is
        // mangled: the fast reading could take it as a task, the dispatch leaves it to the
        // complete readers, which refuse it (found by the `fast_path_agrees` property).
        let sample: serde_json::Value = serde_json::from_slice(sample).unwrap();
        let mut typed = sample.clone();
        typed["callout"]["data"]["@odata.type"] =
            json!("#microsoft.graph.accessPackageAssignmentRequestCalloutData");
        let bytes = typed.to_string().into_bytes();
        let e = Resume::parse(&bytes).unwrap_err();
        assert_eq!(Err(e.clone()), Resume::parse_complete(&bytes));
        assert_eq!(e.field_name(), Some("operationStatus"));
        // Lifecycle Workflows refusals are unchanged.
        let e = Resume::parse(br#"{"operationStatus":"done"}"#).unwrap_err();
        assert_eq!(e.field_name(), Some("operationStatus"));
    }

    #[test]
    fn keys_tell_stage_instances_apart_and_end_with_a_guid() {
        let a = em("assignmentRequestCreated", S).target();
        let b = em("assignmentRequestGranted", A).target();
        assert_ne!(a.key(), b.key());
        assert_eq!(a.key(), em("AssignmentRequestCreated", S).target().key());
        assert!(a.key().ends_with(S), "{}", a.key());
        assert_eq!(a.verdict(), "continue");
        assert_eq!(
            a.path(),
            format!("/identityGovernance/entitlementManagement/assignmentRequests/{A}/resume")
        );
        assert!(a.describe().contains(S) && a.describe().contains(A));
    }
}
