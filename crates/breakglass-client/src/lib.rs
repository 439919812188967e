//! A small typed HTTP client for the breakglass server's API (docs/api.md),
//! used by the CLI, Git hooks and CI steps. One method per endpoint; the
//! request and response bodies are the shared types of
//! [`breakglass_core::api`], so client and server cannot drift apart.
//!
//! Security: it carries bearer tokens, and the server it talks to (or a
//! machine in between) controls every answer.
//! The token goes only into the `Authorization` header of requests to the
//! configured server, marked sensitive; it never appears in an error message
//! or in `Debug` output, redirects are not followed (so the header cannot be
//! replayed to another host), and [`fetch_jwks`], which may fetch from any
//! URL, never sends it.
//!
//! Time-outs: 5 s to connect, 30 s for a whole request. Response bodies are
//! capped at [`MAX_RESPONSE_BYTES`] so that a misbehaving server cannot
//! exhaust the caller's memory.
//!
//! TLS is rustls with the ring crypto provider, installed as the process
//! default the first time a client is built (unless the process installed
//! one of its own first).

use std::fmt;
use std::sync::Once;
use std::time::Duration;

use breakglass_core::api::{
    ApiTokenList, ApiTokenView, ApproveRequest, ChallengeRequest, ChallengeResponse, CheckResponse, CheckpointView,
    CiStatus, CreateApiToken, CreatedApiToken, EntryView, ErrorBody, ErrorDetail, EventRecorded, EventRequest,
    ExtendRequest, GrantList, GrantRequest, GrantStatus, GrantView, IncidentList, IncidentView, LoginRequest,
    LoginResponse, NotificationList, NotificationView, PolicyReloaded, ReasonRequest, RepoList, RepoRegistration,
    ReviewDecision, ReviewList, ReviewView, SessionList, SessionsEnded, TokenResponse, WhoAmI,
};
use breakglass_core::grant::GrantState;
use reqwest::header::{AUTHORIZATION, HeaderValue, LOCATION};
use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Where `breakglass serve` listens unless told otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7468";
/// How long to wait for a TCP (and TLS) connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole request may take, connection and response body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Larger response bodies are refused.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// Server-supplied text quoted in an error is cut to this many characters.
const MAX_QUOTE_CHARS: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server URL given to [`Client::new`] (or [`fetch_jwks`]) is unusable.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The bearer token cannot be sent in an HTTP header. The token itself is
    /// never repeated.
    #[error("the token cannot be used: it contains characters that are not allowed in an HTTP header")]
    InvalidToken,
    /// An argument that would go into the URL path is unusable (empty, `.`, `..`).
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidArgument { what: &'static str, value: String, reason: &'static str },
    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
    /// No connection: refused, unresolvable, TLS failure, connect time-out,
    /// or the connection broke before a response arrived.
    #[error("the breakglass server at {url} could not be reached: {detail}")]
    Unreachable { url: String, detail: String },
    /// Connected, but no complete response within [`REQUEST_TIMEOUT`].
    #[error("the breakglass server at {url} did not answer within {} s", REQUEST_TIMEOUT.as_secs())]
    TimedOut { url: String },
    /// The server answered with an error body (`{"error": {...}}`).
    #[error("{} (HTTP {status}, {}){}", error.message, error.code, reasons_suffix(&error.reasons))]
    Api { status: u16, error: ErrorDetail },
    /// The server answered with something that is not what the API promises:
    /// a body that does not parse, one that is too large, an error without an
    /// error body (a proxy's HTML page, say), or a redirect.
    #[error("unexpected response from {url} (HTTP {status}): {detail}")]
    BadResponse { url: String, status: u16, detail: String },
}

impl ClientError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::BadResponse { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The API error code (`unauthorized`, `policy_denied`, …), when the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { error, .. } => Some(&error.code),
            _ => None,
        }
    }
}

fn reasons_suffix(reasons: &[String]) -> String {
    reasons.iter().map(|r| format!("\n  - {r}")).collect()
}

/// Server-supplied text made safe to print on a terminal: control
/// characters (escape sequences included) are shown escaped, and it is cut
/// to a reasonable length.
fn quote(text: &str) -> String {
    let mut out = String::new();
    for (idx, c) in text.trim().chars().enumerate() {
        if idx == MAX_QUOTE_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() && c != '\n' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn clean_detail(detail: ErrorDetail) -> ErrorDetail {
    ErrorDetail {
        code: quote(&detail.code),
        message: quote(&detail.message),
        reasons: detail.reasons.iter().map(|r| quote(r)).collect(),
    }
}

/// Parses and checks a server URL: `http` or `https`, no credentials, no
/// query or fragment. A path prefix (`https://example.com/breakglass`) is
/// kept.
fn parse_base_url(input: &str) -> Result<Url, ClientError> {
    let url = parse_url(input)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ClientError::InvalidUrl {
            url: quote(input),
            reason: "it must not have a query or fragment".into(),
        });
    }
    Ok(url)
}

/// Parses and checks any URL fetched: `http` or `https`, with a host, no credentials.
fn parse_url(input: &str) -> Result<Url, ClientError> {
    let bad = |reason: &str| ClientError::InvalidUrl { url: quote(input), reason: reason.to_owned() };
    let url = Url::parse(input.trim()).map_err(|e| bad(&format!("{e} (expected e.g. {DEFAULT_SERVER})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    // Credentials in the URL would end up in error messages and the credentials file's keys.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("it must not contain a user name or password; tokens go in the Authorization header"));
    }
    Ok(url)
}

/// The canonical form of a server URL, without a trailing slash
/// (`HTTP://127.0.0.1:7468/` → `http://127.0.0.1:7468`): what a token is
/// stored under, and the default grant-token issuer.
pub fn normalize_server_url(input: &str) -> Result<String, ClientError> {
    Ok(parse_base_url(input)?.as_str().trim_end_matches('/').to_owned())
}

/// A path segment from the caller: non-empty and not `.` or `..`, which the
/// URL library would silently drop (turning `/v1/grants/../revoke` into
/// another endpoint). Everything else is percent-encoded when it is added.
fn segment<'a>(what: &'static str, value: &'a str) -> Result<&'a str, ClientError> {
    let reason = match value {
        "" => "it is empty",
        "." | ".." => "it is not an identifier",
        _ => return Ok(value),
    };
    Err(ClientError::InvalidArgument { what, value: quote(value), reason })
}

fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // An error means the process already installed a provider; that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// `plain`: the client only ever talks to an `http://` server (redirects are
/// off), so it loads no trust roots: loading the system's costs a Git hook
/// or a CI step about 3 ms. An `https://` request from it would fail to
/// verify any certificate: closed, not open.
fn http_client(timeout: Duration, plain: bool) -> Result<reqwest::Client, ClientError> {
    install_crypto_provider();
    let builder = reqwest::Client::builder();
    let builder = if plain { builder.tls_certs_only([]) } else { builder };
    builder
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .timeout(timeout)
        // The API never redirects; following one could carry the bearer token elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("breakglass-client/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ClientError::Setup(error_chain(&e)))
}

/// The causes of a reqwest error, innermost last, without the URL (which the
/// caller names once).
fn error_chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        // hyper-util's "client error (Connect)" says nothing the next cause does not.
        if !text.starts_with("client error (") && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    if parts.is_empty() {
        parts.push(quote(&e.to_string()));
    }
    parts.join(": ")
}

fn transport_error(url: &Url, e: &reqwest::Error) -> ClientError {
    let url = display_url(url);
    if e.is_timeout() && !e.is_connect() {
        return ClientError::TimedOut { url };
    }
    let mut detail = error_chain(e);
    if e.is_timeout() {
        detail = format!("no connection within {} s ({detail})", CONNECT_TIMEOUT.as_secs());
    }
    ClientError::Unreachable { url, detail }
}

/// A URL for messages: scheme, host, port and path, never a query.
fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// A response that arrived: its status and (capped) body.
struct Answer {
    url: Url,
    status: u16,
    location: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn bad(&self, detail: impl Into<String>) -> ClientError {
        ClientError::BadResponse { url: display_url(&self.url), status: self.status, detail: detail.into() }
    }

    /// The body as `T` on success, else the error the server sent.
    fn decode<T: DeserializeOwned>(self) -> Result<T, ClientError> {
        self.check()?;
        serde_json::from_slice(&self.body).map_err(|e| self.bad(format!("the body is not the expected JSON: {e}")))
    }

    /// The body as text on success, else the error the server sent.
    fn text(self) -> Result<String, ClientError> {
        self.check()?;
        String::from_utf8(self.body.clone()).map_err(|_| self.bad("the body is not UTF-8"))
    }

    fn check(&self) -> Result<(), ClientError> {
        if (200..300).contains(&self.status) {
            return Ok(());
        }
        if (300..400).contains(&self.status) {
            let to = self.location.as_deref().map(quote).unwrap_or_else(|| "an unnamed location".into());
            return Err(self.bad(format!("redirected to {to}; redirects are not followed, use that URL instead")));
        }
        match serde_json::from_slice::<ErrorBody>(&self.body) {
            Ok(body) => Err(ClientError::Api { status: self.status, error: clean_detail(body.error) }),
            Err(_) => {
                let excerpt = quote(&String::from_utf8_lossy(&self.body));
                let detail = if excerpt.is_empty() {
                    "an error without a body".to_owned()
                } else {
                    format!("an error without an API error body: {excerpt}")
                };
                Err(self.bad(detail))
            }
        }
    }
}

async fn execute(request: reqwest::RequestBuilder, url: &Url) -> Result<Answer, ClientError> {
    let mut response = request.send().await.map_err(|e| transport_error(url, &e))?;
    let status = response.status().as_u16();
    let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let too_large = || ClientError::BadResponse {
        url: display_url(url),
        status,
        detail: format!("the body is larger than {MAX_RESPONSE_BYTES} bytes"),
    };
    if response.content_length().is_some_and(|len| len > MAX_RESPONSE_BYTES as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(url, &e))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer { url: url.clone(), status, location, body })
}

/// Fetches a JWKS document from any URL, without credentials: the bearer
/// token is never sent to a URL other than the configured server's API.
pub async fn fetch_jwks(url: &str) -> Result<String, ClientError> {
    let url = parse_url(url)?;
    let http = http_client(REQUEST_TIMEOUT, false)?;
    execute(http.get(url.clone()), &url).await?.text()
}

/// Asks GitHub Actions' token service for the job's OIDC ID token
/// (`ACTIONS_ID_TOKEN_REQUEST_URL` with `&audience=…`, authorised by
/// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`); returns the token.
pub async fn fetch_actions_id_token(url: &str, request_token: &str) -> Result<String, ClientError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        value: String,
    }
    let url = parse_url(url)?;
    let http = http_client(REQUEST_TIMEOUT, false)?;
    let mut auth =
        HeaderValue::from_str(&format!("bearer {}", request_token.trim())).map_err(|_| ClientError::InvalidToken)?;
    auth.set_sensitive(true);
    let answer: Answer = execute(http.get(url.clone()).header(AUTHORIZATION, auth), &url).await?.decode()?;
    Ok(answer.value)
}

/// Posts JSON to third-party receivers (notification webhooks, Slack).
/// Cheap to clone. Errors never repeat the URL: a Slack webhook's path is
/// its secret, so the caller names the receiver.
#[derive(Clone)]
pub struct Poster {
    http: reqwest::Client,
}

impl Poster {
    pub fn new(timeout: Duration) -> Result<Poster, ClientError> {
        Ok(Poster { http: http_client(timeout, false)? })
    }

    /// `POST url` with a JSON `body` and extra headers; success is any 2xx.
    pub async fn post_json(&self, url: &str, body: String, headers: &[(&str, String)]) -> Result<(), String> {
        let mut req = self.http.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let res = req.send().await.map_err(|e| {
            if e.is_timeout() {
                "timed out".to_owned()
            } else {
                format!("unreachable: {}", error_chain(&e.without_url()))
            }
        })?;
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        Err(format!("answered HTTP {}", status.as_u16()))
    }
}

/// One answer of a hosted forge's API: the status, the headers the caller
/// needs (rate limits, `Link`, `Retry-After`), the body.
#[derive(Clone, Debug)]
pub struct ApiAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ApiAnswer {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A JSON client of a hosted forge's REST API (GitHub, GitLab, Gitea). The
/// caller sets every header, including the credential, which is marked
/// sensitive and never appears in an error; redirects are not followed.
#[derive(Clone)]
pub struct ForgeHttp {
    http: reqwest::Client,
}

impl std::fmt::Debug for ForgeHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForgeHttp")
    }
}

/// The headers a forge client keeps from an answer.
const KEPT_HEADERS: &[&str] = &[
    "link",
    "retry-after",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "ratelimit-remaining",
    "ratelimit-reset",
    "x-accepted-github-permissions",
];

impl ForgeHttp {
    pub fn new(timeout: Duration) -> Result<ForgeHttp, ClientError> {
        Ok(ForgeHttp { http: http_client(timeout, false)? })
    }

    /// Sends `method url` with `headers` (the one named `authorization` or
    /// `private-token` is sent as sensitive) and an optional JSON body.
    /// An answer of any status is `Ok`; only a transport failure is `Err`,
    /// with its cause and without the URL's query or any header.
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: Option<String>,
    ) -> Result<ApiAnswer, String> {
        let method =
            reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| format!("invalid method {method:?}"))?;
        let mut req = self.http.request(method, url);
        for (name, value) in headers {
            let mut v = HeaderValue::from_str(value).map_err(|_| format!("header {name} is not a valid value"))?;
            if name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("private-token") {
                v.set_sensitive(true);
            }
            req = req.header(*name, v);
        }
        if let Some(b) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json").body(b);
        }
        let res = req.send().await.map_err(|e| {
            if e.is_timeout() {
                "timed out".to_owned()
            } else {
                format!("unreachable: {}", error_chain(&e.without_url()))
            }
        })?;
        let status = res.status().as_u16();
        let headers = KEPT_HEADERS
            .iter()
            .filter_map(|k| {
                res.headers().get(*k).and_then(|v| v.to_str().ok()).map(|v| ((*k).to_owned(), v.to_owned()))
            })
            .collect();
        let body = res.bytes().await.map_err(|e| format!("the answer's body was cut short: {}", error_chain(&e)))?;
        Ok(ApiAnswer { status, headers, body: body.to_vec() })
    }
}

/// A client of one breakglass server, with an optional bearer token (a
/// session token from `breakglass login` or an API token). Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    base_str: String,
    /// `Bearer <token>`, marked sensitive. Never printed.
    auth: Option<HeaderValue>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_str)
            .field("token", &self.auth.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:7468`,
    /// or with a path prefix behind a reverse proxy). The URL is checked
    /// here; nothing is sent until a method is called.
    pub fn new(base_url: &str, token: Option<String>) -> Result<Client, ClientError> {
        Client::with_timeout(base_url, token, REQUEST_TIMEOUT)
    }

    /// [`Client::new`] with a shorter whole-request time-out (for Git hooks,
    /// which must not keep a push waiting on an unreachable server).
    pub fn with_timeout(base_url: &str, token: Option<String>, timeout: Duration) -> Result<Client, ClientError> {
        let mut base = parse_base_url(base_url)?;
        let base_str = base.as_str().trim_end_matches('/').to_owned();
        // Endpoint paths are appended segment by segment; a trailing empty segment would double the slash.
        if let Ok(mut segments) = base.path_segments_mut() {
            segments.pop_if_empty();
        }
        let auth = match token {
            None => None,
            Some(token) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                    .map_err(|_| ClientError::InvalidToken)?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let plain = base.scheme() == "http";
        Ok(Client { http: http_client(timeout, plain)?, base, base_str, auth })
    }

    /// The server URL, normalised, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_str
    }

    /// Whether requests carry a bearer token.
    pub fn has_token(&self) -> bool {
        self.auth.is_some()
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.extend(segments);
        }
        url
    }

    fn request(&self, method: Method, url: &Url) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, url.clone());
        if let Some(auth) = &self.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        request
    }

    async fn get<T: DeserializeOwned>(&self, url: Url) -> Result<T, ClientError> {
        execute(self.request(Method::GET, &url), &url).await?.decode()
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, url: Url, body: &B) -> Result<T, ClientError> {
        execute(self.request(Method::POST, &url).json(body), &url).await?.decode()
    }

    async fn post_empty<T: DeserializeOwned>(&self, url: Url) -> Result<T, ClientError> {
        execute(self.request(Method::POST, &url), &url).await?.decode()
    }

    /// `POST /v1/login/challenge`: a single-use challenge for `principal` to sign.
    pub async fn login_challenge(&self, principal: &str) -> Result<ChallengeResponse, ClientError> {
        let body = ChallengeRequest { principal: principal.to_owned() };
        self.post(self.url(&["v1", "login", "challenge"]), &body).await
    }

    /// `POST /v1/login`: trades a signed challenge for a session token.
    pub async fn login(&self, request: &LoginRequest) -> Result<LoginResponse, ClientError> {
        self.post(self.url(&["v1", "login"]), request).await
    }

    /// `POST /v1/logout`: ends this session on the server.
    pub async fn logout(&self) -> Result<SessionsEnded, ClientError> {
        self.post_empty(self.url(&["v1", "logout"])).await
    }

    /// `GET /v1/sessions[?principal=&all=true]`: your sessions (an admin: anyone's).
    pub async fn sessions(&self, principal: Option<&str>, all: bool) -> Result<SessionList, ClientError> {
        let mut url = self.url(&["v1", "sessions"]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(p) = principal {
                query.append_pair("principal", p);
            }
            if all {
                query.append_pair("all", "true");
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        self.get(url).await
    }

    /// `DELETE /v1/sessions/{id}`: ends one session (yours, or any for an admin).
    pub async fn revoke_session(&self, id: &str) -> Result<SessionsEnded, ClientError> {
        let url = self.url(&["v1", "sessions", segment("session id", id)?]);
        execute(self.request(Method::DELETE, &url), &url).await?.decode()
    }

    /// `DELETE /v1/sessions?principal=NAME`: ends every session of a principal (admin).
    pub async fn revoke_sessions_of(&self, principal: &str) -> Result<SessionsEnded, ClientError> {
        let mut url = self.url(&["v1", "sessions"]);
        url.query_pairs_mut().append_pair("principal", principal);
        execute(self.request(Method::DELETE, &url), &url).await?.decode()
    }

    /// `GET /v1/whoami`
    pub async fn whoami(&self) -> Result<WhoAmI, ClientError> {
        self.get(self.url(&["v1", "whoami"])).await
    }

    /// `POST /v1/grants`: asks for a grant; it is active at once or pending approvals.
    pub async fn request_grant(&self, request: &GrantRequest) -> Result<GrantView, ClientError> {
        self.post(self.url(&["v1", "grants"]), request).await
    }

    /// `GET /v1/grants?state=&principal=`: grants, optionally only those in
    /// `state` or held by `principal`.
    pub async fn list_grants(
        &self,
        state: Option<GrantState>,
        principal: Option<&str>,
    ) -> Result<GrantList, ClientError> {
        let mut url = self.url(&["v1", "grants"]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(state) = state {
                query.append_pair("state", state.as_str());
            }
            if let Some(principal) = principal {
                query.append_pair("principal", principal);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        self.get(url).await
    }

    /// `GET /v1/incidents[?open=true]`: incidents, newest first.
    pub async fn incidents(&self, open: bool) -> Result<IncidentList, ClientError> {
        let mut url = self.url(&["v1", "incidents"]);
        if open {
            url.query_pairs_mut().append_pair("open", "true");
        }
        self.get(url).await
    }

    /// `GET /v1/incidents/{id}`
    pub async fn incident(&self, id: &str) -> Result<IncidentView, ClientError> {
        self.get(self.url(&["v1", "incidents", segment("incident id", id)?])).await
    }

    /// `GET /v1/reviews[?open=true|overdue=true]`: reviews, newest first.
    pub async fn reviews(&self, open: bool, overdue: bool) -> Result<ReviewList, ClientError> {
        let mut url = self.url(&["v1", "reviews"]);
        if open {
            url.query_pairs_mut().append_pair("open", "true");
        }
        if overdue {
            url.query_pairs_mut().append_pair("overdue", "true");
        }
        self.get(url).await
    }

    /// `GET /v1/reviews/{id}`: a review with its timeline.
    pub async fn review(&self, id: &str) -> Result<ReviewView, ClientError> {
        self.get(self.url(&["v1", "reviews", segment("review id", id)?])).await
    }

    /// `POST /v1/reviews/{id}/export`: a verifiable report (the export is logged).
    pub async fn export_review(&self, id: &str) -> Result<breakglass_core::report::Report, ClientError> {
        self.post_empty(self.url(&["v1", "reviews", segment("review id", id)?, "export"])).await
    }

    /// `POST /v1/reviews/{id}/approve` (or `/flag`).
    pub async fn decide_review(&self, id: &str, approve: bool, d: &ReviewDecision) -> Result<ReviewView, ClientError> {
        let action = if approve { "approve" } else { "flag" };
        self.post(self.url(&["v1", "reviews", segment("review id", id)?, action]), d).await
    }

    /// `POST /v1/debug/clock`: moves a test server's clock forward (admin;
    /// only a server started with `--unsafe-test-clock` has the endpoint).
    pub async fn advance_test_clock(&self, ms: i64) -> Result<serde_json::Value, ClientError> {
        self.post(self.url(&["v1", "debug", "clock"]), &serde_json::json!({ "advance_ms": ms })).await
    }

    /// `GET /v1/drift`: what the server sees drifting.
    pub async fn drift(&self) -> Result<breakglass_core::api::DriftReport, ClientError> {
        self.get(self.url(&["v1", "drift"])).await
    }

    /// `GET /v1/forges`: the managed forge repositories and their bypasses.
    pub async fn forges(&self) -> Result<breakglass_core::api::ForgeStatusList, ClientError> {
        self.get(self.url(&["v1", "forges"])).await
    }

    /// `POST /v1/forges/install`
    pub async fn forge_install(
        &self,
        forge: &str,
        repo: &str,
    ) -> Result<breakglass_core::api::ForgeRepoStatus, ClientError> {
        let body = breakglass_core::api::ForgeInstall { forge: forge.into(), repo: repo.into() };
        self.post(self.url(&["v1", "forges", "install"]), &body).await
    }

    /// `POST /v1/drills`
    pub async fn record_drill(
        &self,
        report: &breakglass_core::api::DrillReport,
    ) -> Result<breakglass_core::api::DrillRecord, ClientError> {
        self.post(self.url(&["v1", "drills"]), report).await
    }

    /// `GET /v1/drills?limit=N`
    pub async fn drills(&self, limit: u32) -> Result<breakglass_core::api::DrillList, ClientError> {
        let mut url = self.url(&["v1", "drills"]);
        url.query_pairs_mut().append_pair("limit", &limit.to_string());
        self.get(url).await
    }

    /// `POST /v1/drift/check`
    pub async fn drift_check(&self) -> Result<breakglass_core::api::DriftCheck, ClientError> {
        self.post(self.url(&["v1", "drift", "check"]), &serde_json::json!({})).await
    }

    /// `GET /v1/log/consistency?old=N`
    pub async fn consistency(&self, old: u64) -> Result<breakglass_core::api::ConsistencyView, ClientError> {
        let mut url = self.url(&["v1", "log", "consistency"]);
        url.query_pairs_mut().append_pair("old", &old.to_string());
        self.get(url).await
    }

    /// `GET /v1/stats[?since=]`: the friction figures.
    pub async fn stats(&self, since: Option<&str>) -> Result<breakglass_core::api::StatsView, ClientError> {
        let mut url = self.url(&["v1", "stats"]);
        if let Some(s) = since {
            url.query_pairs_mut().append_pair("since", s);
        }
        self.get(url).await
    }

    /// `GET /v1/notifications[?status=]`: queued notifications and their delivery state.
    pub async fn notifications(&self, status: Option<&str>) -> Result<NotificationList, ClientError> {
        let mut url = self.url(&["v1", "notifications"]);
        if let Some(s) = status {
            url.query_pairs_mut().append_pair("status", s);
        }
        self.get(url).await
    }

    /// `POST /v1/notifications/{id}/retry`: queue a failed notification again.
    pub async fn retry_notification(&self, id: &str) -> Result<NotificationView, ClientError> {
        self.post_empty(self.url(&["v1", "notifications", segment("notification id", id)?, "retry"])).await
    }

    /// `GET /v1/grants/{id}`
    pub async fn grant(&self, id: &str) -> Result<GrantView, ClientError> {
        self.get(self.url(&["v1", "grants", segment("grant id", id)?])).await
    }

    /// `GET /v1/grants/{id}/status`: the small, fast answer for hooks and CI steps.
    pub async fn grant_status(&self, id: &str) -> Result<GrantStatus, ClientError> {
        self.get(self.url(&["v1", "grants", segment("grant id", id)?, "status"])).await
    }

    /// `POST /v1/grants/{id}/approve`
    pub async fn approve(&self, id: &str, request: &ApproveRequest) -> Result<GrantView, ClientError> {
        self.post(self.url(&["v1", "grants", segment("grant id", id)?, "approve"]), request).await
    }

    /// `POST /v1/grants/{id}/deny`
    pub async fn deny(&self, id: &str, reason: &str) -> Result<GrantView, ClientError> {
        let body = ReasonRequest { reason: reason.to_owned() };
        self.post(self.url(&["v1", "grants", segment("grant id", id)?, "deny"]), &body).await
    }

    /// `POST /v1/grants/{id}/revoke`
    pub async fn revoke(&self, id: &str, reason: &str) -> Result<GrantView, ClientError> {
        let body = ReasonRequest { reason: reason.to_owned() };
        self.post(self.url(&["v1", "grants", segment("grant id", id)?, "revoke"]), &body).await
    }

    /// `POST /v1/grants/{id}/extend`
    pub async fn extend(&self, id: &str, request: &ExtendRequest) -> Result<GrantView, ClientError> {
        self.post(self.url(&["v1", "grants", segment("grant id", id)?, "extend"]), request).await
    }

    /// `POST /v1/grants/{id}/token`: a signed grant token for an active grant.
    pub async fn grant_token(&self, id: &str) -> Result<TokenResponse, ClientError> {
        self.post_empty(self.url(&["v1", "grants", segment("grant id", id)?, "token"])).await
    }

    /// `GET /v1/check?principal=&scope=&capability=`: does `principal` hold an
    /// effective grant covering `scope` with `capability`?
    pub async fn check(&self, principal: &str, scope: &str, capability: &str) -> Result<CheckResponse, ClientError> {
        let mut url = self.url(&["v1", "check"]);
        url.query_pairs_mut()
            .append_pair("principal", principal)
            .append_pair("scope", scope)
            .append_pair("capability", capability);
        self.get(url).await
    }

    /// `POST /v1/tokens`: a new API token; its secret is in the answer, once.
    pub async fn create_api_token(&self, request: &CreateApiToken) -> Result<CreatedApiToken, ClientError> {
        self.post(self.url(&["v1", "tokens"]), request).await
    }

    /// `GET /v1/tokens`
    pub async fn list_api_tokens(&self) -> Result<ApiTokenList, ClientError> {
        self.get(self.url(&["v1", "tokens"])).await
    }

    /// `DELETE /v1/tokens/{id}`
    pub async fn revoke_api_token(&self, id: &str) -> Result<ApiTokenView, ClientError> {
        let url = self.url(&["v1", "tokens", segment("API token id", id)?]);
        execute(self.request(Method::DELETE, &url), &url).await?.decode()
    }

    /// `POST /v1/policy/reload`: the server re-reads its policy directory.
    pub async fn reload_policy(&self) -> Result<PolicyReloaded, ClientError> {
        self.post_empty(self.url(&["v1", "policy", "reload"])).await
    }

    /// `GET /v1/log/checkpoint`: the latest signed checkpoint.
    pub async fn checkpoint(&self) -> Result<CheckpointView, ClientError> {
        self.get(self.url(&["v1", "log", "checkpoint"])).await
    }

    /// `GET /v1/ci/status`: break-glass mode for a CI job's pipeline scope.
    pub async fn ci_status(
        &self,
        scope: &str,
        gate: Option<&str>,
        principal: Option<&str>,
    ) -> Result<CiStatus, ClientError> {
        let mut url = self.url(&["v1", "ci", "status"]);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("scope", scope);
            if let Some(g) = gate {
                q.append_pair("gate", g);
            }
            if let Some(p) = principal {
                q.append_pair("principal", p);
            }
        }
        self.get(url).await
    }

    /// `POST /v1/events`: report an event (idempotent on its id).
    pub async fn record_event(&self, event: &EventRequest) -> Result<EventRecorded, ClientError> {
        self.post(self.url(&["v1", "events"]), event).await
    }

    /// `POST /v1/repos`: register a repository whose hooks were installed (or removed).
    pub async fn register_repo(&self, repo: &RepoRegistration) -> Result<RepoRegistration, ClientError> {
        self.post(self.url(&["v1", "repos"]), repo).await
    }

    /// `GET /v1/repos`
    pub async fn repos(&self) -> Result<RepoList, ClientError> {
        self.get(self.url(&["v1", "repos"])).await
    }

    /// `GET /v1/repos/refs?repo=NAME`
    pub async fn repo_refs(&self, repo: &str) -> Result<breakglass_core::api::RefList, ClientError> {
        let mut url = self.url(&["v1", "repos", "refs"]);
        url.query_pairs_mut().append_pair("repo", repo);
        self.get(url).await
    }

    /// `GET /v1/log/entries/{index}`
    pub async fn log_entry(&self, index: u64) -> Result<EntryView, ClientError> {
        self.get(self.url(&["v1", "log", "entries", &index.to_string()])).await
    }

    /// `GET /.well-known/jwks.json`, the raw JSON text, for
    /// [`breakglass_core::token::KeySet::parse`]. Sent without the token.
    pub async fn jwks(&self) -> Result<String, ClientError> {
        let url = self.url(&[".well-known", "jwks.json"]);
        execute(self.http.get(url.clone()), &url).await?.text()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;

    /// A one-shot HTTP server on 127.0.0.1:0 that answers the first request
    /// with `status` (e.g. `200 OK`), the `headers` lines and `body`, and
    /// hands back the request it saw.
    async fn serve_once(status: &str, headers: &str, body: &str) -> (String, tokio::task::JoinHandle<String>) {
        let response =
            format!("HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head and, when there is one, the body announced by Content-Length.
            loop {
                let n = socket.read(&mut buf).await.unwrap();
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen).to_string();
                if let Some(head_end) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                    if seen.len() >= head_end + 4 + len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            socket.write_all(response.as_bytes()).await.unwrap();
            socket.shutdown().await.unwrap();
            String::from_utf8_lossy(&seen).to_string()
        });
        (format!("http://{addr}"), handle)
    }

    #[test]
    fn urls_are_normalised_and_checked() {
        assert_eq!(normalize_server_url("HTTP://127.0.0.1:7468/").unwrap(), "http://127.0.0.1:7468");
        assert_eq!(normalize_server_url("https://example.com/bg/").unwrap(), "https://example.com/bg");
        for bad in ["127.0.0.1:7468", "ftp://example.com", "http://u:p@example.com", "http://example.com/?x=1", ""] {
            assert!(matches!(normalize_server_url(bad), Err(ClientError::InvalidUrl { .. })), "{bad}");
        }
        let client = Client::new("https://example.com/bg/", None).unwrap();
        assert_eq!(client.url(&["v1", "grants", "a/b c"]).as_str(), "https://example.com/bg/v1/grants/a%2Fb%20c");
        assert_eq!(client.url(&[".well-known", "jwks.json"]).as_str(), "https://example.com/bg/.well-known/jwks.json");
    }

    #[test]
    fn the_token_is_never_shown() {
        let client = Client::new(DEFAULT_SERVER, Some("bgs_secret-value".into())).unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("secret-value"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        let err = Client::new(DEFAULT_SERVER, Some("bgs_bad\nvalue".into())).unwrap_err();
        assert!(!err.to_string().contains("bad"), "{err}");
    }

    #[tokio::test]
    async fn dot_segments_are_refused() {
        let client = Client::new(DEFAULT_SERVER, None).unwrap();
        for id in ["", ".", ".."] {
            let err = client.revoke(id, "r").await.unwrap_err();
            assert!(matches!(err, ClientError::InvalidArgument { .. }), "{err}");
        }
    }

    #[tokio::test]
    async fn unreachable_names_the_url() {
        // Bind then drop, so that the port is (almost certainly) closed.
        let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let client = Client::new(&format!("http://{addr}"), None).unwrap();
        let err = client.whoami().await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{text}");
        assert!(text.contains(&format!("http://{addr}/v1/whoami")), "{text}");
        assert!(text.contains("could not be reached"), "{text}");
    }

    #[tokio::test]
    async fn api_errors_are_parsed_and_the_token_is_sent() {
        let (url, server) = serve_once(
            "403 Forbidden",
            "content-type: application/json\r\n",
            r#"{"error":{"code":"policy_denied","message":"no policy permits it","reasons":["no permit matched"]}}"#,
        )
        .await;
        let client = Client::new(&url, Some("bgs_abc".into())).unwrap();
        let err = client
            .request_grant(&GrantRequest {
                scopes: vec!["git:a/b@refs/heads/main".into()],
                capabilities: vec!["push".into()],
                duration: "30m".into(),
                reason: "fix".into(),
                incident: None,
                drill: false,
            })
            .await
            .unwrap_err();
        let seen = server.await.unwrap();
        assert!(seen.starts_with("POST /v1/grants HTTP/1.1\r\n"), "{seen}");
        assert!(seen.to_ascii_lowercase().contains("authorization: bearer bgs_abc\r\n"), "{seen}");
        assert_eq!(err.status(), Some(403));
        assert_eq!(err.code(), Some("policy_denied"));
        assert_eq!(err.to_string(), "no policy permits it (HTTP 403, policy_denied)\n  - no permit matched");
    }

    #[tokio::test]
    async fn a_non_api_error_body_is_a_bad_response() {
        let (url, server) = serve_once("502 Bad Gateway", "content-type: text/html\r\n", "<h1>\x1b[31mbad</h1>").await;
        let client = Client::new(&url, None).unwrap();
        let err = client.list_grants(Some(GrantState::Active), Some("a b")).await.unwrap_err();
        let seen = server.await.unwrap();
        assert!(seen.starts_with("GET /v1/grants?state=active&principal=a+b HTTP/1.1\r\n"), "{seen}");
        assert!(!seen.to_ascii_lowercase().contains("authorization"), "{seen}");
        assert!(matches!(err, ClientError::BadResponse { status: 502, .. }), "{err}");
        assert!(!err.to_string().contains('\x1b'), "{err}");
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let (url, server) = serve_once("301 Moved Permanently", "location: https://elsewhere.example/\r\n", "").await;
        let client = Client::new(&url, Some("bgs_abc".into())).unwrap();
        let err = client.whoami().await.unwrap_err();
        server.await.unwrap();
        assert!(err.to_string().contains("redirected to https://elsewhere.example/"), "{err}");
    }

    #[tokio::test]
    async fn success_bodies_decode() {
        let (url, server) = serve_once(
            "200 OK",
            "content-type: application/json\r\n",
            r#"{"name":"alice","kind":"session","role":"user","groups":["sre"]}"#,
        )
        .await;
        let client = Client::new(&url, Some("bgs_abc".into())).unwrap();
        let who = client.whoami().await.unwrap();
        server.await.unwrap();
        assert_eq!(who.name, "alice");
        assert_eq!(who.groups, ["sre"]);
    }
}
