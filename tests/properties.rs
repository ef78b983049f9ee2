//! Property tests for the two parsers that face callers: the request body and the
//! `callbackUriPath` grammar. Nothing may panic, and no accepted path may leave
//! `/identityGovernance/lifecycleWorkflows/` or reach anything but a resume action.
//! (`cargo fuzz` needs a nightly toolchain; these run on stable, bounded, in every CI run.)

use proptest::prelude::*;
use resume_gateway::request::ResumeRequest;
use resume_gateway::request::path::ResumeTarget;

const ROOT: &str = "/identityGovernance/lifecycleWorkflows/";

fn assert_safe(target: &ResumeTarget) {
    let p = &target.path;
    assert!(p.starts_with(ROOT), "{p}");
    assert!(
        p.ends_with("/resume") || p.ends_with("/microsoft.graph.identityGovernance.resume"),
        "{p}"
    );
    assert!(
        !p.contains("//") && !p.contains("/../") && !p.contains("/./"),
        "{p}"
    );
    assert!(
        p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '.')),
        "{p}"
    );
    assert!(
        p.contains(&format!("/taskProcessingResults/{}/", target.result_id)),
        "{p}"
    );
    // Canonical form is a fixed point.
    assert_eq!(
        &ResumeTarget::parse(p).expect("canonical path parses"),
        target
    );
}

fn guid() -> impl Strategy<Value = String> {
    "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
}

/// Segments a hostile or careless caller might put in a path.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("identityGovernance".to_string()),
        Just("lifecycleWorkflows".to_string()),
        Just("deletedItems".to_string()),
        Just("workflows".to_string()),
        Just("tasks".to_string()),
        Just("versions".to_string()),
        Just("runs".to_string()),
        Just("userProcessingResults".to_string()),
        Just("taskReports".to_string()),
        Just("taskProcessingResults".to_string()),
        Just("resume".to_string()),
        Just("microsoft.graph.identityGovernance.resume".to_string()),
        Just("users".to_string()),
        Just("..".to_string()),
        Just(".".to_string()),
        Just("%2F".to_string()),
        Just("".to_string()),
        Just("beta".to_string()),
        Just("7".to_string()),
        guid(),
        "[ -~]{0,12}",
    ]
}

/// A path the grammar documents, built from its parts.
fn valid_path() -> impl Strategy<Value = String> {
    let middle = prop_oneof![
        guid().prop_map(|t| format!("tasks/{t}")),
        (1u32..1000, guid()).prop_map(|(v, t)| format!("versions/{v}/tasks/{t}")),
        guid().prop_map(|r| format!("runs/{r}")),
        (guid(), guid()).prop_map(|(r, u)| format!("runs/{r}/userProcessingResults/{u}")),
        guid().prop_map(|u| format!("userProcessingResults/{u}")),
        guid().prop_map(|t| format!("taskReports/{t}")),
    ];
    (any::<bool>(), guid(), middle, guid(), any::<bool>()).prop_map(
        |(deleted, w, m, r, qualified)| {
            format!(
                "{ROOT}{}workflows/{w}/{m}/taskProcessingResults/{r}/{}",
                if deleted { "deletedItems/" } else { "" },
                if qualified {
                    "microsoft.graph.identityGovernance.resume"
                } else {
                    "resume"
                }
            )
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_string_is_parsed_without_panic_and_accepted_paths_are_safe(s in "\\PC{0,300}") {
        if let Ok(t) = ResumeTarget::parse(&s) {
            assert_safe(&t);
        }
    }

    #[test]
    fn segment_soup_never_escapes_the_grammar(parts in prop::collection::vec(segment(), 0..14), lead in prop_oneof![Just("/"), Just("//"), Just(""), Just("https://graph.microsoft.com/")]) {
        let s = format!("{lead}{}", parts.join("/"));
        if let Ok(t) = ResumeTarget::parse(&s) {
            assert_safe(&t);
        }
    }

    #[test]
    fn documented_paths_are_always_accepted(p in valid_path()) {
        let t = ResumeTarget::parse(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_safe(&t);
        prop_assert_eq!(t.path.to_ascii_lowercase(), p.to_ascii_lowercase());
    }

    #[test]
    fn documented_paths_with_one_extra_character_are_refused(p in valid_path(), at in any::<prop::sample::Index>(), c in prop_oneof![Just('?'), Just('#'), Just('%'), Just(' '), Just('\\'), Just('\n'), Just('@'), Just(':')]) {
        let mut s = p.clone();
        let i = at.index(s.len() + 1);
        s.insert(i, c);
        prop_assert!(ResumeTarget::parse(&s).is_err(), "accepted {:?}", s);
    }

    #[test]
    fn any_bytes_as_a_body_are_answered_without_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = ResumeRequest::parse(&body);
    }

    #[test]
    fn request_shaped_json_never_yields_an_unsafe_target(
        status in prop_oneof![Just("completed"), Just("FAILED"), Just("x"), Just("")],
        path in prop_oneof![valid_path(), "\\PC{0,80}", prop::collection::vec(segment(), 0..12).prop_map(|p| format!("/{}", p.join("/")))],
        as_callout in any::<bool>(),
        callout_as_string in any::<bool>(),
    ) {
        let body = if as_callout {
            let callout = serde_json::json!({"data": {"callbackUriPath": path}});
            let callout = if callout_as_string { serde_json::Value::String(callout.to_string()) } else { callout };
            serde_json::json!({"operationStatus": status, "callout": callout})
        } else {
            serde_json::json!({"operationStatus": status, "callbackUriPath": path})
        };
        if let Ok(r) = ResumeRequest::parse(body.to_string().as_bytes()) {
            assert_safe(&r.target);
        }
    }
}
