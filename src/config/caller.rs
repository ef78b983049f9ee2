//! The `CALLER_*` settings: how callers are authenticated (`CALLER_AUTH`) and what an
//! authenticated caller may resume (`CALLER_SCOPE`). Read once with the other settings; the
//! `caller` module enforces them.

use crate::config::{ConfigError, GraphCloud, guid_setting, parse_endpoint};
use crate::request::ids::Guid;

/// How callers are authenticated (`CALLER_AUTH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerAuth {
    /// Only the Functions host's key check (the default).
    FunctionKey,
    Entra(EntraCallers),
}

/// The `CALLER_*` settings for `CALLER_AUTH=entra`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraCallers {
    pub tenant_id: String,
    pub audiences: Vec<String>,
    /// Lower-case client ids; never empty.
    pub allowed_app_ids: Vec<String>,
    /// Lower-case object ids; `None` means any object of an allowed app.
    pub allowed_object_ids: Option<Vec<String>>,
    /// Sign-in host without a trailing slash, e.g. `https://login.microsoftonline.com`.
    pub authority: String,
    /// Accepted `iss` values: v1 then v2.
    pub issuers: [String; 2],
    /// Which tasks an allowed caller may resume (`CALLER_SCOPE`).
    pub scope: CallerScope,
}

/// The settings that only mean something with `CALLER_AUTH=entra` (`CALLER_SCOPE` included:
/// without a known caller there is nothing to scope), taken from the one list of settings.
fn dependent() -> impl Iterator<Item = &'static str> {
    crate::config::SETTINGS
        .iter()
        .copied()
        .filter(|s| s.starts_with("CALLER_") && *s != "CALLER_AUTH")
}

impl CallerAuth {
    /// Reads the `CALLER_*` settings through `get` (which already maps empty values to `None`).
    pub fn from_settings(
        get: impl Fn(&str) -> Option<String>,
        cloud: GraphCloud,
    ) -> Result<Self, ConfigError> {
        let mode = get("CALLER_AUTH").map(|v| v.to_ascii_lowercase());
        match mode.as_deref() {
            None | Some("function-key") => {
                // A half-done setup must not look protected while it is not.
                if let Some(set) = dependent().find(|s| get(s).is_some()) {
                    return Err(ConfigError::new(
                        "CALLER_AUTH",
                        mode.as_deref().unwrap_or(""),
                        format!(
                            "entra, because {set} is set (or remove the CALLER_* settings to rely on the function key alone)"
                        ),
                    ));
                }
                Ok(Self::FunctionKey)
            }
            Some("entra") => EntraCallers::from_settings(&get, cloud).map(Self::Entra),
            Some(v) => Err(ConfigError::new("CALLER_AUTH", v, "function-key or entra")),
        }
    }
}

impl EntraCallers {
    fn from_settings(
        get: &impl Fn(&str) -> Option<String>,
        cloud: GraphCloud,
    ) -> Result<Self, ConfigError> {
        let needed = "required when CALLER_AUTH=entra";
        let tenant = get("CALLER_TENANT_ID")
            .ok_or_else(|| ConfigError::missing("CALLER_TENANT_ID", needed))?;
        let tenant_id = guid_setting(
            "CALLER_TENANT_ID",
            &tenant,
            "the directory (tenant) id of the callers, a GUID",
        )?;

        let raw = get("CALLER_AUDIENCES")
            .ok_or_else(|| ConfigError::missing("CALLER_AUDIENCES", needed))?;
        let audiences = list(&raw);
        let audience_ok = |a: &&str| {
            Guid::parse(a).is_some() || (a.contains("://") && !a.contains('*') && !a.contains(' '))
        };
        if audiences.is_empty() || !audiences.iter().all(audience_ok) {
            return Err(ConfigError::new(
                "CALLER_AUDIENCES",
                &raw,
                "a comma list of the gateway app's Application ID URI (api://<app-id>) and/or its app id (a GUID)",
            ));
        }

        let guids = |setting: &'static str, raw: &str, allowed: &str| {
            let items = list(raw);
            let parsed: Option<Vec<String>> = items
                .iter()
                .map(|v| Guid::parse(v).map(String::from))
                .collect();
            match parsed {
                Some(ids) if !ids.is_empty() => Ok(ids),
                _ => Err(ConfigError::new(setting, raw, allowed)),
            }
        };
        let raw = get("CALLER_ALLOWED_APP_IDS")
            .ok_or_else(|| ConfigError::missing("CALLER_ALLOWED_APP_IDS", needed))?;
        let allowed_app_ids = guids(
            "CALLER_ALLOWED_APP_IDS",
            &raw,
            "a comma list of the calling apps' client (application) ids, GUIDs; allowing every app is refused",
        )?;
        let allowed_object_ids = get("CALLER_ALLOWED_OBJECT_IDS")
            .map(|raw| {
                guids(
                    "CALLER_ALLOWED_OBJECT_IDS",
                    &raw,
                    "a comma list of the calling service principals' object ids, GUIDs, or unset",
                )
            })
            .transpose()?;

        let authority = match get("CALLER_AUTHORITY") {
            None => cloud.authority().to_owned(),
            Some(v) => parse_endpoint("CALLER_AUTHORITY", &v)?,
        };
        // v1 tokens name the security token service; only China runs its own.
        let sts = match cloud {
            GraphCloud::China => "https://sts.chinacloudapi.cn",
            _ => "https://sts.windows.net",
        };
        let issuers = [
            format!("{sts}/{tenant_id}/"),
            format!("{authority}/{tenant_id}/v2.0"),
        ];
        let scope = CallerScope::parse(get("CALLER_SCOPE").as_deref())?;
        Ok(Self {
            scope,
            tenant_id,
            audiences: audiences.into_iter().map(str::to_owned).collect(),
            allowed_app_ids,
            allowed_object_ids,
            authority,
            issuers,
        })
    }
}

fn list(raw: &str) -> Vec<&str> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Who a verified caller may resume for (`CALLER_SCOPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerScope {
    /// Only tasks whose custom task extension lists the caller in `authorizedApps`.
    Extension,
    /// Any task the gateway's identity may resume.
    Tenant,
}

impl CallerScope {
    /// `CALLER_SCOPE` as set (already trimmed, empty meaning unset); `extension` by default.
    pub fn parse(value: Option<&str>) -> Result<Self, ConfigError> {
        match value.map(str::to_ascii_lowercase).as_deref() {
            None | Some("extension") => Ok(Self::Extension),
            Some("tenant") => Ok(Self::Tenant),
            Some(_) => Err(ConfigError::new(
                "CALLER_SCOPE",
                value.unwrap_or_default(),
                "extension (a caller resumes only the tasks of custom task extensions that list it in authorizedApps) or tenant",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Extension => "extension",
            Self::Tenant => "tenant",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_that_need_entra_are_every_caller_setting_but_the_mode() {
        assert_eq!(
            dependent().collect::<Vec<_>>(),
            [
                "CALLER_TENANT_ID",
                "CALLER_AUDIENCES",
                "CALLER_ALLOWED_APP_IDS",
                "CALLER_ALLOWED_OBJECT_IDS",
                "CALLER_AUTHORITY",
                "CALLER_SCOPE",
            ]
        );
    }
    use std::collections::HashMap;

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const APP: &str = "11111111-2222-3333-4444-555555555555";

    fn load(pairs: &[(&str, &str)]) -> Result<CallerAuth, ConfigError> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        CallerAuth::from_settings(
            |k| map.get(k).map(|v| v.to_string()).filter(|v| !v.is_empty()),
            GraphCloud::Global,
        )
    }

    fn entra(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v = vec![
            ("CALLER_AUTH", "entra"),
            ("CALLER_TENANT_ID", TENANT),
            (
                "CALLER_AUDIENCES",
                "api://resume-gateway, 8e1f5a3c-2b4d-4c6e-9f70-1a2b3c4d5e6f",
            ),
            ("CALLER_ALLOWED_APP_IDS", APP),
        ];
        for (k, val) in extra {
            v.retain(|(key, _)| key != k);
            v.push((k, val));
        }
        v
    }

    #[test]
    fn function_key_is_the_default_and_refuses_stray_caller_settings() {
        assert_eq!(load(&[]).unwrap(), CallerAuth::FunctionKey);
        assert_eq!(
            load(&[("CALLER_AUTH", "Function-Key")]).unwrap(),
            CallerAuth::FunctionKey
        );
        let e = load(&[("CALLER_ALLOWED_APP_IDS", APP)]).unwrap_err();
        assert_eq!(e.setting, "CALLER_AUTH");
        assert!(e.allowed.contains("CALLER_ALLOWED_APP_IDS"), "{e}");
        let e = load(&[("CALLER_AUTH", "jwt")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid setting CALLER_AUTH=\"jwt\": function-key or entra"
        );
        let e = load(&[("CALLER_SCOPE", "tenant")]).unwrap_err();
        assert_eq!(e.setting, "CALLER_AUTH");
        assert!(e.allowed.contains("CALLER_SCOPE"), "{e}");
    }

    #[test]
    fn caller_scope_is_extension_unless_tenant_is_set() {
        let scope = |extra| match load(&entra(extra)) {
            Ok(CallerAuth::Entra(c)) => Ok(c.scope),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(scope(&[]).unwrap(), CallerScope::Extension);
        assert_eq!(
            scope(&[("CALLER_SCOPE", "extension")]).unwrap(),
            CallerScope::Extension
        );
        assert_eq!(
            scope(&[("CALLER_SCOPE", "TENANT")]).unwrap(),
            CallerScope::Tenant
        );
        let e = scope(&[("CALLER_SCOPE", "everyone")]).unwrap_err();
        assert_eq!(e.setting, "CALLER_SCOPE");
        assert!(e.to_string().contains("\"everyone\""), "{e}");
    }

    #[test]
    fn entra_settings_are_normalised_and_issuers_follow_the_cloud() {
        let CallerAuth::Entra(c) = load(&entra(&[(
            "CALLER_ALLOWED_APP_IDS",
            "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE, 11111111-2222-3333-4444-555555555555,",
        )]))
        .unwrap() else {
            panic!("entra expected")
        };
        assert_eq!(
            c.allowed_app_ids,
            ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", APP]
        );
        assert_eq!(c.audiences.len(), 2);
        assert_eq!(c.authority, "https://login.microsoftonline.com");
        assert_eq!(c.issuers[0], format!("https://sts.windows.net/{TENANT}/"));
        assert_eq!(
            c.issuers[1],
            format!("https://login.microsoftonline.com/{TENANT}/v2.0")
        );
        assert!(c.allowed_object_ids.is_none());

        let map: HashMap<&str, &str> = entra(&[]).into_iter().collect();
        let get = |k: &str| map.get(k).map(|v| v.to_string());
        let CallerAuth::Entra(us) = CallerAuth::from_settings(get, GraphCloud::UsGov).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            us.issuers[1],
            format!("https://login.microsoftonline.us/{TENANT}/v2.0")
        );
    }

    #[test]
    fn bad_or_allow_all_entra_settings_are_refused_by_name() {
        let cases: [(&'static str, &'static str); 9] = [
            ("CALLER_TENANT_ID", ""),
            ("CALLER_TENANT_ID", "contoso.onmicrosoft.com"),
            ("CALLER_AUDIENCES", ""),
            ("CALLER_AUDIENCES", "*"),
            ("CALLER_ALLOWED_APP_IDS", ""),
            ("CALLER_ALLOWED_APP_IDS", "*"),
            ("CALLER_ALLOWED_APP_IDS", ", ,"),
            ("CALLER_ALLOWED_OBJECT_IDS", "all"),
            ("CALLER_AUTHORITY", "http://login.example.com"),
        ];
        for (setting, value) in cases {
            let e = load(&entra(&[(setting, value)])).unwrap_err();
            assert_eq!(e.setting, setting, "{setting}={value}: {e}");
            assert!(e.to_string().contains(value), "{e}");
        }
    }

    #[test]
    fn scope_setting() {
        assert_eq!(CallerScope::parse(None).unwrap(), CallerScope::Extension);
        assert_eq!(
            CallerScope::parse(Some("Tenant")).unwrap(),
            CallerScope::Tenant
        );
        let e = CallerScope::parse(Some("global")).unwrap_err();
        assert_eq!(e.setting, "CALLER_SCOPE");
        assert!(e.to_string().contains("\"global\""), "{e}");
    }

    #[test]
    fn audiences_must_be_a_uri_or_a_guid_without_wildcards_or_spaces() {
        for ok in [
            "api://resume-gateway",
            "8e1f5a3c-2b4d-4c6e-9f70-1a2b3c4d5e6f",
            "https://contoso.com/gateway",
        ] {
            let CallerAuth::Entra(c) = load(&entra(&[("CALLER_AUDIENCES", ok)])).unwrap() else {
                panic!("entra expected")
            };
            assert_eq!(c.audiences, [ok]);
        }
        for bad in [
            "api://*",
            "resume-gateway",
            "api://resume gateway",
            "api://x, *",
            "8e1f5a3c-2b4d-4c6e-9f70-1a2b3c4d5e6f, gateway",
        ] {
            let e = load(&entra(&[("CALLER_AUDIENCES", bad)])).unwrap_err();
            assert_eq!(e.setting, "CALLER_AUDIENCES", "{bad}: {e}");
        }
    }

    #[test]
    fn china_v1_tokens_come_from_its_own_token_service() {
        let map: HashMap<&str, &str> = entra(&[]).into_iter().collect();
        let get = |k: &str| map.get(k).map(|v| v.to_string());
        let CallerAuth::Entra(cn) = CallerAuth::from_settings(get, GraphCloud::China).unwrap()
        else {
            panic!("entra expected")
        };
        assert_eq!(
            cn.issuers[0],
            format!("https://sts.chinacloudapi.cn/{TENANT}/")
        );
        assert_eq!(
            cn.issuers[1],
            format!("https://login.chinacloudapi.cn/{TENANT}/v2.0")
        );
        let CallerAuth::Entra(dod) = CallerAuth::from_settings(get, GraphCloud::UsGovDod).unwrap()
        else {
            panic!("entra expected")
        };
        assert_eq!(dod.issuers[0], format!("https://sts.windows.net/{TENANT}/"));
    }
}
