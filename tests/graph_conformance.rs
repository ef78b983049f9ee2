//! The gateway against Graph's published metadata, not against a hand-written list.
//!
//! `tests/fixtures/graph-v1.0-governance.csdl.xml` is an excerpt of Microsoft Graph's v1.0
//! CSDL (its first lines say where it comes from). From it, for each resume action the gateway
//! calls (one row of [`ACTIONS`]):
//! (a) every body the gateway can send uses only the action's declared parameters, and inside
//!     them only declared properties, with enum values that are members;
//! (b) every containment path from `/identityGovernance` to the action's binding type, with the
//!     short and the namespace-qualified action segment, is accepted by the gateway's path
//!     grammar, unless the row refuses it on purpose and says why;
//! (c) nothing else is accepted: every other containment path the metadata yields, followed by
//!     any action it declares (or none), and every expected path with a key of the wrong kind.
//!
//! If Graph adds a path, (b) names it. Entitlement Management's `accessPackageAssignmentRequest`
//! resume is the second row; its `data` is declared as an abstract type, so (a) also holds a
//! body to naming a concrete type derived from it in `@odata.type`, and the row's own rule
//! holds `type` to the stage it resumes.

use std::collections::{BTreeMap, BTreeSet};

use resume_gateway::graph::{GraphBody, ResumeBody};
use resume_gateway::request::access_package::Stage;
use resume_gateway::request::path::{AssignmentRequestPath, ResumeTarget};
use resume_gateway::request::{OperationStatus, Resume};
use serde_json::Value;

const METADATA: &str = include_str!("fixtures/graph-v1.0-governance.csdl.xml");
const ROOT_SEGMENT: &str = "identityGovernance";
const ROOT_TYPE: &str = "microsoft.graph.identityGovernance";

/// A check of a whole body against the metadata.
type BodyRule = fn(&Metadata, &Value) -> Result<(), String>;

/// One resume action the gateway sends, and what it promises about it.
struct ActionRow {
    namespace: &'static str,
    name: &'static str,
    /// The bound type, which tells this action from a namesake in another namespace.
    binding: &'static str,
    /// Every body the gateway can send to it.
    bodies: fn() -> Vec<Value>,
    /// The gateway's grammar for paths to it.
    accepts: fn(&str) -> bool,
    /// Containment paths refused on purpose: a segment that marks them, and why.
    refused: &'static [(&'static str, &'static str)],
    /// How many containment paths the metadata has today; a change is named by the test.
    paths_today: usize,
    /// What the metadata cannot say about a body (a parameter's value that has to agree with
    /// another's), checked against it where it can.
    rule: Option<BodyRule>,
}

const ACTIONS: &[ActionRow] = &[
    ActionRow {
        namespace: "microsoft.graph.identityGovernance",
        name: "resume",
        binding: "microsoft.graph.identityGovernance.taskProcessingResult",
        bodies: lifecycle_bodies,
        accepts: |path| ResumeTarget::parse(path).is_ok(),
        refused: &[(
            "/workflowTemplates/",
            "a workflow template never runs, so none of its tasks waits for a resume; accepting it would only widen what the gateway's identity can be made to call",
        )],
        paths_today: 13,
        rule: None,
    },
    ActionRow {
        namespace: "microsoft.graph",
        name: "resume",
        binding: "microsoft.graph.accessPackageAssignmentRequest",
        bodies: access_package_bodies,
        accepts: |path| AssignmentRequestPath::parse(path).is_ok(),
        refused: &[],
        paths_today: 1,
        rule: Some(stage_rule),
    },
];

fn lifecycle_bodies() -> Vec<Value> {
    [OperationStatus::Completed, OperationStatus::Failed]
        .into_iter()
        .map(|status| serde_json::to_value(ResumeBody::new(status, "a-source".into())).unwrap())
        .collect()
}

/// Every access-package body: each stage continuing (with and without a detail), and the two
/// states at the one stage that takes them; built through the gateway's parser.
fn access_package_bodies() -> Vec<Value> {
    let mut requests = Vec::new();
    for stage in Stage::ALL {
        for detail in [None, Some("checked by the SoD service")] {
            let mut r = serde_json::json!({"assignmentRequestId": "0e60f18c-b2a0-4887-9da8-da2e30a39d99",
                "customExtensionStageInstanceId": "957d0c50-466b-4840-bb5b-c92cea7141ff", "stage": stage.as_str()});
            if let Some(d) = detail {
                r["detail"] = d.into();
            }
            requests.push(r);
        }
    }
    for state in ["denied", "Canceled"] {
        requests.push(serde_json::json!({"callbackUriPath": "/identityGovernance/entitlementManagement/assignmentRequests/0e60f18c-b2a0-4887-9da8-da2e30a39d99/resume",
            "customExtensionStageInstanceId": "957d0c50-466b-4840-bb5b-c92cea7141ff", "stage": "assignmentRequestCreated", "state": state}));
    }
    requests
        .into_iter()
        .map(|r| {
            let request = Resume::parse(r.to_string().as_bytes()).expect("a valid request");
            serde_json::to_value(GraphBody::new(&request, "a-source")).unwrap()
        })
        .collect()
}

/// `type` is `microsoft.graph.accessPackageCustomExtensionStage.<stage>` (the resume page's
/// list of values), for the stage `data` names, which is a member of that enum.
fn stage_rule(m: &Metadata, body: &Value) -> Result<(), String> {
    const ENUM: &str = "microsoft.graph.accessPackageCustomExtensionStage";
    let stage = body["data"]["stage"]
        .as_str()
        .ok_or("data.stage is missing")?;
    let kind = body["type"].as_str().ok_or("type is missing")?;
    let member = kind
        .strip_prefix(ENUM)
        .and_then(|m| m.strip_prefix('.'))
        .ok_or_else(|| format!("type {kind} does not name a member of {ENUM}"))?;
    if !m.enums[ENUM].contains(member) {
        return Err(format!("type names {member}, not a member of {ENUM}"));
    }
    if member != stage {
        return Err(format!("type names {member} but data.stage is {stage}"));
    }
    Ok(())
}

/// The excerpt names `graph.deletedItemContainer` as the type of `lifecycleWorkflows/deletedItems`
/// but leaves its definition out. Graph's v1.0 reference gives it one relationship, `workflows`
/// (a collection of `microsoft.graph.identityGovernance.workflow`), as the SDKs' path
/// `identityGovernance/lifecycleWorkflows/deletedItems/workflows/{id}` shows
/// (https://learn.microsoft.com/graph/api/resources/deleteditemcontainer?view=graph-rest-1.0).
/// Only used while the excerpt lacks the type; the test fails once it has it, so this goes.
const SUPPLEMENT_TYPE: &str = "microsoft.graph.deletedItemContainer";
const SUPPLEMENT_NAV: (&str, &str) = ("workflows", "microsoft.graph.identityGovernance.workflow");

/// Graph's base type `microsoft.graph.entity` (not in the excerpt) is keyed by `id`, a string.
const ENTITY_KEY_TYPE: &str = "Edm.String";

#[derive(Debug, Default)]
struct StructuredType {
    base: Option<String>,
    /// `Abstract="true"`: a value of it must name a concrete derived type in `@odata.type`.
    is_abstract: bool,
    key_type: Option<String>,
    properties: BTreeMap<String, String>,
    /// Contained navigation: name → (is a collection, target type).
    contained: BTreeMap<String, (bool, String)>,
}

#[derive(Debug)]
struct Action {
    namespace: String,
    name: String,
    binding: String,
    /// Parameter name → (type, nullable).
    parameters: BTreeMap<String, (String, bool)>,
}

#[derive(Debug, Default)]
struct Metadata {
    types: BTreeMap<String, StructuredType>,
    enums: BTreeMap<String, BTreeSet<String>>,
    actions: Vec<Action>,
}

/// `graph.x` → `microsoft.graph.x`; `Collection(T)` → (true, T).
fn type_ref(raw: &str) -> (bool, String) {
    let (collection, inner) = match raw.strip_prefix("Collection(") {
        Some(rest) => (true, rest.trim_end_matches(')')),
        None => (false, raw),
    };
    let full = match inner.strip_prefix("graph.") {
        Some(rest) => format!("microsoft.graph.{rest}"),
        None => inner.to_owned(),
    };
    (collection, full)
}

impl Metadata {
    fn parse(text: &str) -> Self {
        let doc = roxmltree::Document::parse(text).expect("the fixture is XML");
        let mut m = Self::default();
        for schema in doc
            .root_element()
            .children()
            .filter(|n| n.has_tag_name("Schema"))
        {
            let namespace = schema.attribute("Namespace").unwrap();
            for item in schema.children().filter(roxmltree::Node::is_element) {
                let name = item.attribute("Name").unwrap_or_default();
                let full = format!("{namespace}.{name}");
                match item.tag_name().name() {
                    "EntityType" | "ComplexType" => {
                        let mut t = StructuredType {
                            base: item.attribute("BaseType").map(|b| type_ref(b).1),
                            is_abstract: item.attribute("Abstract") == Some("true"),
                            ..Default::default()
                        };
                        let key: Vec<String> = item
                            .descendants()
                            .filter(|n| n.has_tag_name("PropertyRef"))
                            .map(|n| n.attribute("Name").unwrap().to_owned())
                            .collect();
                        for p in item.children().filter(roxmltree::Node::is_element) {
                            let pname = p.attribute("Name").unwrap_or_default().to_owned();
                            let ptype = p.attribute("Type").unwrap_or_default();
                            match p.tag_name().name() {
                                "Property" => {
                                    if key.contains(&pname) {
                                        t.key_type = Some(ptype.to_owned());
                                    }
                                    t.properties.insert(pname, type_ref(ptype).1);
                                }
                                "NavigationProperty"
                                    if p.attribute("ContainsTarget") == Some("true") =>
                                {
                                    t.contained.insert(pname, type_ref(ptype));
                                }
                                _ => {}
                            }
                        }
                        m.types.insert(full, t);
                    }
                    "EnumType" => {
                        let members = item
                            .children()
                            .filter(|n| n.has_tag_name("Member"))
                            .map(|n| n.attribute("Name").unwrap().to_owned())
                            .collect();
                        m.enums.insert(full, members);
                    }
                    "Action" if item.attribute("IsBound") == Some("true") => {
                        let mut parameters = BTreeMap::new();
                        let mut binding = String::new();
                        for p in item.children().filter(|n| n.has_tag_name("Parameter")) {
                            let pname = p.attribute("Name").unwrap();
                            let ptype = type_ref(p.attribute("Type").unwrap()).1;
                            if pname == "bindingParameter" {
                                binding = ptype;
                            } else {
                                let nullable = p.attribute("Nullable") != Some("false");
                                parameters.insert(pname.to_owned(), (ptype, nullable));
                            }
                        }
                        m.actions.push(Action {
                            namespace: namespace.to_owned(),
                            name: name.to_owned(),
                            binding,
                            parameters,
                        });
                    }
                    _ => {}
                }
            }
        }
        m
    }

    /// A type with its base types' members folded in, root first.
    fn chain(&self, name: &str) -> Vec<&StructuredType> {
        let mut chain = Vec::new();
        let mut next = Some(name.to_owned());
        while let Some(n) = next {
            let Some(t) = self.types.get(&n) else { break };
            chain.push(t);
            next = t.base.clone();
        }
        chain.reverse();
        chain
    }

    /// Whether `name` is `ancestor` or derives from it.
    fn derives(&self, name: &str, ancestor: &str) -> bool {
        let mut next = Some(name.to_owned());
        while let Some(n) = next {
            if n == ancestor {
                return true;
            }
            next = self.types.get(&n).and_then(|t| t.base.clone());
        }
        false
    }

    fn property_type(&self, owner: &str, property: &str) -> Option<String> {
        self.chain(owner)
            .iter()
            .rev()
            .find_map(|t| t.properties.get(property).cloned())
    }

    fn key_type(&self, name: &str) -> String {
        self.chain(name)
            .iter()
            .rev()
            .find_map(|t| t.key_type.clone())
            .unwrap_or_else(|| ENTITY_KEY_TYPE.to_owned())
    }

    fn contained(&self, name: &str) -> BTreeMap<String, (bool, String)> {
        let mut all = BTreeMap::new();
        for t in self.chain(name) {
            all.extend(t.contained.clone());
        }
        if name == SUPPLEMENT_TYPE && !self.types.contains_key(SUPPLEMENT_TYPE) {
            all.insert(
                SUPPLEMENT_NAV.0.to_owned(),
                (true, SUPPLEMENT_NAV.1.to_owned()),
            );
        }
        all
    }

    /// Every containment path from the root, as (path, type it ends at), to `depth` hops.
    /// Keys are filled with sample values of their kind: a GUID per string key (each
    /// distinct), `3` for an integer key.
    fn containment_paths(&self, depth: usize) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut counter = 0;
        self.walk(
            format!("/{ROOT_SEGMENT}"),
            ROOT_TYPE,
            depth,
            &mut vec![ROOT_TYPE.to_owned()],
            &mut counter,
            &mut out,
        );
        out
    }

    fn walk(
        &self,
        path: String,
        at: &str,
        depth: usize,
        seen: &mut Vec<String>,
        counter: &mut u32,
        out: &mut Vec<(String, String)>,
    ) {
        out.push((path.clone(), at.to_owned()));
        if depth == 0 {
            return;
        }
        for (nav, (collection, target)) in self.contained(at) {
            if seen.contains(&target) {
                continue;
            }
            let mut next = format!("{path}/{nav}");
            if collection {
                *counter += 1;
                next.push('/');
                next.push_str(&sample_key(&self.key_type(&target), *counter));
            }
            seen.push(target.clone());
            self.walk(next, &target, depth - 1, seen, counter, out);
            seen.pop();
        }
    }

    fn action(&self, row: &ActionRow) -> &Action {
        self.actions
            .iter()
            .find(|a| {
                a.namespace == row.namespace && a.name == row.name && a.binding == row.binding
            })
            .unwrap_or_else(|| {
                panic!(
                    "the metadata has no action {}.{} bound to {}",
                    row.namespace, row.name, row.binding
                )
            })
    }

    /// Checks `value` against the declared type `ty`; `at` names the place for the message.
    fn check_value(&self, at: &str, ty: &str, value: &Value) -> Result<(), String> {
        match ty {
            "Edm.String" => value
                .is_string()
                .then_some(())
                .ok_or_else(|| format!("{at} must be a string, is {value}")),
            _ if self.enums.contains_key(ty) => match value.as_str() {
                Some(v) if self.enums[ty].contains(v) => Ok(()),
                _ => Err(format!(
                    "{at} is {value}, not a member of {ty} ({:?})",
                    self.enums[ty]
                )),
            },
            _ if self.types.contains_key(ty) => {
                let Value::Object(object) = value else {
                    return Err(format!("{at} must be an object of {ty}, is {value}"));
                };
                // A derived type is named in `@odata.type` (with or without '#'); an abstract
                // declared type has no instances of its own, so it must be.
                let concrete = match object.get("@odata.type") {
                    None if self.types[ty].is_abstract => {
                        return Err(format!(
                            "{at} is declared as the abstract {ty}: it needs an @odata.type naming a concrete derived type"
                        ));
                    }
                    None => ty.to_owned(),
                    Some(Value::String(named)) => {
                        let named = named.trim_start_matches('#');
                        let usable = self.derives(named, ty)
                            && self.types.get(named).is_some_and(|t| !t.is_abstract);
                        if !usable {
                            return Err(format!(
                                "{at}.@odata.type {named} is not a concrete type derived from {ty}"
                            ));
                        }
                        named.to_owned()
                    }
                    Some(other) => {
                        return Err(format!("{at}.@odata.type must be a string, is {other}"));
                    }
                };
                for (name, inner) in object.iter().filter(|(n, _)| *n != "@odata.type") {
                    let inner_ty = self.property_type(&concrete, name).ok_or_else(|| {
                        format!("{at}.{name} is not declared on {concrete} (nor its base types)")
                    })?;
                    self.check_value(&format!("{at}.{name}"), &inner_ty, inner)?;
                }
                Ok(())
            }
            _ => Err(format!(
                "{at}: type {ty} is not in the excerpt; extend the check"
            )),
        }
    }
}

fn sample_key(key_type: &str, n: u32) -> String {
    match key_type {
        "Edm.Int32" | "Edm.Int64" => "3".into(),
        _ => format!("00000000-0000-4000-8000-{n:012}"),
    }
}

fn metadata() -> Metadata {
    Metadata::parse(METADATA)
}

/// The containment paths that end at the row's binding type, in both action spellings.
fn expected_paths(m: &Metadata, row: &ActionRow) -> Vec<(String, Option<&'static str>)> {
    let spellings = [
        row.name.to_owned(),
        format!("{}.{}", row.namespace, row.name),
    ];
    m.containment_paths(12)
        .into_iter()
        .filter(|(_, ty)| ty == row.binding)
        .flat_map(|(path, _)| {
            let refusal = row
                .refused
                .iter()
                .find(|(marker, _)| path.contains(marker))
                .map(|(_, why)| *why);
            spellings
                .clone()
                .map(move |action| (format!("{path}/{action}"), refusal))
        })
        .collect()
}

#[test]
fn the_fixture_keeps_its_provenance() {
    assert!(METADATA.contains("Excerpt of the Microsoft Graph v1.0 metadata (CSDL)"));
    assert!(METADATA.contains("msgraph-metadata"));
    // The supplement above stands in for a type the excerpt lacks; once it is there, use it.
    assert!(
        !metadata().types.contains_key(SUPPLEMENT_TYPE),
        "the excerpt now defines {SUPPLEMENT_TYPE}: drop SUPPLEMENT_TYPE"
    );
}

#[test]
fn every_body_the_gateway_sends_is_declared_by_the_action() {
    let m = metadata();
    for row in ACTIONS {
        let action = m.action(row);
        for body in (row.bodies)() {
            let Value::Object(fields) = &body else {
                panic!("{body} is not an object")
            };
            for (name, value) in fields {
                let (ty, _) = action.parameters.get(name).unwrap_or_else(|| {
                    panic!(
                        "{body}: `{name}` is not a parameter of {}.{} ({:?})",
                        row.namespace,
                        row.name,
                        action.parameters.keys()
                    )
                });
                if let Err(e) = m.check_value(name, ty, value) {
                    panic!("{body}: {e}");
                }
            }
            for (name, (_, nullable)) in &action.parameters {
                assert!(
                    *nullable || fields.contains_key(name),
                    "{body}: the required parameter `{name}` is missing"
                );
            }
            if let Some(rule) = row.rule {
                rule(&m, &body).unwrap_or_else(|e| panic!("{body}: {e}"));
            }
        }
    }
}

/// The checks above would catch what they claim to: a body with an undeclared member, without
/// the `@odata.type` an abstract `data` needs, with a type that is not derived, a stage that is
/// not a member, or a `type` that disagrees with the stage.
#[test]
fn the_body_checks_refuse_what_graph_would() {
    let m = metadata();
    let row = &ACTIONS[1];
    let action = m.action(row);
    let data_ty = &action.parameters["data"].0;
    let good = access_package_bodies().remove(0);
    assert!(m.check_value("data", data_ty, &good["data"]).is_ok());
    assert!(stage_rule(&m, &good).is_ok());
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };
    for bad in [
        broken(&|b| b["data"]["statusReasons"] = "x".into()),
        broken(&|b| {
            b["data"].as_object_mut().unwrap().remove("@odata.type");
        }),
        broken(&|b| b["data"]["@odata.type"] = "microsoft.graph.customExtensionData".into()),
        broken(&|b| {
            b["data"]["@odata.type"] =
                "microsoft.graph.identityGovernance.customTaskExtensionCallbackData".into()
        }),
        broken(&|b| b["data"]["stage"] = "assignmentRequestDenied".into()),
    ] {
        assert!(
            m.check_value("data", data_ty, &bad["data"]).is_err(),
            "{bad}"
        );
    }
    for bad in [
        broken(&|b| b["type"] = "lifecycleEvent".into()),
        broken(&|b| {
            b["type"] =
                "microsoft.graph.accessPackageCustomExtensionStage.assignmentRequestGranted".into()
        }),
        broken(&|b| {
            b["type"] = "microsoft.graph.accessPackageCustomExtensionStage.somethingElse".into()
        }),
    ] {
        assert!(stage_rule(&m, &bad).is_err(), "{bad}");
    }
}

#[test]
fn every_containment_path_is_accepted_in_both_spellings_or_refused_on_purpose() {
    let m = metadata();
    for row in ACTIONS {
        let expected = expected_paths(&m, row);
        let paths: BTreeSet<&str> = expected
            .iter()
            .map(|(p, _)| p.rsplit_once('/').unwrap().0)
            .collect();
        assert_eq!(
            paths.len(),
            row.paths_today,
            "the metadata's containment paths to {} changed; decide for each: {paths:#?}",
            row.binding
        );
        for (path, refusal) in &expected {
            match refusal {
                None => assert!((row.accepts)(path), "a metadata path is refused: {path}"),
                Some(why) => assert!(
                    !(row.accepts)(path),
                    "{path} is accepted, but refused on purpose: {why}"
                ),
            }
        }
    }
}

#[test]
fn nothing_else_is_accepted() {
    let m = metadata();
    let all_actions: BTreeSet<String> = m
        .actions
        .iter()
        .flat_map(|a| [a.name.clone(), format!("{}.{}", a.namespace, a.name)])
        .collect();
    let containment = m.containment_paths(12);
    for row in ACTIONS {
        let allowed: BTreeSet<String> = expected_paths(&m, row)
            .into_iter()
            .filter(|(_, refusal)| refusal.is_none())
            .map(|(p, _)| p)
            .collect();
        let mut candidates: BTreeSet<String> = BTreeSet::new();
        for (path, _) in &containment {
            candidates.insert(path.clone());
            for action in &all_actions {
                candidates.insert(format!("{path}/{action}"));
            }
        }
        // Keys of the wrong kind where the accepted paths have them.
        for path in &allowed {
            let segments: Vec<&str> = path.split('/').collect();
            for (i, s) in segments.iter().enumerate() {
                let swapped = if *s == "3" {
                    sample_key("Edm.String", 999)
                } else if s.len() == 36 && s.starts_with("00000000-") {
                    "3".to_owned()
                } else {
                    continue;
                };
                let mut v = segments.clone();
                v[i] = &swapped;
                candidates.insert(v.join("/"));
            }
        }
        assert!(
            candidates.len() > allowed.len() * 10,
            "too few candidates to mean anything: {}",
            candidates.len()
        );
        let wrongly: Vec<&String> = candidates
            .iter()
            .filter(|c| (row.accepts)(c) && !allowed.contains(*c))
            .collect();
        assert!(
            wrongly.is_empty(),
            "accepted, but not a metadata path to {}: {wrongly:#?}",
            row.binding
        );
        let accepted = candidates.iter().filter(|c| (row.accepts)(c)).count();
        assert_eq!(accepted, allowed.len(), "every allowed path is a candidate");
    }
}
