//! Which Graph resume action to call, as a path relative to the Graph version root.
//!
//! A `callbackUriPath` comes from the caller, and the gateway calls it with a privileged
//! identity, so it is parsed against a closed grammar: only the navigation paths under which
//! Graph exposes `taskProcessingResult: resume`, with GUIDs (or a version number) where ids go.
//! Everything else (absolute URLs, `//host`, `..`, percent-encoding, queries, other Graph
//! resources) is refused, so the gateway cannot be used to call arbitrary Graph endpoints.
//!
//! Entitlement Management's resume has its own, smaller grammar beside it
//! ([`AssignmentRequestPath`]): the one contained path to an `accessPackageAssignmentRequest`.

use crate::request::echo;
use crate::request::ids::Guid;

const MAX_PATH_LEN: usize = 1024;
const SHORT_ACTION: &str = "resume";
const QUALIFIED_ACTION: &str = "microsoft.graph.identityGovernance.resume";
/// Entitlement Management's resume is bound in the `microsoft.graph` namespace (the metadata's
/// `resume` action on `accessPackageAssignmentRequest`), hence the SDKs' spelling.
const QUALIFIED_ACCESS_PACKAGE_ACTION: &str = "microsoft.graph.resume";
/// The collection Graph v1.0 contains assignment requests in; beta also has the older
/// `accessPackageAssignmentRequests`, which the docs say will be retired.
const ASSIGNMENT_REQUESTS: &str = "assignmentRequests";
const BETA_ASSIGNMENT_REQUESTS: &str = "accessPackageAssignmentRequests";
const LIFECYCLE_ONLY: &str =
    "only Lifecycle Workflows taskProcessingResults resume paths are accepted";
const ACCESS_PACKAGE_ONLY: &str =
    "only /identityGovernance/entitlementManagement/assignmentRequests/{id}/resume is accepted";

/// A validated resume target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeTarget {
    /// Canonical path, e.g. `/identityGovernance/lifecycleWorkflows/workflows/{w}/tasks/{t}/taskProcessingResults/{r}/resume`.
    pub path: String,
    pub workflow_id: Guid,
    pub run_id: Option<Guid>,
    pub task_id: Option<Guid>,
    pub result_id: Guid,
}

/// Why a `callbackUriPath` was refused, in words for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PathError(pub String);

impl ResumeTarget {
    /// The target Lifecycle Workflows documents for a task: workflow, task and result ids.
    pub fn from_ids(workflow_id: Guid, task_id: Guid, result_id: Guid) -> Self {
        let path = format!(
            "/identityGovernance/lifecycleWorkflows/workflows/{workflow_id}/tasks/{task_id}/taskProcessingResults/{result_id}/{SHORT_ACTION}"
        );
        Self {
            path,
            workflow_id,
            run_id: None,
            task_id: Some(task_id),
            result_id,
        }
    }

    /// The taskProcessingResult itself: the canonical path without its action segment, where
    /// Graph answers a GET for it. Both action spellings give the same result path, so this
    /// also names the target when requests are compared.
    pub fn result_path(&self) -> &str {
        // Every target's path ends with `/{action}`, so the last '/' starts it.
        self.path
            .rfind('/')
            .map_or(self.path.as_str(), |end| &self.path[..end])
    }

    /// Parses a `callbackUriPath` (as a Lifecycle Workflows callout carries it) into a target.
    /// Segment names match in any case and come out in Graph's casing; GUIDs come out lower-case.
    pub fn parse(path: &str) -> Result<Self, PathError> {
        let segments = segments(path, "/identityGovernance/lifecycleWorkflows/")?;
        Cursor::new(&segments, LIFECYCLE_ONLY).target()
    }
}

/// An access-package assignment request's resume action (Entitlement Management), as a path
/// relative to the Graph version root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentRequestPath {
    /// Canonical path: `/identityGovernance/entitlementManagement/assignmentRequests/{id}/resume`
    /// (or the qualified action, when that was given).
    pub path: String,
    pub request_id: Guid,
}

impl AssignmentRequestPath {
    /// The path of the resume action on assignment request `request_id`.
    pub fn from_id(request_id: Guid) -> Self {
        Self {
            path: format!(
                "/identityGovernance/entitlementManagement/{ASSIGNMENT_REQUESTS}/{request_id}/{SHORT_ACTION}"
            ),
            request_id,
        }
    }

    /// The assignment request itself (where Graph answers a GET): the path without its action.
    pub fn request_path(&self) -> &str {
        self.path
            .rfind('/')
            .map_or(self.path.as_str(), |end| &self.path[..end])
    }

    /// Whether `path` claims to be an Entitlement Management path (any case), valid or not:
    /// such a path is judged by this grammar, with its words.
    pub fn claims(path: &str) -> bool {
        const ROOT: &str = "/identityGovernance/entitlementManagement/";
        path.get(..ROOT.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(ROOT))
    }

    /// Parses a `callbackUriPath` of an access-package callout. The beta collection name is
    /// accepted and sent as `assignmentRequests`, which both versions have.
    pub fn parse(path: &str) -> Result<Self, PathError> {
        let segments = segments(path, "/identityGovernance/entitlementManagement/")?;
        let mut c = Cursor::new(&segments, ACCESS_PACKAGE_ONLY);
        c.literal("identityGovernance")?;
        c.literal("entitlementManagement")?;
        if c.peek()
            .is_some_and(|s| s.eq_ignore_ascii_case(BETA_ASSIGNMENT_REQUESTS))
        {
            c.push(ASSIGNMENT_REQUESTS);
        } else {
            c.literal(ASSIGNMENT_REQUESTS)?;
        }
        let request_id = c.guid("assignment request id")?;
        if !(c.optional(SHORT_ACTION) || c.optional(QUALIFIED_ACCESS_PACKAGE_ACTION)) {
            return Err(c.unexpected(&format!(
                "{SHORT_ACTION} or {QUALIFIED_ACCESS_PACKAGE_ACTION}"
            )));
        }
        c.end()?;
        Ok(Self {
            path: c.canonical,
            request_id,
        })
    }
}

/// The checks every resume path passes before its grammar: length, characters, no empty, `.`
/// or `..` segment, no API version. `root` is named when the path is not relative.
fn segments<'a>(path: &'a str, root: &str) -> Result<Vec<&'a str>, PathError> {
    if path.len() > MAX_PATH_LEN {
        return Err(PathError(format!(
            "is {} bytes long; a resume path is at most {MAX_PATH_LEN}",
            path.len()
        )));
    }
    if !path.starts_with('/') || path.starts_with("//") {
        return Err(PathError(format!(
            "must be a path relative to Graph, starting with {root} (no scheme, host or API version)"
        )));
    }
    // Bytes, not chars: every allowed character is ASCII, so the first byte refused starts
    // the character to name.
    if let Some(at) = path
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.')))
    {
        let c = path[at..].chars().next().unwrap_or_default();
        return Err(PathError(format!(
            "contains {c:?}; only letters, digits, '-', '.' and '/' can appear (no percent-encoding, query, fragment or spaces)"
        )));
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(PathError(
            "contains an empty segment ('//' or a trailing '/')".into(),
        ));
    }
    if segments.iter().any(|s| *s == "." || *s == "..") {
        return Err(PathError("contains a '.' or '..' segment".into()));
    }
    if ["v1.0", "beta"]
        .iter()
        .any(|v| segments[0].eq_ignore_ascii_case(v))
    {
        return Err(PathError(format!(
            "starts with the API version /{}; send the path without it, the gateway adds GRAPH_API_VERSION",
            segments[0]
        )));
    }
    Ok(segments)
}

/// Walks the segments, writing the canonical path as it goes.
struct Cursor<'a> {
    segments: &'a [&'a str],
    at: usize,
    canonical: String,
    /// What the grammar accepts, in words for a refusal.
    accepted: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(segments: &'a [&'a str], accepted: &'static str) -> Self {
        Self {
            segments,
            at: 0,
            canonical: String::with_capacity(200),
            accepted,
        }
    }

    fn target(mut self) -> Result<ResumeTarget, PathError> {
        self.literal("identityGovernance")?;
        self.literal("lifecycleWorkflows")?;
        self.optional("deletedItems");
        self.literal("workflows")?;
        let workflow_id = self.guid("workflow id")?;
        let (mut run_id, mut task_id) = (None, None);
        if self.optional("tasks") {
            task_id = Some(self.guid("task id")?);
        } else if self.optional("versions") {
            self.version_number()?;
            self.literal("tasks")?;
            task_id = Some(self.guid("task id")?);
        } else if self.optional("runs") {
            run_id = Some(self.guid("run id")?);
            if self.optional("userProcessingResults") {
                self.guid("user processing result id")?;
            }
        } else if self.optional("userProcessingResults") {
            self.guid("user processing result id")?;
        } else if self.optional("taskReports") {
            self.guid("task report id")?;
        } else {
            return Err(
                self.unexpected("tasks, versions, runs, userProcessingResults or taskReports")
            );
        }
        self.literal("taskProcessingResults")?;
        let result_id = self.guid("task processing result id")?;
        if !(self.optional(SHORT_ACTION) || self.optional(QUALIFIED_ACTION)) {
            return Err(self.unexpected(&format!("{SHORT_ACTION} or {QUALIFIED_ACTION}")));
        }
        self.end()?;
        Ok(ResumeTarget {
            path: self.canonical,
            workflow_id,
            run_id,
            task_id,
            result_id,
        })
    }

    fn end(&self) -> Result<(), PathError> {
        if self.at < self.segments.len() {
            return Err(PathError(format!(
                "continues after the resume action with /{}; the path must end with it",
                self.segments[self.at..].join("/")
            )));
        }
        Ok(())
    }

    fn peek(&self) -> Option<&'a str> {
        self.segments.get(self.at).copied()
    }

    fn push(&mut self, segment: &str) {
        self.canonical.push('/');
        self.canonical.push_str(segment);
        self.at += 1;
    }

    fn optional(&mut self, name: &str) -> bool {
        let hit = self.peek().is_some_and(|s| s.eq_ignore_ascii_case(name));
        if hit {
            self.push(name);
        }
        hit
    }

    fn literal(&mut self, name: &str) -> Result<(), PathError> {
        if self.optional(name) {
            Ok(())
        } else {
            Err(self.unexpected(name))
        }
    }

    fn guid(&mut self, what: &str) -> Result<Guid, PathError> {
        let segment = self
            .peek()
            .ok_or_else(|| self.unexpected(&format!("a {what}")))?;
        let guid = Guid::parse(segment).ok_or_else(|| {
            PathError(format!(
                "has {} after {} where a {what} (a GUID) belongs",
                echo::quoted(segment),
                self.where_()
            ))
        })?;
        self.push(guid.as_str());
        Ok(guid)
    }

    fn version_number(&mut self) -> Result<(), PathError> {
        match self.peek() {
            Some(s) if !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit()) => {
                let n: u32 = s.parse().unwrap_or(0);
                self.push(&n.to_string());
                Ok(())
            }
            _ => Err(self.unexpected("a workflow version number")),
        }
    }

    fn where_(&self) -> String {
        if self.canonical.is_empty() {
            "the start".into()
        } else {
            format!("{:?}", self.canonical)
        }
    }

    fn unexpected(&self, expected: &str) -> PathError {
        match self.peek() {
            Some(found) => PathError(format!(
                "has {} after {} where {expected} belongs; {}",
                echo::quoted(found),
                self.where_(),
                self.accepted
            )),
            None => PathError(format!(
                "ends after {} where {expected} belongs",
                self.where_()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: &str = "156bd1a0-5d7c-4b38-a8c9-1d0f7c2a9e11";
    const T: &str = "2a9e1156-bd1a-4d7c-8b38-a8c91d0f7c2a";
    const R: &str = "7c2a9e11-56bd-41a0-9d7c-4b38a8c91d0f";
    const RUN: &str = "0f7c2a9e-1156-4bd1-a05d-7c4b38a8c91d";

    fn base() -> String {
        format!("/identityGovernance/lifecycleWorkflows/workflows/{W}")
    }

    #[test]
    fn task_path_gives_all_ids() {
        let p = format!("{}/tasks/{T}/taskProcessingResults/{R}/resume", base());
        let t = ResumeTarget::parse(&p).unwrap();
        assert_eq!(t.path, p);
        assert_eq!(t.workflow_id.as_str(), W);
        assert_eq!(t.task_id.as_ref().unwrap().as_str(), T);
        assert_eq!(t.result_id.as_str(), R);
        assert_eq!(
            t,
            ResumeTarget::from_ids(
                t.workflow_id.clone(),
                Guid::parse(T).unwrap(),
                Guid::parse(R).unwrap()
            )
        );
    }

    #[test]
    fn every_navigation_graph_documents_is_accepted() {
        let tails = [
            format!("tasks/{T}"),
            format!("versions/3/tasks/{T}"),
            format!("runs/{RUN}"),
            format!("runs/{RUN}/userProcessingResults/{T}"),
            format!("userProcessingResults/{T}"),
            format!("taskReports/{T}"),
        ];
        for deleted in [false, true] {
            for tail in &tails {
                for action in [SHORT_ACTION, QUALIFIED_ACTION] {
                    let root = if deleted {
                        format!("/identityGovernance/lifecycleWorkflows/deletedItems/workflows/{W}")
                    } else {
                        base()
                    };
                    let p = format!("{root}/{tail}/taskProcessingResults/{R}/{action}");
                    let t = ResumeTarget::parse(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
                    assert_eq!(t.path, p);
                    assert_eq!(t.result_id.as_str(), R);
                }
            }
        }
    }

    #[test]
    fn the_result_path_drops_only_the_action() {
        let result = format!("{}/runs/{RUN}/taskProcessingResults/{R}", base());
        for action in [SHORT_ACTION, QUALIFIED_ACTION] {
            let t = ResumeTarget::parse(&format!("{result}/{action}")).unwrap();
            assert_eq!(t.result_path(), result);
        }
        let t = ResumeTarget::from_ids(
            Guid::parse(W).unwrap(),
            Guid::parse(T).unwrap(),
            Guid::parse(R).unwrap(),
        );
        assert_eq!(
            t.result_path(),
            format!("{}/tasks/{T}/taskProcessingResults/{R}", base())
        );
    }

    #[test]
    fn run_id_is_kept() {
        let p = format!("{}/runs/{RUN}/taskProcessingResults/{R}/resume", base());
        assert_eq!(
            ResumeTarget::parse(&p).unwrap().run_id.unwrap().as_str(),
            RUN
        );
    }

    #[test]
    fn case_is_normalised() {
        let p = format!(
            "/IDENTITYGOVERNANCE/lifecycleworkflows/Workflows/{}/TASKS/{T}/taskprocessingresults/{R}/Resume",
            W.to_uppercase()
        );
        let t = ResumeTarget::parse(&p).unwrap();
        assert_eq!(
            t.path,
            format!("{}/tasks/{T}/taskProcessingResults/{R}/resume", base())
        );
    }

    #[test]
    fn everything_else_is_refused() {
        let good = format!("{}/tasks/{T}/taskProcessingResults/{R}/resume", base());
        let bad = [
            format!("https://graph.microsoft.com/beta{good}"),
            format!("//evil.example.com{good}"),
            format!("/beta{good}"),
            format!("/v1.0{good}"),
            format!("{good}?x=1"),
            format!("{good}#x"),
            format!("{good}/"),
            format!("{good}/extra"),
            good.replace("/tasks/", "/tasks/../"),
            good.replace("/tasks/", "/./tasks/"),
            good.replace("/tasks/", "/tasks%2F"),
            good.replace("/tasks/", "//tasks/"),
            good.replace("resume", "activate"),
            good.replace(T, "not-a-guid"),
            good.replace(&format!("/taskProcessingResults/{R}"), ""),
            format!("/users/{W}"),
            format!(
                "/identityGovernance/lifecycleWorkflows/workflows/{W}/runs/{RUN}/userProcessingResults/{T}/subject/resume"
            ),
            format!(
                "/identityGovernance/lifecycleWorkflows/customTaskExtensions/{W}/taskProcessingResults/{R}/resume"
            ),
            format!(
                "/identityGovernance/lifecycleWorkflows/workflows/{W}/versions/x/tasks/{T}/taskProcessingResults/{R}/resume"
            ),
            format!(
                "/identityGovernance/lifecycleWorkflows/workflows/{W}/tasks/{T}/taskProcessingResults/{R}/resume\n"
            ),
            format!("{good} "),
            "/".into(),
            "".into(),
            "/".repeat(2000),
        ];
        for p in bad {
            assert!(ResumeTarget::parse(&p).is_err(), "accepted {p:?}");
        }
    }

    #[test]
    fn errors_say_where_and_what() {
        let e = ResumeTarget::parse("/identityGovernance/lifecycleWorkflows/users/x").unwrap_err();
        assert!(e.0.contains("\"users\""), "{e}");
        assert!(e.0.contains("workflows"), "{e}");
        let e = ResumeTarget::parse(&format!("/beta{}", base())).unwrap_err();
        assert!(e.0.contains("GRAPH_API_VERSION"), "{e}");
        let e = ResumeTarget::parse(&format!("{}/tasks/nope", base())).unwrap_err();
        assert!(e.0.contains("task id (a GUID)"), "{e}");
        // The character refused is named whole, even when it is not ASCII.
        let e = ResumeTarget::parse(&format!("{}/tasks/é{}", base(), "x")).unwrap_err();
        assert!(e.0.starts_with("contains 'é';"), "{e}");
        let e = ResumeTarget::parse(&format!("/BETA{}", base())).unwrap_err();
        assert!(e.0.contains("/BETA;"), "{e}");
    }

    #[test]
    fn only_paths_over_the_length_limit_are_refused_for_their_length() {
        let good = format!("{}/tasks/{T}/taskProcessingResults/{R}/resume", base());
        let padded = |len: usize| format!("{good}/{}", "a".repeat(len - good.len() - 1));
        let e = ResumeTarget::parse(&padded(MAX_PATH_LEN + 1)).unwrap_err();
        assert!(e.0.starts_with("is 1025 bytes long; "), "{e}");
        let e = ResumeTarget::parse(&"/".repeat(2000)).unwrap_err();
        assert!(e.0.starts_with("is 2000 bytes long; "), "{e}");
        // At the limit the grammar decides (and names what follows the action).
        let e = ResumeTarget::parse(&padded(MAX_PATH_LEN)).unwrap_err();
        assert!(e.0.starts_with("continues after the resume action"), "{e}");
    }

    #[test]
    fn urls_hosts_and_dot_segments_are_refused_for_what_they_are() {
        let good = format!("{}/tasks/{T}/taskProcessingResults/{R}/resume", base());
        for not_relative in [
            format!("//evil.example.com{good}"),
            format!("https://graph.microsoft.com/beta{good}"),
        ] {
            let e = ResumeTarget::parse(&not_relative).unwrap_err();
            assert!(e.0.starts_with("must be a path relative to Graph"), "{e}");
        }
        for dots in ["/../", "/./"] {
            let e = ResumeTarget::parse(&good.replace("/tasks/", &format!("/tasks{dots}")))
                .unwrap_err();
            assert_eq!(e.0, "contains a '.' or '..' segment");
        }
    }

    #[test]
    fn errors_name_the_canonical_path_read_so_far() {
        let e = ResumeTarget::parse("/identityGovernance/lifecycleWorkflows/users/x").unwrap_err();
        assert!(
            e.0.starts_with(
                "has \"users\" after \"/identityGovernance/lifecycleWorkflows\" where workflows belongs"
            ),
            "{e}"
        );
        let e = ResumeTarget::parse("/users/x").unwrap_err();
        assert!(
            e.0.starts_with("has \"users\" after the start where identityGovernance belongs"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod access_package_tests {
    use super::*;

    const A: &str = "0e60f18c-b2a0-4887-9da8-da2e30a39d99";

    fn good() -> String {
        format!("/identityGovernance/entitlementManagement/assignmentRequests/{A}/resume")
    }

    #[test]
    fn the_assignment_request_path_and_its_spellings() {
        let p = AssignmentRequestPath::parse(&good()).unwrap();
        assert_eq!(p.path, good());
        assert_eq!(p.request_id.as_str(), A);
        assert_eq!(p, AssignmentRequestPath::from_id(Guid::parse(A).unwrap()));
        assert_eq!(
            p.request_path(),
            format!("/identityGovernance/entitlementManagement/assignmentRequests/{A}")
        );
        // The SDKs' qualified action is kept; the beta collection goes out as v1.0's, which
        // beta also has; case and GUID case are normalised.
        let qualified = good().replace("/resume", "/microsoft.graph.resume");
        assert_eq!(
            AssignmentRequestPath::parse(&qualified).unwrap().path,
            qualified
        );
        let beta = format!(
            "/IdentityGovernance/EntitlementManagement/AccessPackageAssignmentRequests/{}/Resume",
            A.to_uppercase()
        );
        assert_eq!(AssignmentRequestPath::parse(&beta).unwrap().path, good());
    }

    #[test]
    fn everything_else_under_entitlement_management_is_refused() {
        let bad = [
            format!("https://graph.microsoft.com/v1.0{}", good()),
            format!("/v1.0{}", good()),
            format!("/beta{}", good()),
            format!("{}?x=1", good()),
            format!("{}/", good()),
            format!("{}/extra", good()),
            good().replace("/resume", "/cancel"),
            good().replace("/resume", "/reprocess"),
            good().replace("/resume", "/microsoft.graph.identityGovernance.resume"),
            good().replace("/resume", ""),
            good().replace(A, "not-a-guid"),
            good().replace("assignmentRequests", "assignments"),
            good().replace("assignmentRequests", "accessPackages"),
            good().replace("assignmentRequests/", "assignmentRequests/../"),
            good().replace("assignmentRequests/", "assignmentRequests%2F"),
            format!("/identityGovernance/entitlementManagement/catalogs/{A}/resume"),
            format!(
                "/identityGovernance/entitlementManagement/assignmentRequests/{A}/requestor/resume"
            ),
            "/identityGovernance/entitlementManagement/".into(),
            "".into(),
        ];
        for p in bad {
            assert!(AssignmentRequestPath::parse(&p).is_err(), "accepted {p:?}");
        }
        let e = AssignmentRequestPath::parse(&good().replace("/resume", "/cancel")).unwrap_err();
        assert!(e.0.contains("\"cancel\""), "{e}");
        assert!(e.0.contains("assignmentRequests/{id}/resume"), "{e}");
        // A Lifecycle Workflows path is not one of these, and the reverse.
        let lw = format!(
            "/identityGovernance/lifecycleWorkflows/workflows/{A}/tasks/{A}/taskProcessingResults/{A}/resume"
        );
        assert!(AssignmentRequestPath::parse(&lw).is_err());
        assert!(ResumeTarget::parse(&good()).is_err());
    }

    #[test]
    fn claims_only_entitlement_management_paths() {
        assert!(AssignmentRequestPath::claims(&good()));
        assert!(AssignmentRequestPath::claims(
            "/IDENTITYGOVERNANCE/entitlementmanagement/x"
        ));
        assert!(!AssignmentRequestPath::claims(
            "/identityGovernance/lifecycleWorkflows/x"
        ));
        assert!(!AssignmentRequestPath::claims(
            "/identityGovernance/entitlementManagement"
        ));
        assert!(!AssignmentRequestPath::claims("é"));
    }
}
