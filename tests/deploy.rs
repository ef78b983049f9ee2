//! The deployment files agree with the gateway: the Bicep template and the local settings list
//! every setting the code reads, with the gateway's defaults; the Logic App samples send what the
//! gateway accepts; and `scripts/grant.sh` makes the right Graph calls, once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::docs;
use resume_gateway::config::{Config, HOST_SET, SETTINGS};
use resume_gateway::request::ResumeRequest;
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json(path: &str) -> Value {
    serde_json::from_str(&text(path)).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

/// Settings an operator sets; the host sets the port itself.
fn app_settings() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().copied().filter(|s| !HOST_SET.contains(s))
}

/// A `param` of the Bicep file: its type and default, and the setting its description names.
#[derive(Debug)]
struct Param {
    kind: String,
    default: Option<String>,
    setting: Option<String>,
}

fn bicep_params(bicep: &str) -> BTreeMap<String, Param> {
    let mut params = BTreeMap::new();
    let mut described: Option<String> = None;
    for line in bicep.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("@description('") {
            described = rest
                .split(':')
                .next()
                .filter(|s| s.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
                .map(str::to_owned);
        } else if let Some(rest) = line.strip_prefix("param ") {
            let (decl, default) = match rest.split_once(" = ") {
                Some((d, v)) => (d, Some(v.trim().to_owned())),
                None => (rest, None),
            };
            let mut words = decl.split_whitespace();
            let name = words.next().unwrap().to_owned();
            let kind = words.next().unwrap().to_owned();
            params.insert(
                name,
                Param {
                    kind,
                    default,
                    setting: described.take(),
                },
            );
        } else if line.is_empty()
            || ["var ", "resource ", "output ", "//"]
                .iter()
                .any(|p| line.starts_with(p))
        {
            // A description only belongs to the parameter its decorators precede.
            described = None;
        }
    }
    params
}

/// The `KEY: expression` lines of a Bicep object variable.
fn bicep_object(bicep: &str, var: &str) -> BTreeMap<String, String> {
    let start = bicep
        .find(&format!("var {var} = {{"))
        .unwrap_or_else(|| panic!("main.bicep lacks var {var}"));
    let body = &bicep[start..];
    let end = body.find("\n}").unwrap();
    body[..end]
        .lines()
        .skip(1)
        .filter_map(|l| l.trim().split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A Bicep literal default as the app setting value it becomes (`None`: empty, i.e. unset).
fn as_setting_value(param: &Param) -> Option<String> {
    let default = param.default.as_deref()?;
    let value = match param.kind.as_str() {
        "string" => default
            .strip_prefix('\'')
            .and_then(|d| d.strip_suffix('\''))
            .unwrap_or_else(|| panic!("string default {default} is not a literal"))
            .to_owned(),
        "int" | "bool" => default.to_owned(),
        other => panic!("unexpected parameter type {other}"),
    };
    (!value.is_empty()).then_some(value)
}

#[test]
fn bicep_and_local_settings_list_every_setting() {
    let bicep = text("infra/main.bicep");
    let gateway = bicep_object(&bicep, "gatewaySettings");
    let params = bicep_params(&bicep);
    let local = json("local.settings.sample.json");
    for setting in app_settings() {
        let expr = gateway
            .get(setting)
            .unwrap_or_else(|| panic!("infra/main.bicep gatewaySettings lacks {setting}"));
        let (name, _) = params
            .iter()
            .find(|(_, p)| p.setting.as_deref() == Some(setting))
            .unwrap_or_else(|| panic!("no Bicep parameter is described as {setting}"));
        assert!(
            expr.split(|c: char| !c.is_ascii_alphanumeric())
                .any(|w| w == name),
            "{setting} is set from `{expr}`, not from its parameter {name}"
        );
        assert!(
            local["Values"].get(setting).is_some(),
            "local.settings.sample.json lacks {setting}"
        );
    }
    let known: BTreeSet<&str> = app_settings().collect();
    for key in gateway.keys() {
        assert!(
            known.contains(key.as_str()),
            "gatewaySettings sets {key}, which the gateway does not read"
        );
    }
}

#[test]
fn bicep_defaults_are_the_gateways_defaults() {
    let bicep = text("infra/main.bicep");
    let params = bicep_params(&bicep);
    let mut from_bicep = BTreeMap::new();
    for setting in app_settings() {
        let param = params
            .values()
            .find(|p| p.setting.as_deref() == Some(setting))
            .unwrap_or_else(|| panic!("no Bicep parameter for {setting}"));
        if let Some(value) = as_setting_value(param) {
            from_bicep.insert(setting.to_owned(), value);
        }
    }
    let deployed = Config::from_lookup(|k| from_bicep.get(k).cloned())
        .unwrap_or_else(|e| panic!("the Bicep defaults do not start the gateway: {e}"));
    let unset = Config::from_lookup(|_| None).unwrap();
    assert_eq!(
        format!("{deployed:?}"),
        format!("{unset:?}"),
        "a deployment with default parameters must behave like the gateway with no settings"
    );
}

#[test]
fn bicep_is_flex_consumption_with_identity_only_storage_and_telemetry() {
    let bicep = text("infra/main.bicep");
    for needle in [
        "tier: 'FlexConsumption'",
        "name: 'FC1'",
        "reserved: true",
        "kind: 'functionapp,linux'",
        "name: 'custom'",
        "version: '1.0'",
        "type: 'blobContainer'",
        "type: 'SystemAssignedIdentity'",
        "maximumInstanceCount: maximumInstanceCount",
        "instanceMemoryMB: instanceMemoryMB",
        "allowSharedKeyAccess: false",
        "AzureWebJobsStorage__credential: 'managedidentity'",
        "AzureWebJobsStorage__accountName: storage.name",
        "DisableLocalAuth: true",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'",
        "type: 'SystemAssigned'",
        // The official Flex sample's four roles: Storage Blob Data Owner, Queue Data
        // Contributor, Table Data Contributor, Monitoring Metrics Publisher.
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
        "3913510d-42f4-4e42-8a64-420c390055eb",
        "@minValue(40)\n@maxValue(1000)\nparam maximumInstanceCount int",
        "output gatewayPrincipalId string",
        "output gatewayClientId string",
    ] {
        assert!(bicep.contains(needle), "infra/main.bicep lacks `{needle}`");
    }
    // Least privilege: those four roles and no other assignment.
    assert_eq!(
        bicep
            .matches("'Microsoft.Authorization/roleAssignments@")
            .count(),
        4
    );
    for banned in [
        "listKeys(",
        "AccountKey=",
        "InstrumentationKey=",
        "FUNCTIONS_WORKER_RUNTIME:",
        "FUNCTIONS_EXTENSION_VERSION:",
    ] {
        assert!(
            !bicep.contains(banned),
            "infra/main.bicep must not use `{banned}`"
        );
    }
    assert!(
        bicep.contains("@secure()\nparam azureClientSecret string"),
        "the client secret parameter must be @secure()"
    );
}

#[test]
fn parameters_example_names_only_declared_parameters_and_no_secret() {
    let params = bicep_params(&text("infra/main.bicep"));
    let example = json("infra/main.parameters.example.json");
    let values = example["parameters"].as_object().unwrap();
    assert!(values.contains_key("appName"), "appName has no default");
    for (name, value) in values {
        assert!(
            params.contains_key(name),
            "{name} is not a parameter of main.bicep"
        );
        assert!(value.get("value").is_some(), "{name} has no value");
    }
    assert!(!values.contains_key("azureClientSecret"));
    for (name, param) in &params {
        if param.default.is_none() {
            assert!(
                values.contains_key(name),
                "required parameter {name} is missing from the example"
            );
        }
    }
}

/// Checks one Logic App HTTP action that calls the gateway; returns the workflow parameters it uses.
fn check_gateway_action(name: &str, action: &Value) -> BTreeSet<String> {
    assert_eq!(action["type"], "Http", "{name}");
    let inputs = &action["inputs"];
    assert_eq!(inputs["method"], "POST", "{name}");
    assert_eq!(inputs["body"]["callout"], "@triggerBody()", "{name}");
    let authentication = inputs.get("authentication");
    if let Some(authentication) = authentication {
        assert_eq!(authentication["type"], "ManagedServiceIdentity", "{name}");
        assert!(
            authentication["audience"].is_string(),
            "{name}: managed identity authentication needs an audience"
        );
    }
    let key = inputs["headers"]["x-functions-key"].as_str().unwrap();
    assert!(
        key.starts_with("@parameters('"),
        "{name}: the function key comes from a parameter"
    );

    // The body, with the trigger's output filled in, is a request the gateway accepts.
    let mut body = inputs["body"].clone();
    body["callout"] = json("samples/callout.json");
    ResumeRequest::parse(&serde_json::to_vec(&body).unwrap())
        .unwrap_or_else(|e| panic!("{name}: the gateway refuses the body: {e}"));

    // Retries: 503 (+Retry-After) is retried, 424 is not (Logic Apps retry 408/429/5xx only).
    let retry = &inputs["retryPolicy"];
    assert!(
        matches!(retry["type"].as_str(), Some("exponential" | "fixed")),
        "{name}: retry policy must retry the gateway's 503"
    );
    assert!(retry["count"].as_u64().unwrap() >= 1, "{name}");
    // One attempt may take up to the gateway's deadline (at most 229 s): allow it.
    assert_eq!(action["limit"]["timeout"], "PT4M", "{name}");

    let mut used = BTreeSet::new();
    let audience = authentication.map(|a| &a["audience"]);
    for value in [&inputs["uri"], &inputs["headers"]["x-functions-key"]]
        .into_iter()
        .chain(audience)
    {
        let v = value.as_str().unwrap();
        let p = v
            .strip_prefix("@parameters('")
            .and_then(|r| r.strip_suffix("')"))
            .unwrap_or_else(|| panic!("{name}: {v} should come from a workflow parameter"));
        used.insert(p.to_owned());
    }
    used
}

/// The one action of a Logic App action sample.
fn sample_action(path: &str) -> (String, Value) {
    let sample = json(path);
    let actions = sample.as_object().unwrap();
    assert_eq!(actions.len(), 1, "{path}");
    let (name, action) = actions.iter().next().unwrap();
    (name.clone(), action.clone())
}

#[test]
fn logic_app_actions_send_what_the_gateway_accepts_in_both_modes() {
    // CALLER_AUTH=function-key (the default): the function key only, no app registration needed.
    let (name, key_only) = sample_action("samples/logic-app-action.json");
    assert!(key_only["inputs"].get("authentication").is_none(), "{name}");
    let used = check_gateway_action(&name, &key_only);
    let expected = BTreeSet::from([
        "resumeGatewayUrl".to_owned(),
        "resumeGatewayFunctionKey".to_owned(),
    ]);
    assert_eq!(used, expected);

    // CALLER_AUTH=entra: the same call, plus the Logic App's managed identity token.
    let (entra_name, entra) = sample_action("samples/logic-app-action-entra.json");
    assert_eq!(entra_name, name);
    let used = check_gateway_action(&entra_name, &entra);
    assert_eq!(used.len(), 3, "url, function key and audience: {used:?}");
    let mut without_token = entra.clone();
    without_token["inputs"]
        .as_object_mut()
        .unwrap()
        .remove("authentication");
    assert_eq!(
        without_token, key_only,
        "the two samples differ only in authentication"
    );
}

#[test]
fn docs_show_the_logic_app_samples_as_they_are() {
    for (sample, page) in [
        ("samples/logic-app-action.json", "docs/deploy.md"),
        ("samples/logic-app-action-entra.json", "docs/security.md"),
    ] {
        let file = text(sample);
        assert!(
            docs::blocks(&text(page)).iter().any(|b| b.text == file),
            "{page} must show {sample} verbatim, in a fenced block of its own"
        );
    }
    for page in docs::files() {
        let page = docs::read(&page);
        for stale in ["tracked in a separate issue", "\"queries\": { \"code\""] {
            assert!(!page.contains(stale), "the docs still say {stale:?}");
        }
    }
}

#[test]
fn logic_app_workflow_receives_a_callout_and_hands_it_to_the_gateway() {
    let workflow = json("samples/logic-app-workflow.json");
    let definition = &workflow["definition"];
    let triggers = definition["triggers"].as_object().unwrap();
    assert_eq!(triggers.len(), 1);
    let trigger = triggers.values().next().unwrap();
    assert_eq!(trigger["type"], "Request");
    assert_eq!(trigger["kind"], "Http");
    let data = &trigger["inputs"]["schema"]["properties"]["data"]["properties"];
    for field in [
        "callbackUriPath",
        "task",
        "taskProcessingResult",
        "workflow",
    ] {
        assert!(
            data.get(field).is_some(),
            "trigger schema lacks data.{field}"
        );
    }

    let actions = definition["actions"].as_object().unwrap();
    // With no Response action, the Request trigger answers 202 Accepted at once, which is what
    // Lifecycle Workflows' own Logic App template relies on.
    assert!(
        actions.values().all(|a| a["type"] != "Response"),
        "the workflow must not hold Lifecycle Workflows' call open"
    );
    // The key is a secret: the workflow definition language's SecureString hides it from run
    // history and the designer.
    assert_eq!(
        definition["parameters"]["resumeGatewayFunctionKey"]["type"],
        "SecureString"
    );
    let declared: BTreeSet<String> = definition["parameters"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let gateway_calls: Vec<_> = actions
        .iter()
        .filter(|(_, a)| a["type"] == "Http")
        .collect();
    assert_eq!(
        gateway_calls.len(),
        2,
        "one call for success, one for failure"
    );
    let mut statuses = BTreeSet::new();
    for (name, action) in gateway_calls {
        let used = check_gateway_action(name, action);
        assert!(
            used.is_subset(&declared),
            "{name} uses undeclared parameters"
        );
        statuses.insert(
            action["inputs"]["body"]["operationStatus"]
                .as_str()
                .unwrap(),
        );
    }
    assert_eq!(statuses, BTreeSet::from(["completed", "failed"]));
    assert_eq!(
        json("samples/logic-app-action.json")["Resume_through_gateway"],
        actions["Resume_through_gateway"]
            .as_object()
            .map(|a| {
                let mut a = a.clone();
                a.insert("runAfter".into(), serde_json::json!({}));
                Value::Object(a)
            })
            .unwrap(),
        "the action sample and the workflow's success call must not drift apart"
    );
}

// ---- scripts/grant.sh against a fake `az` ----

const PRINCIPAL: &str = "11111111-1111-1111-1111-111111111111";
const APP_ID: &str = "22222222-2222-2222-2222-222222222222";
const EXTENSION: &str = "33333333-3333-3333-3333-333333333333";
const GRAPH_SP: &str = "55555555-5555-5555-5555-555555555555";
const ROLE_ID: &str = "66666666-6666-6666-6666-666666666666";

/// A stand-in for the Azure CLI that records each call and answers the reads grant.sh makes
/// from files in its folder (so a test can change what "Azure" holds between runs).
const FAKE_AZ: &str = r#"#!/usr/bin/env bash
set -euo pipefail
dir="$(dirname "$0")"
printf '%s\n' "$*" >>"$dir/calls.log"
args="$*"
case "$args" in
  "functionapp identity show"*) echo "$FAKE_PRINCIPAL" ;;
  "ad sp show --id 00000003-0000-0000-c000-000000000000 --query id "*) echo "$FAKE_GRAPH_SP" ;;
  "ad sp show --id 00000003-0000-0000-c000-000000000000 --query appRoles"*) echo "$FAKE_ROLE_ID" ;;
  "ad sp show --id $FAKE_PRINCIPAL --query appId"*) echo "$FAKE_APP_ID" ;;
  "rest --method GET --uri "*"/appRoleAssignments --query"*) cat "$dir/assignment" ;;
  "rest --method POST "*) echo "assigned" >"$dir/assignment" ;;
  *) echo "fake az: unexpected call: $args" >&2; exit 9 ;;
esac
"#;

struct FakeAzure {
    dir: PathBuf,
}

impl FakeAzure {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "resume-gateway-grant-{test}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let az = dir.join("az");
        std::fs::write(&az, FAKE_AZ).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("assignment"), "").unwrap();
        Self { dir }
    }

    fn grant(&self, args: &[&str]) -> (bool, String) {
        self.grant_with(args, &[])
    }

    /// Runs grant.sh with the fake `az` first on PATH and `env` added.
    fn grant_with(&self, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> (bool, String) {
        let path = format!(
            "{}:{}",
            self.dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("bash")
            .arg(root().join("scripts/grant.sh"))
            .args(args)
            .env("PATH", path)
            .env_remove("RESUME_CREDENTIAL")
            .envs(env.iter().copied())
            .env("FAKE_PRINCIPAL", PRINCIPAL)
            .env("FAKE_APP_ID", APP_ID)
            .env("FAKE_GRAPH_SP", GRAPH_SP)
            .env("FAKE_ROLE_ID", ROLE_ID)
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), all)
    }

    /// Calls made since the last look, then forgets them.
    fn take_calls(&self) -> Vec<String> {
        let log = self.dir.join("calls.log");
        let calls = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        calls.lines().map(str::to_owned).collect()
    }

    fn writes(calls: &[String]) -> Vec<&String> {
        calls
            .iter()
            .filter(|c| c.contains("--method POST") || c.contains("--method PATCH"))
            .collect()
    }
}

impl Drop for FakeAzure {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A stand-in `handler` that records its arguments and the credential it was given.
const FAKE_HANDLER: &str = r#"#!/usr/bin/env bash
printf '%s|%s|%s\n' "$*" "${RESUME_CREDENTIAL:-}" "${GRAPH_CLOUD:-}" >>"$(dirname "$0")/handler.log"
echo "granted (fake handler)"
"#;

impl FakeAzure {
    /// Installs the fake `handler` and returns its path.
    fn handler(&self) -> PathBuf {
        let handler = self.dir.join("handler");
        std::fs::write(&handler, FAKE_HANDLER).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&handler, std::fs::Permissions::from_mode(0o755)).unwrap();
        handler
    }

    fn handler_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("handler.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// The extension's update goes through `handler grant` (device-code sign-in), never `az rest`:
/// the Azure CLI's Graph token has no LifecycleWorkflows scope.
#[test]
fn grant_extension_hands_the_update_to_the_binary() {
    let az = FakeAzure::new("ext");
    let handler = az.handler();
    for (extra, dry) in [(&[][..], ""), (&["--dry-run"][..], " --dry-run")] {
        let args = [
            &[
                "--extension",
                EXTENSION,
                "--resource-group",
                "rg",
                "--name",
                "app",
            ][..],
            extra,
        ]
        .concat();
        let (ok, all) = az.grant_with(&args, &[("HANDLER", handler.as_os_str())]);
        assert!(ok, "{all}");
        assert!(all.contains("granted (fake handler)"), "{all}");
        let calls = az.take_calls();
        assert!(
            calls.iter().all(|c| !c.starts_with("rest ")),
            "no az rest for the extension: {calls:?}"
        );
        assert!(calls[0].starts_with("functionapp identity show --resource-group rg --name app"));
        assert_eq!(
            az.handler_calls().last().unwrap(),
            &format!("grant --extension {EXTENSION} --app {APP_ID}{dry}|device-code|global")
        );
    }
}

#[test]
fn grant_app_role_assigns_once() {
    let az = FakeAzure::new("role");
    let args = ["--app-role", "--principal-id", PRINCIPAL];

    let (ok, out) = az.grant(&[&args[..], &["--dry-run"]].concat());
    assert!(ok, "{out}");
    assert!(FakeAzure::writes(&az.take_calls()).is_empty());
    assert!(out.contains(&format!(
        "az rest --method POST --uri https://graph.microsoft.com/v1.0/servicePrincipals/{PRINCIPAL}/appRoleAssignments"
    )), "{out}");
    assert!(
        out.replace('\\', "").contains(&format!(
            r#"{{"principalId":"{PRINCIPAL}","resourceId":"{GRAPH_SP}","appRoleId":"{ROLE_ID}"}}"#
        )),
        "{out}"
    );

    let (ok, out) = az.grant(&args);
    assert!(ok, "{out}");
    let calls = az.take_calls();
    assert!(
        calls
            .iter()
            .any(|c| c.contains("appRoles[?value=='LifecycleWorkflows.ReadWrite.All']")),
        "{calls:?}"
    );
    assert_eq!(FakeAzure::writes(&calls).len(), 1, "{calls:?}");

    let (ok, out) = az.grant(&args);
    assert!(ok, "{out}");
    assert!(FakeAzure::writes(&az.take_calls()).is_empty());
    assert!(out.contains("already done"), "{out}");
}

#[test]
fn grant_refuses_bad_arguments_before_calling_azure() {
    let az = FakeAzure::new("bad");
    for args in [
        &[][..],
        &["--extension", "not-a-guid", "--principal-id", PRINCIPAL][..],
        &["--app-role"][..],
        &[
            "--app-role",
            "--principal-id",
            PRINCIPAL,
            "--graph",
            "http://evil.example",
        ][..],
        &["--frobnicate"][..],
    ] {
        let (ok, out) = az.grant(args);
        assert!(!ok, "{args:?} was accepted: {out}");
    }
    assert!(az.take_calls().is_empty());
    let (ok, out) = az.grant(&["--help"]);
    assert!(ok);
    assert!(out.contains("--extension <customTaskExtensionId>") && out.contains("--app-role"));
}

#[test]
fn grant_read_assigns_the_read_permission_once_alongside_the_resume_grant() {
    let az = FakeAzure::new("read");
    let handler = az.handler();
    let args = [
        "--read",
        "--extension",
        EXTENSION,
        "--principal-id",
        PRINCIPAL,
    ];
    let (ok, out) = az.grant_with(&args, &[("HANDLER", handler.as_os_str())]);
    assert!(ok, "{out}");
    let calls = az.take_calls();
    assert!(
        calls
            .iter()
            .any(|c| c.contains("appRoles[?value=='LifecycleWorkflows.Read.All']")),
        "{calls:?}"
    );
    let writes = FakeAzure::writes(&calls);
    assert_eq!(writes.len(), 1, "{calls:?}");
    assert!(writes[0].contains("--method POST") && writes[0].contains("appRoleAssignments"));
    assert!(
        out.contains("assigned LifecycleWorkflows.Read.All"),
        "{out}"
    );
    // The resume grant still follows, through handler grant.
    assert_eq!(
        az.handler_calls().last().unwrap(),
        &format!("grant --extension {EXTENSION} --app {APP_ID}|device-code|global")
    );

    // Again: the permission is in place, so az writes nothing.
    let (ok, out) = az.grant_with(&args, &[("HANDLER", handler.as_os_str())]);
    assert!(ok, "{out}");
    assert!(FakeAzure::writes(&az.take_calls()).is_empty());
    assert!(out.contains("already done"), "{out}");

    // On its own, too: no extension is touched.
    let az = FakeAzure::new("read-only");
    let (ok, out) = az.grant(&["--read", "--principal-id", PRINCIPAL]);
    assert!(ok, "{out}");
    assert_eq!(FakeAzure::writes(&az.take_calls()).len(), 1);
    assert!(az.handler_calls().is_empty());
}
