//! The one HTTP client for calls out of the process (Graph, the identity endpoint, the
//! caller-token keys), built off the readiness path.

use std::sync::{Arc, Mutex, OnceLock};

/// The `User-Agent` of the gateway's own calls out (Graph, the sign-in endpoints, the key
/// sets; the Azure SDK names itself), so the other side's logs name the gateway and its version.
pub(crate) const USER_AGENT: &str = concat!(
    "resume-gateway/",
    env!("CARGO_PKG_VERSION"),
    " (Azure Functions custom handler)"
);

/// reqwest's top-level message hides the cause ("error sending request"); the chain names it.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// A reqwest client whose construction runs on a thread of its own from the moment it is
/// asked for. Building one loads and parses the system's root certificates, the largest part
/// of the gateway's start (measured with `perf`); off the main thread, the host's readiness
/// poll does not wait for it. The first use waits for the build if it is still running.
#[derive(Clone)]
pub(crate) struct LazyClient(Arc<LazyInner>);

struct LazyInner {
    client: OnceLock<reqwest::Client>,
    builder: Mutex<Option<reqwest::ClientBuilder>>,
}

impl LazyClient {
    pub(crate) fn new(builder: reqwest::ClientBuilder) -> Self {
        let lazy = Self(Arc::new(LazyInner {
            client: OnceLock::new(),
            builder: Mutex::new(Some(builder)),
        }));
        let early = lazy.clone();
        // Without the thread, the first use builds it.
        let _ = std::thread::Builder::new()
            .name("http-client-init".into())
            .spawn(move || {
                early.client();
            });
        lazy
    }

    /// The built client, waiting for the build if it is still running.
    fn client(&self) -> &reqwest::Client {
        self.0.client.get_or_init(|| {
            let builder = self
                .0
                .builder
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .expect("the one initialisation takes the builder");
            match builder.build() {
                Ok(client) => client,
                // Only the TLS setup can fail (no root certificates on the machine): no request
                // could be served, so stop as a bad start would, and the host restarts us.
                Err(e) => {
                    let cause = std::error::Error::source(&e)
                        .map(|c| format!(": {c}"))
                        .unwrap_or_default();
                    eprintln!("resume-gateway: cannot set up HTTPS: {e}{cause}");
                    std::process::exit(1)
                }
            }
        })
    }
}

impl std::ops::Deref for LazyClient {
    type Target = reqwest::Client;

    fn deref(&self) -> &reqwest::Client {
        self.client()
    }
}

/// So the identity pipeline's transport starts the same way. The signature is the one
/// `#[async_trait]` gives the trait; this only hands the call to reqwest's own implementation.
impl azure_core::http::HttpClient for LazyClient {
    fn execute_request<'life0, 'life1, 'async_trait>(
        &'life0 self,
        request: &'life1 azure_core::http::Request,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = azure_core::Result<azure_core::http::AsyncRawResponse>>
                + Send
                + 'async_trait,
        >,
    >
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        azure_core::http::HttpClient::execute_request(self.client(), request)
    }
}

impl std::fmt::Debug for LazyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyClient")
            .field("built", &self.0.client.get().is_some())
            .finish()
    }
}
