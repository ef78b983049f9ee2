//! A custom task extension as `check` and `grant` read it: its callback configuration, with
//! the apps allowed to resume its tasks.
//!
//! `authorizedApps` is a navigation property (a collection of `application`) on the complex
//! type `customTaskExtensionCallbackConfiguration` (Graph v1.0 metadata), so Graph returns it
//! only when expanded through a type cast, and an update sends the whole complex value.

use serde::Deserialize;
use tokio::time::Instant;

use crate::graph::{Fetched, GetError, GraphClient};
use crate::request::ids::Guid;

const EXPAND_AUTHORIZED_APPS: &str = "$expand=callbackConfiguration/microsoft.graph.identityGovernance.customTaskExtensionCallbackConfiguration/authorizedApps";
/// The derived type of `callbackConfiguration` that has `authorizedApps`; an update must name
/// it, because the declared type (`customExtensionCallbackConfiguration`) is abstract.
pub(crate) const CALLBACK_TYPE: &str =
    "#microsoft.graph.identityGovernance.customTaskExtensionCallbackConfiguration";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Extension {
    pub callback_configuration: Option<CallbackConfiguration>,
    pub authentication_configuration: Option<AuthenticationConfiguration>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CallbackConfiguration {
    pub timeout_duration: Option<String>,
    pub authorized_apps: Option<Vec<App>>,
}

/// An entry of `authorizedApps`: Graph documents them as "the ids or appIds" of applications.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct App {
    pub id: Option<String>,
    pub app_id: Option<String>,
}

impl App {
    /// The one identifier to send back for this entry: its appId, else its id.
    pub fn identifier(&self) -> Option<&str> {
        self.app_id.as_deref().or(self.id.as_deref())
    }

    /// Whether this entry stands for application (client) id `app`.
    pub fn is(&self, app: &str) -> bool {
        !app.is_empty()
            && [&self.app_id, &self.id]
                .into_iter()
                .flatten()
                .any(|x| x.eq_ignore_ascii_case(app))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuthenticationConfiguration {
    pub resource_id: Option<String>,
}

impl Extension {
    /// The authorized apps, or none.
    pub fn authorized_apps(&self) -> &[App] {
        self.callback_configuration
            .as_ref()
            .and_then(|c| c.authorized_apps.as_deref())
            .unwrap_or_default()
    }
}

/// The extension's URL, without the expansion.
pub(crate) fn url(graph: &GraphClient, extension: &Guid) -> String {
    graph.url(&format!(
        "/identityGovernance/lifecycleWorkflows/customTaskExtensions/{extension}"
    ))
}

/// Reads the extension with its authorized apps, retrying as every Graph call does.
pub(crate) async fn read(
    graph: &GraphClient,
    bearer: &str,
    extension: &Guid,
    deadline: Instant,
) -> Result<(Extension, Fetched), GetError> {
    let url = format!("{}?{EXPAND_AUTHORIZED_APPS}", url(graph, extension));
    let fetched = graph.get_retrying(&url, bearer, deadline).await?;
    let parsed = serde_json::from_value(fetched.body.clone())
        .map_err(|e| GetError::Unusable(format!("not a custom task extension: {e}")))?;
    Ok((parsed, fetched))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_match_by_app_id_or_id_in_any_case() {
        let both = App {
            id: Some("0b1c2d3e-0000-4000-8000-000000000001".into()),
            app_id: Some("AAAAAAAA-0000-4000-8000-000000000002".into()),
        };
        assert!(both.is("aaaaaaaa-0000-4000-8000-000000000002"));
        assert!(both.is("0b1c2d3e-0000-4000-8000-000000000001"));
        assert!(!both.is(""));
        assert_eq!(both.identifier(), both.app_id.as_deref());
        let id_only = App {
            id: Some("x".into()),
            app_id: None,
        };
        assert_eq!(id_only.identifier(), Some("x"));
    }
}
