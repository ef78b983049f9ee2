//! The gateway in the test process (zero2prod's `spawn_app`): the library's own `serve`, on a
//! 127.0.0.1 listener bound to port 0, with the settings a process test would give the binary.
//! For HTTP-contract tests: answers, problems, Graph's answers mapped. What needs a real process
//! (host modes, exit codes, signals, the stdout/stderr split, memory) spawns the binary instead.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::time::OffsetDateTime;
use resume_gateway::config::Config;
use serde_json::Value;

use super::{Endpoint, install_crypto};

/// A gateway serving in this process, on its own thread and runtime, until dropped.
pub struct App {
    pub port: u16,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Endpoint for App {
    fn port(&self) -> u16 {
        self.port
    }
    fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the gateway with exactly `env` as its settings (as [`super::spawn`] gives the
/// binary), answering once this returns. Its Graph tokens come from the App Service identity
/// endpoint `env` names (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`), asked as azure_identity asks
/// it, so that each app has its own mock identity.
pub async fn spawn_app(env: &[(String, String)]) -> App {
    install_crypto();
    let settings: HashMap<String, String> = env.iter().cloned().collect();
    let config = Config::from_lookup(|name| settings.get(name).cloned()).expect("valid settings");
    let credential = Arc::new(AppServiceIdentity {
        endpoint: settings
            .get("IDENTITY_ENDPOINT")
            .cloned()
            .unwrap_or_default(),
        header: settings.get("IDENTITY_HEADER").cloned().unwrap_or_default(),
        http: reqwest::Client::new(),
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let shutdown = async move {
                let _ = stopped.await;
            };
            resume_gateway::http::serve_with_credential(config, credential, listener, shutdown)
                .await
                .expect("the app serves");
        });
    });
    App {
        port,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(240))
            .build()
            .unwrap(),
        stop: Some(stop),
    }
}

/// The App Service managed-identity protocol (api-version 2019-08-01), as azure_identity's
/// `ManagedIdentityCredential` speaks it, but to the endpoint given here rather than the
/// process environment's.
#[derive(Debug)]
struct AppServiceIdentity {
    endpoint: String,
    header: String,
    http: reqwest::Client,
}

#[async_trait::async_trait]
impl TokenCredential for AppServiceIdentity {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let failed = |e: String| azure_core::Error::with_message(ErrorKind::Credential, e);
        let resource = scopes[0].trim_end_matches("/.default");
        let url = url::Url::parse_with_params(
            &self.endpoint,
            [("api-version", "2019-08-01"), ("resource", resource)],
        )
        .map_err(|e| failed(e.to_string()))?;
        let answer = self
            .http
            .get(url)
            .header("x-identity-header", &self.header)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !answer.status().is_success() {
            return Err(failed(format!(
                "identity endpoint answered {}",
                answer.status()
            )));
        }
        let body: Value = answer.json().await.map_err(|e| failed(e.to_string()))?;
        let expires_on = body["expires_on"]
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .ok_or_else(|| failed(format!("no expires_on in {body}")))?;
        let token = body["access_token"].as_str().unwrap_or_default().to_owned();
        Ok(AccessToken::new(token, expires_on))
    }
}
