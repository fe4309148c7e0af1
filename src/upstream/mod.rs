//! Tessera as an OpenID Connect client of its upstream (Google by default):
//! discovery, the authorization request and code exchange (the `oauth2`
//! crate, with Tessera's own `state`, `nonce` and PKCE), and the checks on
//! the upstream's ID token.

pub mod id_token;
pub mod jwks;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, anyhow};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, StandardRevocableToken,
    StandardTokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};

use crate::config::{AllowedDomains, Config};
use crate::secret::Secret;
use id_token::{Expected, IdTokenError, UpstreamIdentity};
use jwks::UpstreamKeys;

/// Largest upstream answer read (discovery, JWKS, token response).
const MAX_BODY: usize = 256 * 1024;

/// Reads a JSON document from the upstream: 200 only, bounded size.
pub(crate) async fn fetch(http: &reqwest::Client, url: &str) -> anyhow::Result<Vec<u8>> {
    let mut response = http
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(anyhow!("GET {url}: status {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(anyhow!("GET {url}: answer larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// oauth2's HTTP client: Tessera's (timeouts, no redirects), with the
/// answer's size bounded like `fetch` (oauth2's own reads whatever arrives).
struct Bounded(reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for Bounded {
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<oauth2::HttpResponse, Self::Error>>
                + Send
                + Sync
                + 'c,
        >,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(bounded_call(self.0.clone(), request))
    }
}

/// One bounded HTTP call for oauth2.
async fn bounded_call(
    http: reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, std::io::Error> {
    let io = |e: String| std::io::Error::other(e);
    let request = reqwest::Request::try_from(request).map_err(|e| io(e.to_string()))?;
    let mut response = http.execute(request).await.map_err(|e| io(e.to_string()))?;
    let mut builder = oauth2::http::Response::builder().status(response.status().as_u16());
    for (name, value) in response.headers() {
        builder = builder.header(name.as_str(), value.as_bytes());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| io(e.to_string()))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(io(format!("answer larger than {MAX_BODY} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    builder.body(body).map_err(|e| io(e.to_string()))
}

/// The upstream's discovery document, as far as Tessera uses it.
#[derive(Clone, Debug, Deserialize)]
pub struct Provider {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
}

/// The `id_token` member of the upstream's token response.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct IdTokenFields {
    pub id_token: Option<String>,
}

impl oauth2::ExtraTokenFields for IdTokenFields {}

type TokenResponse = StandardTokenResponse<IdTokenFields, BasicTokenType>;
type OidcClient = oauth2::Client<
    BasicErrorResponse,
    TokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Why an upstream login did not produce an identity.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream could not be reached or answered with an error.
    #[error("upstream unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// The upstream's ID token failed a check.
    #[error("upstream ID token refused: {0}")]
    IdToken(#[from] IdTokenError),
    /// The user is not in an allowed Google Workspace domain.
    #[error("{0}")]
    DomainNotAllowed(String),
}

/// A login sent to the upstream: what must be remembered to finish it.
pub struct LoginStart {
    pub url: url::Url,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: Secret,
}

pub struct Upstream {
    client_id: String,
    client_secret: Secret,
    issuer: String,
    allowed_domains: Option<AllowedDomains>,
    redirect_uri: String,
    http: reqwest::Client,
    provider: RwLock<Option<Arc<Provider>>>,
    keys: UpstreamKeys,
}

impl Upstream {
    /// `None` when no upstream client is configured (login disabled).
    pub fn from_config(config: &Config) -> anyhow::Result<Option<Self>> {
        let (Some(client_id), Some(secret)) =
            (&config.upstream.client_id, &config.upstream.client_secret)
        else {
            return Ok(None);
        };
        // Redirects off: an upstream must not bounce Tessera's requests
        // elsewhere (SSRF); a timeout on every request.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.upstream.timeout)
            .connect_timeout(config.upstream.timeout)
            .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Some(Self {
            client_id: client_id.clone(),
            client_secret: Secret::new(secret.expose_secret().to_owned()),
            issuer: config.upstream.issuer.clone(),
            allowed_domains: config.upstream.allowed_domains.clone(),
            redirect_uri: format!("{}/callback/google", config.issuer),
            keys: UpstreamKeys::new(http.clone()),
            http,
            provider: RwLock::new(None),
        }))
    }

    pub fn is_google(&self) -> bool {
        self.issuer == "https://accounts.google.com"
    }

    pub fn provider(&self) -> Option<Arc<Provider>> {
        self.provider.read().ok().and_then(|p| p.clone())
    }

    /// Discovery done (`/readyz`).
    pub fn is_ready(&self) -> bool {
        self.provider().is_some()
    }

    /// Reads `{issuer}/.well-known/openid-configuration` (OIDC Discovery §4);
    /// the document's `issuer` must be the configured one exactly (§4.3).
    pub async fn discover(&self) -> anyhow::Result<()> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let provider: Provider = serde_json::from_slice(&fetch(&self.http, &url).await?)
            .with_context(|| format!("{url} is not a discovery document"))?;
        if provider.issuer != self.issuer {
            return Err(anyhow!(
                "{url} names issuer {} instead of {}",
                provider.issuer,
                self.issuer
            ));
        }
        for endpoint in [
            &provider.authorization_endpoint,
            &provider.token_endpoint,
            &provider.jwks_uri,
        ] {
            crate::oauth::redirect_uri::check_web_uri(endpoint)
                .map_err(|e| anyhow!("upstream endpoint {endpoint}: {e}"))?;
        }
        self.keys.set_uri(provider.jwks_uri.clone());
        if let Ok(mut p) = self.provider.write() {
            *p = Some(Arc::new(provider));
        }
        Ok(())
    }

    /// Discovery at start-up, retried with back-off (1 s doubling to 60 s)
    /// until it succeeds: a slow upstream never stops Tessera from starting.
    pub fn spawn_discovery(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut delay = Duration::from_secs(1);
            loop {
                match self.discover().await {
                    Ok(()) => {
                        tracing::info!(issuer = %self.issuer, "upstream discovery done");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            retry_in = delay.as_secs(),
                            "upstream discovery failed"
                        );
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(60));
                    }
                }
            }
        })
    }

    fn client(&self, provider: &Provider) -> anyhow::Result<OidcClient> {
        Ok(oauth2::Client::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                self.client_secret.expose_secret().to_owned(),
            ))
            .set_auth_uri(AuthUrl::new(provider.authorization_endpoint.clone())?)
            .set_token_uri(TokenUrl::new(provider.token_endpoint.clone())?)
            .set_redirect_uri(RedirectUrl::new(self.redirect_uri.clone())?))
    }

    /// The authorization request to the upstream (OIDC Core §3.1.2.1) with a
    /// fresh state, nonce and S256 PKCE challenge. `reauthenticate` asks the
    /// user to pick the account again (Google knows no `prompt=login`).
    pub fn start_login(&self, reauthenticate: bool) -> Result<LoginStart, UpstreamError> {
        let provider = self.provider().ok_or_else(|| {
            UpstreamError::Unavailable(anyhow!("upstream discovery has not succeeded yet"))
        })?;
        let client = self.client(&provider).map_err(UpstreamError::Unavailable)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = crate::secret::random_token(32);
        let state = crate::secret::random_token(32);
        let state_for_request = state.clone();
        let mut request = client
            .authorize_url(move || CsrfToken::new(state_for_request))
            .add_scopes(["openid", "email", "profile"].map(|s| Scope::new(s.to_owned())))
            .add_extra_param("nonce", nonce.clone())
            .set_pkce_challenge(challenge);
        if reauthenticate {
            request = request.add_extra_param("prompt", "select_account");
        }
        // `hd` is only a hint to Google's account chooser; the ID token's
        // `hd` claim is what is checked.
        match &self.allowed_domains {
            Some(AllowedDomains::Only(domains)) if domains.len() == 1 => {
                request = request.add_extra_param("hd", domains.join(""));
            }
            Some(_) => request = request.add_extra_param("hd", "*"),
            None => {}
        }
        let (url, _) = request.url();
        Ok(LoginStart {
            url,
            state,
            nonce,
            pkce_verifier: Secret::new(verifier.secret().clone()),
        })
    }

    /// Exchanges the upstream's code and checks its ID token and domain.
    pub async fn finish_login(
        &self,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
        now: i64,
    ) -> Result<UpstreamIdentity, UpstreamError> {
        let provider = self.provider().ok_or_else(|| {
            UpstreamError::Unavailable(anyhow!("upstream discovery has not succeeded yet"))
        })?;
        let client = self.client(&provider).map_err(UpstreamError::Unavailable)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&Bounded(self.http.clone()))
            .await
            .map_err(|e| UpstreamError::Unavailable(anyhow!("upstream token endpoint: {e}")))?;
        let id_token = response.extra_fields().id_token.clone().ok_or_else(|| {
            UpstreamError::Unavailable(anyhow!("the upstream returned no id_token"))
        })?;
        let algs: Vec<jsonwebtoken::Algorithm> = provider
            .id_token_signing_alg_values_supported
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        let identity = id_token::verify(
            &id_token,
            &self.keys,
            &Expected {
                issuer: &self.issuer,
                client_id: &self.client_id,
                nonce,
                algs: &algs,
                now,
            },
        )
        .await?;
        self.check_domain(&identity)?;
        Ok(identity)
    }

    /// `TESSERA_GOOGLE_ALLOWED_DOMAINS`: the ID token's `hd` claim must be
    /// present and allowed.
    fn check_domain(&self, identity: &UpstreamIdentity) -> Result<(), UpstreamError> {
        let Some(allowed) = &self.allowed_domains else {
            return Ok(());
        };
        match (&identity.hosted_domain, allowed) {
            (None, _) => Err(UpstreamError::DomainNotAllowed(
                "this sign-in is limited to Google Workspace accounts".into(),
            )),
            (Some(_), AllowedDomains::AnyWorkspace) => Ok(()),
            (Some(hd), AllowedDomains::Only(list)) if list.contains(hd) => Ok(()),
            (Some(hd), AllowedDomains::Only(_)) => Err(UpstreamError::DomainNotAllowed(format!(
                "accounts of {hd} may not sign in here"
            ))),
        }
    }
}
