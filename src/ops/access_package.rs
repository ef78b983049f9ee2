//! Entitlement Management in the operator commands: `handler check` for an access-package
//! custom extension and an assignment request's callout instances, and `handler pending`'s
//! answer that Graph offers no filter for requests waiting on a callback.
//!
//! Graph calls: `GET …/entitlementManagement/catalogs/{catalog}/customWorkflowExtensions/{id}`
//! (graph-docs-contrib `accesspackageassignmentrequestworkflowextension-get.md`) and
//! `GET …/entitlementManagement/assignmentRequests/{id}?$select=id,state,customExtensionCalloutInstances`,
//! both readable with `EntitlementManagement.Read.All` or a catalog role.

use serde_json::Value;

use super::check::{Check, Status};
use crate::config::Config;
use crate::graph::{GetError, GraphClient};
use crate::identity::{
    ACCESS_PACKAGE_WRITE_PERMISSION, GraphToken, TokenIdentity, ways_to_allow_access_package_resume,
};
use crate::request::ids::Guid;

const ENTITLEMENT: &str = "/identityGovernance/entitlementManagement";
/// Reads extensions and assignment requests.
const READ_PERMISSION: &str = "EntitlementManagement.Read.All";

/// What `handler pending` says when asked for access-package requests.
pub(crate) const NO_PENDING_FILTER: &str = "Graph offers no filter for access package assignment requests waiting on a custom extension's callback: \
     the waiting is recorded in each request's customExtensionCalloutInstances (status waitingForCallback), a collection the \
     list of assignment requests is not documented to filter on, and listing every request in the tenant to look would page \
     through all current and expired requests. Look at one request with `handler check --assignment-request <id>`, or find \
     the waiting runs in the Logic App's run history.";

/// The access-package checks `handler check` was asked for.
#[derive(Debug, Default)]
pub(crate) struct Asked<'a> {
    /// A catalog's custom extension: (catalog id, extension id).
    pub extension: Option<(&'a Guid, &'a Guid)>,
    pub assignment_request: Option<&'a Guid>,
}

impl Asked<'_> {
    fn any(&self) -> bool {
        self.extension.is_some() || self.assignment_request.is_some()
    }
}

/// The access-package lines of the checklist (none when none were asked for).
pub(crate) async fn checks(
    graph: &GraphClient,
    config: &Config,
    token: Option<&GraphToken>,
    asked: &Asked<'_>,
) -> Vec<Check> {
    if !asked.any() {
        return Vec::new();
    }
    let Some(token) = token else {
        return ["access-package permission", "access-package extension"]
            .map(|name| Check::new(name, Status::Skip, "needs a token"))
            .into();
    };
    let mut checks = vec![permission(&token.identity)];
    let deadline = || tokio::time::Instant::now() + config.deadline;
    if let Some((catalog, extension)) = asked.extension {
        let url = graph.url(&format!(
            "{ENTITLEMENT}/catalogs/{catalog}/customWorkflowExtensions/{extension}"
        ));
        checks.push(
            match graph.get_retrying(&url, token.secret(), deadline()).await {
                Ok(read) => extension_check(&read.body, extension),
                Err(e) => read_failed("access-package extension", &e, "the catalog and extension ids (Entra admin center → Identity Governance → Catalogs → the catalog → Custom extensions)"),
            },
        );
    }
    if let Some(request) = asked.assignment_request {
        let url = graph.url(&format!(
            "{ENTITLEMENT}/assignmentRequests/{request}?$select=id,state,status,customExtensionCalloutInstances"
        ));
        checks.push(
            match graph.get_retrying(&url, token.secret(), deadline()).await {
                Ok(read) => request_check(&read.body, request),
                Err(e) => read_failed(
                    "assignment request",
                    &e,
                    "the assignment request id (the callout's accessPackageAssignmentRequestId)",
                ),
            },
        );
    }
    checks
}

/// Resuming needs the application permission or a catalog role; the token shows only the
/// former, so its absence is a warning, not a failure.
fn permission(id: &TokenIdentity) -> Check {
    let app = id.app_id.as_deref().unwrap_or("<application id>");
    if id.has_role(ACCESS_PACKAGE_WRITE_PERMISSION) {
        return Check::new(
            "access-package permission",
            Status::Pass,
            format!(
                "the token carries {ACCESS_PACKAGE_WRITE_PERMISSION}: it may resume any access-package request"
            ),
        );
    }
    Check::new(
        "access-package permission",
        Status::Warn,
        format!(
            "{}; a catalog role (Access package assignment manager) also allows the resume, and a token does not show it",
            id.roles_lacking(ACCESS_PACKAGE_WRITE_PERMISSION)
        ),
    )
    .remedy(format!(
        "Unless {app} holds that role on the catalog, allow it, either way: {}.",
        ways_to_allow_access_package_resume(app)
    ))
}

/// A launch-and-wait extension has a `callbackConfiguration` with a `timeoutDuration`; a
/// fire-and-forget one has none and never waits for a resume.
fn extension_check(body: &Value, id: &Guid) -> Check {
    let kind = body
        .get("@odata.type")
        .and_then(Value::as_str)
        .unwrap_or("(no @odata.type)")
        .trim_start_matches('#');
    let timeout = body
        .pointer("/callbackConfiguration/timeoutDuration")
        .and_then(Value::as_str);
    let logic_app = body
        .pointer("/endpointConfiguration/logicAppWorkflowName")
        .and_then(Value::as_str)
        .unwrap_or("(not named)");
    match timeout {
        Some(timeout) => Check::new(
            "access-package extension",
            Status::Pass,
            format!(
                "extension {id} ({kind}) calls Logic App {logic_app} and waits up to {timeout} for a resume; \
                 it records no apps allowed to resume (no authorizedApps), so CALLER_SCOPE=extension refuses its resumes"
            ),
        ),
        None => Check::new(
            "access-package extension",
            Status::Warn,
            format!("extension {id} ({kind}) calls Logic App {logic_app} and does not wait (no callbackConfiguration): nothing to resume"),
        )
        .remedy("Only a launch-and-wait extension pauses the request; set Launch and wait (Entra admin center → the catalog → Custom extensions → the extension → Extension configuration)."),
    }
}

/// The request's callout instances: which wait, and with what status.
fn request_check(body: &Value, id: &Guid) -> Check {
    let instances = body
        .get("customExtensionCalloutInstances")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
    let listed: Vec<String> = instances
        .iter()
        .map(|i| {
            format!(
                "{} {} (extension {})",
                text(i, "id"),
                text(i, "status"),
                text(i, "customExtensionId")
            )
        })
        .collect();
    let waiting = instances
        .iter()
        .any(|i| i.get("status").and_then(Value::as_str) == Some("waitingForCallback"));
    let state = text(body, "state");
    let detail = if listed.is_empty() {
        format!("assignment request {id} ({state}) has no custom extension callout instances")
    } else {
        format!(
            "assignment request {id} ({state}) callout instances: {}",
            listed.join("; ")
        )
    };
    if waiting {
        Check::new("assignment request", Status::Pass, detail).remedy(format!(
            "It waits: resume it with handler resume --assignment-request {id} --stage-instance <the waiting instance id> --stage <its stage>."
        ))
    } else {
        Check::new(
            "assignment request",
            Status::Warn,
            format!("{detail}; none waits for a callback"),
        )
    }
}

fn read_failed(name: &'static str, e: &GetError, ids: &str) -> Check {
    match e {
        GetError::Refused(f) if matches!(f.status, Some(401 | 403)) => Check::new(
            name,
            Status::Fail,
            format!("the identity may not read it ({e})"),
        )
        .remedy(format!(
            "Grant the identity {READ_PERMISSION} (or the catalog role Catalog reader) to read it."
        )),
        GetError::Refused(f) if f.status == Some(404) => {
            Check::new(name, Status::Fail, format!("Graph does not know it ({e})"))
                .remedy(format!("Check {ids}."))
        }
        _ => Check::new(name, Status::Fail, format!("could not read it: {e}"))
            .remedy("Run the check again; if Graph keeps failing, check its service health."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn guid() -> Guid {
        Guid::parse("0e60f18c-b2a0-4887-9da8-da2e30a39d99").unwrap()
    }

    #[test]
    fn launch_and_wait_passes_and_fire_and_forget_warns() {
        let waits = json!({"@odata.type": "#microsoft.graph.accessPackageAssignmentRequestWorkflowExtension",
            "callbackConfiguration": {"timeoutDuration": "PT1H"}, "endpointConfiguration": {"logicAppWorkflowName": "la-sod"}});
        let c = extension_check(&waits, &guid());
        assert_eq!(c.status, Status::Pass);
        assert!(
            c.detail.contains("PT1H") && c.detail.contains("la-sod"),
            "{}",
            c.detail
        );
        let fire =
            json!({"@odata.type": "#microsoft.graph.accessPackageAssignmentWorkflowExtension"});
        assert_eq!(extension_check(&fire, &guid()).status, Status::Warn);
    }

    #[test]
    fn a_waiting_instance_is_named() {
        let body = json!({"state": "submitted", "customExtensionCalloutInstances": [
            {"id": "957d0c50-466b-4840-bb5b-c92cea7141ff", "status": "waitingForCallback", "customExtensionId": "x"}]});
        let c = request_check(&body, &guid());
        assert_eq!(c.status, Status::Pass);
        assert!(
            c.detail
                .contains("957d0c50-466b-4840-bb5b-c92cea7141ff waitingForCallback")
        );
        assert!(c.remedy.unwrap().contains("--stage-instance"));
        let done =
            json!({"customExtensionCalloutInstances": [{"id": "a", "status": "callbackReceived"}]});
        assert_eq!(request_check(&done, &guid()).status, Status::Warn);
    }

    #[test]
    fn the_permission_or_a_warning_naming_the_role() {
        let with = TokenIdentity {
            roles: vec![ACCESS_PACKAGE_WRITE_PERMISSION.into()],
            ..TokenIdentity::default()
        };
        assert_eq!(permission(&with).status, Status::Pass);
        let c = permission(&TokenIdentity::default());
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.remedy
                .unwrap()
                .contains("Access package assignment manager")
        );
    }
}
