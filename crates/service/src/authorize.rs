//! The authorization endpoint (RFC 6749 §4.1, RFC 7636, RFC 9207, RFC 8707,
//! OpenID Connect Core §3.1.2): validating an authorization request, the
//! end user's sign-in and consent, and issuing the code.
//!
//! The order of checks is the security of this endpoint. Until the client
//! and its redirect URI are established, every failure is a page and never
//! a redirect, so the server cannot be used as an open redirector (RFC 9700
//! §4.11). The client's governance state is checked next, and a client that
//! may not be used gets a page that says why. Only then do errors go back to
//! the client, always with `state` and `iss`.
//!
//! A validated request waits in an *interaction*: a stored record bound to
//! the browser by a cookie, whose forms carry an anti-CSRF token derived
//! from both. Who the user is comes from a [`UserDirectory`]; this module
//! never sees a password store.

use charter_config::{Issuer, LoginConfig, TokensConfig};
use charter_policy::Policy;
use charter_protocol::{
    is_document_client_id, is_loopback_host, ClientMetadata, Error as ProtocolError, ErrorCode,
    GrantType, ResponseType,
};
use charter_store::{AuthorizationCode, ClientInUse, Consent, Interaction, Session, Store};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

use crate::credentials::{self, Credential, Hasher};
use crate::token::{audience as audience_for, grant_scope, unusable};
use crate::users::{EndUser, UserDirectory};
use crate::{Error, RequestContext};

/// Longest `state` and `nonce` accepted (they come back verbatim).
const MAX_ECHO_LEN: usize = 1024;

/// The query (GET) or form (POST) parameters of an authorization request.
/// Parameters sent more than once are listed in `repeated` (RFC 6749 §3.1:
/// an error), except `resource` (RFC 8707 §2), which may repeat.
#[derive(Debug, Default, Clone)]
pub struct AuthorizeParams {
    pub single: HashMap<String, String>,
    pub resources: Vec<String>,
    pub repeated: Vec<String>,
}

impl AuthorizeParams {
    fn get(&self, name: &str) -> Option<&str> {
        self.single.get(name).map(String::as_str)
    }
}

/// A validated authorization request, kept in its interaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    /// Where the response goes: the request's `redirect_uri`, or the
    /// client's only registered one.
    pub redirect_uri: String,
    /// Whether the request named `redirect_uri` (RFC 6749 §4.1.3: then the
    /// token request must repeat it).
    pub redirect_uri_given: bool,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    /// RFC 8707 resources, validated against the client's profile.
    pub resources: Vec<String>,
    pub dpop_jkt: Option<String>,
    /// `prompt=consent`: ask even if consent was given before.
    pub prompt_consent: bool,
    /// OIDC `max_age` (or the client's `default_max_age`): the longest time
    /// since the user entered a password, checked again at consent.
    #[serde(default)]
    pub max_age: Option<i64>,
}

/// OIDC Core §3.1.2.1 `prompt` and `max_age`: whether a session may be
/// used and whether the user may be asked anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Prompt {
    none: bool,
    login: bool,
    max_age: Option<i64>,
}

/// The browser's cookies, as the HTTP layer read them.
#[derive(Debug, Default, Clone)]
pub struct Browser {
    /// The browser-binding cookie.
    pub binding: Option<String>,
    /// The session cookie.
    pub session: Option<String>,
}

/// A page the HTTP layer renders.
#[derive(Debug, Clone, PartialEq)]
pub enum Page {
    /// Nothing can be sent back to the client: the client or its redirect
    /// URI is unknown, or the client may not be used (RFC 6749 §4.1.2.1).
    Error {
        status: u16,
        title: String,
        message: String,
    },
    Login(Box<LoginPage>),
    Consent(Box<ConsentPage>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoginPage {
    pub interaction: String,
    pub csrf: String,
    pub client_name: String,
    /// Shown above the form after a failed attempt.
    pub error: Option<String>,
    /// Shown above the form when the password is asked for again.
    pub notice: Option<String>,
    pub username: Option<String>,
}

/// What the user is asked to approve (issue 5: name, organization, scopes,
/// resources, how the client registered, a loopback warning).
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentPage {
    pub interaction: String,
    pub csrf: String,
    pub user: String,
    pub client_id: String,
    pub client_name: String,
    pub organization: String,
    pub scopes: Vec<String>,
    /// The audiences the tokens will be for.
    pub resources: Vec<String>,
    /// How the client came to exist, in words.
    pub registration: String,
    /// Where the user's browser will be sent afterwards.
    pub redirect_host: String,
    /// All redirect URIs of the client are on the loopback interface: any
    /// program on the user's machine could be receiving the code.
    pub loopback_only: bool,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub policy_uri: Option<String>,
    pub tos_uri: Option<String>,
}

/// What to answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Page(Page),
    /// `303 See Other` to this URL (never 307 after a POST: RFC 9700 §4.12).
    Redirect(String),
}

/// An answer and the cookies to set with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub outcome: Outcome,
    /// A new browser-binding cookie value.
    pub set_binding: Option<String>,
    /// A new session cookie value and its lifetime in seconds.
    pub set_session: Option<(String, u64)>,
}

impl Answer {
    fn page(page: Page) -> Self {
        Self {
            outcome: Outcome::Page(page),
            set_binding: None,
            set_session: None,
        }
    }
}

/// The login form's fields.
#[derive(Debug, Clone, Default)]
pub struct LoginForm {
    pub interaction: String,
    pub csrf: String,
    pub username: String,
    pub password: String,
}

/// The consent form's fields: `decision` is `allow` or `deny`.
#[derive(Debug, Clone, Default)]
pub struct ConsentForm {
    pub interaction: String,
    pub csrf: String,
    pub decision: String,
}

fn error_page(status: u16, title: &str, message: impl Into<String>) -> Answer {
    Answer::page(Page::Error {
        status,
        title: title.to_owned(),
        message: message.into(),
    })
}

/// A form from an interaction that no longer exists, another browser, or
/// a forged page.
fn stale_form() -> Answer {
    error_page(
        403,
        "This form has expired",
        "The sign-in form was not opened in this browser, was already used, or is too old. Go back to the application and start again.",
    )
}

/// `uri` with `params` added to its query (RFC 6749 §4.1.2: the response
/// parameters are added to the redirect URI's query component, keeping any
/// query it has).
fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let (base, fragment) = match uri.split_once('#') {
        Some((b, _)) => (b, ""),
        None => (uri, ""),
    };
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        serializer.append_pair(name, value);
    }
    let added = serializer.finish();
    let separator = if base.contains('?') {
        if base.ends_with('?') || base.ends_with('&') {
            ""
        } else {
            "&"
        }
    } else {
        "?"
    };
    format!("{base}{separator}{added}{fragment}")
}

/// RFC 8252 §7.3: for an http loopback IP redirect URI the port is chosen
/// at request time, so it is left out of the comparison; everything else
/// is compared code point by code point (OIDC DCR §6, RFC 9700 §2.1).
pub fn redirect_uri_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Some(reg), Some(req)) = (
        without_loopback_port(registered),
        without_loopback_port(requested),
    ) else {
        return false;
    };
    reg == req
}

/// `http://127.0.0.1:PORT/rest` → `http://127.0.0.1/rest` for loopback IP
/// literals (and `localhost`, which registration may accept); None otherwise.
fn without_loopback_port(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("http://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (host, port) = authority.split_at(close + 1);
        if !(port.is_empty()
            || (port.starts_with(':') && port[1..].bytes().all(|b| b.is_ascii_digit())))
        {
            return None;
        }
        host
    } else {
        match authority.split_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            Some(_) => return None,
            None => authority,
        }
    };
    is_loopback_host(host).then(|| format!("http://{host}{tail}"))
}

fn is_loopback_uri(uri: &str) -> bool {
    without_loopback_port(uri).is_some()
}

fn openid_requested(params: &AuthorizeParams) -> bool {
    params
        .get("scope")
        .is_some_and(|s| s.split(' ').any(|t| t == "openid"))
}

/// RFC 7636 §4.2: an S256 challenge is the base64url SHA-256 of the
/// verifier: exactly 43 characters of the base64url alphabet.
fn valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The host the user's browser is sent to, for the consent page.
fn host_of(uri: &str) -> String {
    url::Url::parse(uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| uri.split(':').next().unwrap_or(uri).to_owned())
}

/// Runs the authorization endpoint's flow.
pub struct Authorizer {
    store: Arc<dyn Store>,
    hasher: Hasher,
    issuer: Issuer,
    policy: Arc<Policy>,
    users: Arc<dyn UserDirectory>,
    tokens: TokensConfig,
    login: LoginConfig,
    /// Resolves clients whose `client_id` is a metadata document URL.
    documents: Option<Arc<crate::MetadataDocuments>>,
}

/// A client that may use the authorization endpoint now.
struct Client {
    in_use: ClientInUse,
    metadata: ClientMetadata,
}

impl Authorizer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        hasher: Hasher,
        issuer: Issuer,
        policy: Arc<Policy>,
        users: Arc<dyn UserDirectory>,
        tokens: TokensConfig,
        login: LoginConfig,
    ) -> Self {
        Self {
            store,
            hasher,
            issuer,
            policy,
            users,
            tokens,
            login,
            documents: None,
        }
    }

    /// Resolves metadata-document clients (CIMD) before they are read.
    pub fn with_documents(mut self, documents: Arc<crate::MetadataDocuments>) -> Self {
        self.documents = Some(documents);
        self
    }

    pub fn users(&self) -> &Arc<dyn UserDirectory> {
        &self.users
    }

    /// An error response to the client (RFC 6749 §4.1.2.1, RFC 9207 §2).
    fn error_redirect(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        error: ProtocolError,
    ) -> Answer {
        let description = safe_description(&error.description);
        let mut params = vec![
            ("error", error.code.as_str()),
            ("error_description", description.as_str()),
        ];
        if let Some(state) = state {
            params.push(("state", state));
        }
        params.push(("iss", self.issuer.as_str()));
        Answer {
            outcome: Outcome::Redirect(with_query(redirect_uri, &params)),
            set_binding: None,
            set_session: None,
        }
    }

    /// Step 1: the client, its redirect URI and its state. `Err` carries
    /// the page to show instead of any redirect.
    async fn client_and_redirect(
        &self,
        params: &AuthorizeParams,
    ) -> Result<(Client, String, bool), Answer> {
        for name in ["client_id", "redirect_uri"] {
            if params.repeated.iter().any(|r| r == name) {
                return Err(error_page(
                    400,
                    "Invalid request",
                    format!(
                        "The request repeats {name}. The application sent a malformed request."
                    ),
                ));
            }
        }
        let Some(client_id) = params.get("client_id") else {
            return Err(error_page(
                400,
                "Invalid request",
                "The request names no client (client_id is missing).",
            ));
        };
        let unknown = || {
            error_page(
                400,
                "Unknown application",
                "The application that sent you here is not registered with this server, so you cannot sign in to it.",
            )
        };
        // CIMD: a URL client_id is fetched (or its stored copy used) and
        // decided by the domain policy first. A refusal is a page: nothing
        // about the redirect URI is known to be safe yet (CIMD-01, -09).
        if let (Some(documents), true) = (&self.documents, is_document_client_id(client_id)) {
            // The endpoint's own per-source limit bounds these fetches.
            match documents
                .resolve(client_id, &RequestContext::default(), true)
                .await
            {
                Ok(()) => {}
                Err(Error::Protocol(e)) => {
                    return Err(error_page(
                        400,
                        "This application cannot sign you in",
                        format!(
                            "The application identifies itself by a metadata document at {client_id}, and this server cannot use it: {}.",
                            e.description.trim_end_matches('.')
                        ),
                    ))
                }
                Err(e) => return Err(internal_page(e)),
            }
        }
        let in_use = match self.store.client_in_use(client_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return Err(unknown()),
            Err(e) => return Err(internal_page(e.into())),
        };
        let metadata = match <ClientMetadata as Deserialize>::deserialize(&in_use.client.metadata) {
            Ok(m) => m,
            Err(e) => {
                return Err(internal_page(Error::Internal(format!(
                    "stored metadata of {client_id}: {e}"
                ))))
            }
        };
        let (redirect_uri, given) = match params.get("redirect_uri") {
            Some(requested) => {
                if !metadata
                    .redirect_uris
                    .iter()
                    .any(|r| redirect_uri_matches(r, requested))
                {
                    return Err(error_page(
                        400,
                        "Unregistered redirect URI",
                        "The application asked to send you to an address it did not register. For your safety you are not sent there.",
                    ));
                }
                (requested.to_owned(), true)
            }
            None => match metadata.redirect_uris.as_slice() {
                // OAuth lets a client with one registered URI omit it; OIDC
                // Core §3.1.2.1 requires it in OpenID requests. A loopback
                // URI needs its port from the request, so it cannot be implied.
                [only] if !is_loopback_uri(only) && !openid_requested(params) => {
                    (only.clone(), false)
                }
                _ => return Err(error_page(
                    400,
                    "Invalid request",
                    "The request does not say where to send you back (redirect_uri is missing).",
                )),
            },
        };
        let profile = self.policy.profile(&in_use.client.profile);
        if let Some(why) = unusable(&in_use, profile, crate::now()) {
            return Err(error_page(
                403,
                "This application cannot be used",
                format!("You cannot sign in to this application now: {why}. Its owner has been told the same when it tries to get tokens."),
            ));
        }
        let may_use_flow = metadata.grant_types.contains(&GrantType::AuthorizationCode)
            && metadata.response_types.contains(&ResponseType::Code)
            && profile.is_some_and(|p| {
                p.grant_types
                    .as_ref()
                    .is_none_or(|g| g.contains(&GrantType::AuthorizationCode))
            });
        if !may_use_flow {
            return Err(error_page(
                400,
                "This application cannot sign you in",
                "The application is not registered for the authorization code flow, so it cannot ask you to sign in.",
            ));
        }
        Ok((Client { in_use, metadata }, redirect_uri, given))
    }

    /// Step 2: the rest of the request; errors go back to the client.
    fn validate(
        &self,
        params: &AuthorizeParams,
        client: &Client,
        redirect_uri: String,
        redirect_uri_given: bool,
    ) -> Result<(AuthorizationRequest, Prompt), ProtocolError> {
        fn invalid(description: impl Into<String>) -> ProtocolError {
            ProtocolError::invalid_request(description)
        }
        if let Some(name) = params.repeated.first() {
            return Err(invalid(format!(
                "{name}: repeated parameter (RFC 6749 section 3.1)"
            )));
        }
        if params.get("request").is_some() {
            return Err(ProtocolError::new(
                ErrorCode::RequestNotSupported,
                "request objects are not supported",
            ));
        }
        if params.get("request_uri").is_some() {
            return Err(ProtocolError::new(
                ErrorCode::RequestUriNotSupported,
                "request_uri is not supported",
            ));
        }
        match params.get("response_type") {
            None => return Err(invalid("response_type: required parameter is missing")),
            Some("code") => {}
            Some(other) => {
                return Err(ProtocolError::new(
                    ErrorCode::UnsupportedResponseType,
                    format!("response_type {other:?} is not supported; use \"code\" (RFC 9700 section 2.1.2)"),
                ))
            }
        }
        if let Some(mode) = params.get("response_mode") {
            if mode != "query" {
                return Err(invalid(format!(
                    "response_mode {mode:?} is not supported; responses use the query"
                )));
            }
        }
        // RFC 7636 and RFC 9700 §2.1.1: PKCE with S256, for every client.
        let Some(challenge) = params.get("code_challenge") else {
            return Err(invalid("code_challenge: required; this server requires PKCE with S256 for every client (RFC 9700 section 2.1.1)"));
        };
        match params.get("code_challenge_method") {
            Some("S256") => {}
            None => return Err(invalid("code_challenge_method: required and must be S256; plain is not accepted (RFC 9700 section 2.1.1)")),
            Some(other) => return Err(invalid(format!("code_challenge_method {other:?} is not supported; use S256"))),
        }
        if !valid_challenge(challenge) {
            return Err(invalid("code_challenge: must be the 43-character base64url SHA-256 of the code_verifier (RFC 7636 section 4.2)"));
        }
        let echo = |name: &str| -> Result<Option<String>, ProtocolError> {
            match params.get(name) {
                Some(v) if v.len() > MAX_ECHO_LEN => Err(invalid(format!(
                    "{name}: longer than {MAX_ECHO_LEN} characters"
                ))),
                v => Ok(v.map(str::to_owned)),
            }
        };
        let state = echo("state")?;
        let nonce = echo("nonce")?;
        let profile = self
            .policy
            .profile(&client.in_use.client.profile)
            .ok_or_else(|| invalid("the client's profile is not defined"))?;
        let scope = match grant_scope(&client.metadata, profile, params.get("scope")) {
            Ok(scope) => scope.unwrap_or_default(),
            Err(Error::Protocol(e)) => return Err(e),
            Err(_) => return Err(invalid("scope could not be checked")),
        };
        if scope.is_empty() {
            return Err(ProtocolError::new(
                ErrorCode::InvalidScope,
                "scope: the request grants no scope; ask for one the client registered",
            ));
        }
        let audience = if params.resources.is_empty() {
            Vec::new()
        } else {
            match audience_for(&self.issuer, profile, &params.resources) {
                Ok(a) => a,
                Err(Error::Protocol(e)) => return Err(e),
                Err(_) => return Err(invalid("resource could not be checked")),
            }
        };
        let dpop_jkt =
            match params.get("dpop_jkt") {
                Some(jkt) if valid_challenge(jkt) => Some(jkt.to_owned()),
                Some(_) => return Err(invalid(
                    "dpop_jkt: must be a base64url SHA-256 JWK thumbprint (RFC 9449 section 10)",
                )),
                None => None,
            };
        let mut prompt_consent = false;
        let mut prompt_login = false;
        let mut prompt_none = false;
        if let Some(prompt) = params.get("prompt") {
            for value in prompt.split(' ') {
                match value {
                    "none" => prompt_none = true,
                    "login" => prompt_login = true,
                    "consent" => prompt_consent = true,
                    "select_account" => {}
                    other => {
                        return Err(invalid(format!("prompt: {other:?} is not a prompt value")))
                    }
                }
            }
            if prompt_none && prompt.contains(' ') {
                return Err(invalid(
                    "prompt: none cannot be combined with other values (OIDC Core section 3.1.2.1)",
                ));
            }
        }
        let max_age = match params.get("max_age") {
            None => None,
            Some(v) => Some(
                v.parse::<u64>()
                    .map_err(|_| invalid("max_age: must be a non-negative integer"))?,
            ),
        }
        .or(client.metadata.default_max_age);
        let request = AuthorizationRequest {
            client_id: client.in_use.client.client_id.clone(),
            redirect_uri,
            redirect_uri_given,
            scope,
            state,
            nonce,
            code_challenge: challenge.to_owned(),
            resources: audience,
            dpop_jkt,
            prompt_consent,
            max_age: max_age.map(|m| m.min(i64::MAX as u64) as i64),
        };
        let prompt = Prompt {
            none: prompt_none,
            login: prompt_login,
            max_age: request.max_age,
        };
        Ok((request, prompt))
    }

    /// `GET` or `POST /authorize`.
    pub async fn start(&self, params: AuthorizeParams, browser: Browser) -> Result<Answer, Error> {
        let (client, redirect_uri, given) = match self.client_and_redirect(&params).await {
            Ok(found) => found,
            Err(page) => return Ok(page),
        };
        let state = params
            .get("state")
            .filter(|s| s.len() <= MAX_ECHO_LEN)
            .map(str::to_owned);
        let (request, prompt) = match self.validate(&params, &client, redirect_uri.clone(), given) {
            Ok(valid) => valid,
            // RFC 9700 §4.11.2: a redirect URI anyone could have registered
            // is not followed before a user signed in, or the server would
            // be an open redirector; the error is shown instead.
            Err(e) if !trusted(&client) => {
                return Ok(error_page(
                    400,
                    "The application sent an invalid request",
                    format!(
                        "{}: {}. You were not sent back to {} automatically.",
                        e.code.as_str(),
                        safe_description(&e.description),
                        host_of(&redirect_uri)
                    ),
                ))
            }
            Err(e) => return Ok(self.error_redirect(&redirect_uri, state.as_deref(), e)),
        };
        let (prompt_none, prompt_login, max_age) = (prompt.none, prompt.login, prompt.max_age);
        let now = crate::now();
        // A session counts unless the request asks for a fresh sign-in.
        let mut signed_in = self.session_user(&browser).await?;
        if let Some((_, auth_time)) = &signed_in {
            if prompt_login || max_age.is_some_and(|m| now - auth_time > m) {
                signed_in = None;
            }
        }
        if prompt_none {
            let Some((user, auth_time)) = signed_in else {
                return Ok(self.error_redirect(
                    &request.redirect_uri,
                    request.state.as_deref(),
                    ProtocolError::new(ErrorCode::LoginRequired, "the user is not signed in"),
                ));
            };
            if !self.consented(&user, &request).await? {
                return Ok(self.error_redirect(
                    &request.redirect_uri,
                    request.state.as_deref(),
                    ProtocolError::new(
                        ErrorCode::ConsentRequired,
                        "the user has not consented to this request",
                    ),
                ));
            }
            return self
                .issue_code(&client, request, &user, auth_time, None, &browser)
                .await;
        }
        let (binding, set_binding) = match &browser.binding {
            Some(b) if b.len() <= 128 => (b.clone(), None),
            _ => {
                let fresh = credentials::generate(Credential::Browser)?
                    .expose()
                    .to_owned();
                (fresh.clone(), Some(fresh))
            }
        };
        let interaction = Interaction {
            id: credentials::random_id()?,
            browser_hash: self.hasher.hash(Credential::Browser, &binding),
            client_id: request.client_id.clone(),
            request: serde_json::to_value(&request).map_err(|e| Error::Internal(e.to_string()))?,
            user_id: signed_in.as_ref().map(|(u, _)| u.id.clone()),
            auth_time: signed_in.as_ref().map(|(_, t)| *t),
            created_at: now,
            expires_at: now + self.login.interaction_lifetime.as_secs() as i64,
        };
        let csrf = self.form_token(&interaction.id, &binding);
        let id = interaction.id.clone();
        if let Some((user, auth_time)) = &signed_in {
            if !request.prompt_consent && self.consented(user, &request).await? {
                self.store.insert_interaction(interaction).await?;
                let mut answer = self
                    .finish(&client, &id, request, user, *auth_time, None)
                    .await?;
                answer.set_binding = set_binding;
                return Ok(answer);
            }
            let page = self
                .consent_page(&client, &request, user, &id, &csrf)
                .await?;
            self.store.insert_interaction(interaction).await?;
            return Ok(Answer {
                outcome: Outcome::Page(Page::Consent(Box::new(page))),
                set_binding,
                set_session: None,
            });
        }
        self.store.insert_interaction(interaction).await?;
        Ok(Answer {
            outcome: Outcome::Page(Page::Login(Box::new(LoginPage {
                interaction: id,
                csrf,
                client_name: display_name(&client),
                error: None,
                notice: None,
                username: None,
            }))),
            set_binding,
            set_session: None,
        })
    }

    /// The user signed in through the browser's session cookie, if any, and
    /// when they entered their password.
    async fn session_user(&self, browser: &Browser) -> Result<Option<(EndUser, i64)>, Error> {
        let Some(cookie) = &browser.session else {
            return Ok(None);
        };
        let hash = self.hasher.hash(Credential::Session, cookie);
        let Some(session) = self.store.session(&hash).await? else {
            return Ok(None);
        };
        if session.expires_at <= crate::now() {
            return Ok(None);
        }
        Ok(self
            .users
            .user(&session.user_id)
            .await?
            .map(|u| (u, session.auth_time)))
    }

    /// Whether the user's remembered consent covers the request's scopes
    /// and resources.
    async fn consented(
        &self,
        user: &EndUser,
        request: &AuthorizationRequest,
    ) -> Result<bool, Error> {
        if request.prompt_consent {
            return Ok(false);
        }
        let Some(consent) = self.store.consent(&user.id, &request.client_id).await? else {
            return Ok(false);
        };
        let scopes_ok = request
            .scope
            .split(' ')
            .all(|s| consent.scope.split(' ').any(|c| c == s));
        let resources_ok = request
            .resources
            .iter()
            .all(|r| consent.resources.contains(r));
        Ok(scopes_ok && resources_ok)
    }

    /// The anti-CSRF token of an interaction's forms in one browser.
    fn form_token(&self, interaction: &str, binding: &str) -> String {
        use base64::Engine;
        let hash = self
            .hasher
            .hash(Credential::FormToken, &format!("{interaction}\0{binding}"));
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash)
    }

    /// The interaction a form belongs to, if the form came from this
    /// browser (cookie) and a page this server rendered (token), in time.
    async fn form_interaction(
        &self,
        interaction: &str,
        csrf: &str,
        browser: &Browser,
    ) -> Result<Option<(Interaction, AuthorizationRequest)>, Error> {
        let Some(binding) = &browser.binding else {
            return Ok(None);
        };
        if interaction.is_empty() || interaction.len() > 64 {
            return Ok(None);
        }
        let expected = self.form_token(interaction, binding);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            csrf.as_bytes(),
        )) {
            return Ok(None);
        }
        let Some(stored) = self.store.interaction(interaction).await? else {
            return Ok(None);
        };
        let same_browser = bool::from(subtle::ConstantTimeEq::ct_eq(
            &stored.browser_hash[..],
            &self.hasher.hash(Credential::Browser, binding)[..],
        ));
        if !same_browser || stored.expires_at <= crate::now() {
            return Ok(None);
        }
        let request: AuthorizationRequest = serde_json::from_value(stored.request.clone())
            .map_err(|e| Error::Internal(format!("stored interaction: {e}")))?;
        Ok(Some((stored, request)))
    }

    /// The client of an interaction, checked again: it may have been
    /// revoked or suspended while the user was signing in.
    async fn client_again(
        &self,
        request: &AuthorizationRequest,
    ) -> Result<Result<Client, Answer>, Error> {
        let client_id = request.client_id.as_str();
        let Some(in_use) = self.store.client_in_use(client_id).await? else {
            return Ok(Err(error_page(
                400,
                "Unknown application",
                "The application is no longer registered.",
            )));
        };
        let profile = self.policy.profile(&in_use.client.profile);
        if let Some(why) = unusable(&in_use, profile, crate::now()) {
            return Ok(Err(error_page(
                403,
                "This application cannot be used",
                format!("You cannot sign in to this application now: {why}."),
            )));
        }
        let metadata = <ClientMetadata as Deserialize>::deserialize(&in_use.client.metadata)
            .map_err(|e| Error::Internal(format!("stored metadata of {client_id}: {e}")))?;
        // The client may have changed its registration (RFC 7592) while the
        // user was signing in.
        let still_registered = metadata
            .redirect_uris
            .iter()
            .any(|r| redirect_uri_matches(r, &request.redirect_uri))
            && metadata.grant_types.contains(&GrantType::AuthorizationCode)
            && profile.is_some_and(|p| {
                p.grant_types
                    .as_ref()
                    .is_none_or(|g| g.contains(&GrantType::AuthorizationCode))
            });
        if !still_registered {
            return Ok(Err(error_page(
                400,
                "This application cannot sign you in",
                "The application changed its registration while you were signing in. Go back to it and start again.",
            )));
        }
        Ok(Ok(Client { in_use, metadata }))
    }

    /// `POST /authorize/login`.
    pub async fn login(
        &self,
        form: LoginForm,
        browser: Browser,
        context: &RequestContext,
    ) -> Result<(Answer, bool), Error> {
        let Some((interaction, request)) = self
            .form_interaction(&form.interaction, &form.csrf, &browser)
            .await?
        else {
            return Ok((stale_form(), false));
        };
        let client = match self.client_again(&request).await? {
            Ok(c) => c,
            Err(page) => return Ok((page, false)),
        };
        let user = if form.username.is_empty()
            || form.password.is_empty()
            || form.username.len() > 256
            || form.password.len() > 1024
        {
            None
        } else {
            self.users
                .authenticate(&form.username, &form.password)
                .await?
        };
        let Some(user) = user else {
            // Not audited: anyone could fill the log. Failures are rate
            // limited per source by the HTTP layer instead.
            tracing::info!(client_id = %request.client_id, "sign-in refused");
            let page = LoginPage {
                interaction: interaction.id,
                csrf: form.csrf,
                client_name: display_name(&client),
                error: Some(
                    "The username or password is wrong, or the account is disabled.".into(),
                ),
                notice: None,
                username: Some(form.username),
            };
            return Ok((Answer::page(Page::Login(Box::new(page))), false));
        };
        let now = crate::now();
        if !self
            .store
            .set_interaction_user(&interaction.id, &user.id, now)
            .await?
        {
            return Ok((stale_form(), true));
        }
        // A sign-in always starts a new session (no fixation); the
        // browser's previous one ends.
        if let Some(old) = &browser.session {
            self.store
                .delete_session(&self.hasher.hash(Credential::Session, old))
                .await?;
        }
        let session = credentials::generate(Credential::Session)?;
        let lifetime = self.login.session_lifetime.as_secs();
        self.store
            .insert_session(Session {
                id_hash: self.hasher.hash(Credential::Session, session.expose()),
                user_id: user.id.clone(),
                auth_time: now,
                expires_at: now + lifetime as i64,
            })
            .await?;
        let mut event = context.event(format!("user:{}", user.id), "user.login", "done");
        event.client_id = Some(request.client_id.clone());
        self.store.append_audit(event).await?;
        let set_session = Some((session.expose().to_owned(), lifetime));
        let mut answer = if self.consented(&user, &request).await? {
            self.finish(&client, &interaction.id, request, &user, now, None)
                .await?
        } else {
            let page = self
                .consent_page(&client, &request, &user, &interaction.id, &form.csrf)
                .await?;
            Answer::page(Page::Consent(Box::new(page)))
        };
        answer.set_session = set_session;
        Ok((answer, true))
    }

    /// `POST /authorize/consent`.
    pub async fn consent(
        &self,
        form: ConsentForm,
        browser: Browser,
        context: &RequestContext,
    ) -> Result<Answer, Error> {
        let Some((interaction, request)) = self
            .form_interaction(&form.interaction, &form.csrf, &browser)
            .await?
        else {
            return Ok(stale_form());
        };
        // Consent is given by the user who signed in for this request, in
        // this browser, still signed in.
        let Some(user_id) = &interaction.user_id else {
            return Ok(stale_form());
        };
        let Some((user, _)) = self.session_user(&browser).await? else {
            return Ok(stale_form());
        };
        if &user.id != user_id {
            return Ok(stale_form());
        }
        let auth_time = interaction.auth_time.unwrap_or_else(crate::now);
        let client = match self.client_again(&request).await? {
            Ok(c) => c,
            Err(page) => return Ok(page),
        };
        // OIDC Core §3.1.2.1: the sign-in must still be recent enough when
        // the code is issued, not only when the request arrived.
        if request
            .max_age
            .is_some_and(|m| crate::now() - auth_time > m)
        {
            let page = LoginPage {
                interaction: interaction.id,
                csrf: form.csrf,
                client_name: display_name(&client),
                error: None,
                notice: Some(
                    "This application needs a recent sign-in. Enter your password again.".into(),
                ),
                username: Some(user.username),
            };
            return Ok(Answer::page(Page::Login(Box::new(page))));
        }
        match form.decision.as_str() {
            "allow" => {
                // The store merges this into any earlier consent in the
                // transaction that issues the code.
                let consent = Consent {
                    user_id: user.id.clone(),
                    client_id: request.client_id.clone(),
                    scope: request.scope.clone(),
                    resources: request.resources.clone(),
                    granted_at: crate::now(),
                };
                let mut event = context.event(format!("user:{}", user.id), "consent.grant", "done");
                event.client_id = Some(request.client_id.clone());
                event.organization_id = Some(client.in_use.client.organization_id.clone());
                event.reasons = vec![format!("scope {}", request.scope)];
                self.finish(
                    &client,
                    &interaction.id,
                    request,
                    &user,
                    auth_time,
                    Some((consent, event)),
                )
                .await
            }
            "deny" => {
                if !self.store.finish_interaction(&interaction.id).await? {
                    return Ok(stale_form());
                }
                Ok(self.error_redirect(
                    &request.redirect_uri,
                    request.state.as_deref(),
                    ProtocolError::new(ErrorCode::AccessDenied, "the user denied the request"),
                ))
            }
            _ => Ok(error_page(
                400,
                "Invalid request",
                "The consent form's answer must be allow or deny.",
            )),
        }
    }

    /// With a session and remembered consent (`prompt=none` too): the
    /// interaction is created and completed at once.
    async fn issue_code(
        &self,
        client: &Client,
        request: AuthorizationRequest,
        user: &EndUser,
        auth_time: i64,
        consent: Option<(Consent, charter_store::AuditEvent)>,
        browser: &Browser,
    ) -> Result<Answer, Error> {
        let now = crate::now();
        let binding = browser.binding.clone().unwrap_or_default();
        let interaction = Interaction {
            id: credentials::random_id()?,
            browser_hash: self.hasher.hash(Credential::Browser, &binding),
            client_id: request.client_id.clone(),
            request: serde_json::to_value(&request).map_err(|e| Error::Internal(e.to_string()))?,
            user_id: Some(user.id.clone()),
            auth_time: Some(auth_time),
            created_at: now,
            expires_at: now + self.login.interaction_lifetime.as_secs() as i64,
        };
        let id = interaction.id.clone();
        self.store.insert_interaction(interaction).await?;
        self.finish(client, &id, request, user, auth_time, consent)
            .await
    }

    /// Ends the interaction with a code and redirects to the client.
    async fn finish(
        &self,
        client: &Client,
        interaction: &str,
        request: AuthorizationRequest,
        user: &EndUser,
        auth_time: i64,
        consent: Option<(Consent, charter_store::AuditEvent)>,
    ) -> Result<Answer, Error> {
        let now = crate::now();
        let code = credentials::generate(Credential::AuthorizationCode)?;
        let record = AuthorizationCode {
            code_hash: self
                .hasher
                .hash(Credential::AuthorizationCode, code.expose()),
            grant_id: credentials::random_id()?,
            client_id: client.in_use.client.client_id.clone(),
            user_id: user.id.clone(),
            redirect_uri: request
                .redirect_uri_given
                .then(|| request.redirect_uri.clone()),
            scope: request.scope.clone(),
            resources: request.resources.clone(),
            code_challenge: request.code_challenge.clone(),
            nonce: request.nonce.clone(),
            auth_time,
            dpop_jkt: request.dpop_jkt.clone(),
            expires_at: now + self.tokens.authorization_code_lifetime.as_secs() as i64,
            used: false,
        };
        let (consent, audit) = match consent {
            Some((c, a)) => (Some(c), Some(a)),
            None => (None, None),
        };
        if !self
            .store
            .complete_interaction(interaction, record, consent, audit)
            .await?
        {
            return Ok(stale_form());
        }
        let mut params = vec![("code", code.expose())];
        if let Some(state) = &request.state {
            params.push(("state", state.as_str()));
        }
        params.push(("iss", self.issuer.as_str()));
        Ok(Answer {
            outcome: Outcome::Redirect(with_query(&request.redirect_uri, &params)),
            set_binding: None,
            set_session: None,
        })
    }

    async fn consent_page(
        &self,
        client: &Client,
        request: &AuthorizationRequest,
        user: &EndUser,
        interaction: &str,
        csrf: &str,
    ) -> Result<ConsentPage, Error> {
        let organization = self
            .store
            .organization_by_id(&client.in_use.client.organization_id)
            .await?
            .map_or_else(|| client.in_use.client.organization_id.clone(), |o| o.name);
        let profile = self.policy.profile(&client.in_use.client.profile);
        let resources = if request.resources.is_empty() {
            profile
                .and_then(|p| audience_for(&self.issuer, p, &[]).ok())
                .unwrap_or_default()
        } else {
            request.resources.clone()
        };
        let client_id = &client.in_use.client.client_id;
        let registration = if is_document_client_id(client_id) {
            // CIMD §6.4: the user sees which site speaks for the client.
            format!(
                "by a client ID metadata document that {} publishes; anyone who controls that site controls what this application says about itself",
                host_of(client_id)
            )
        } else if client.in_use.client.initial_access_token_id.is_some() {
            "by dynamic client registration with an initial access token of its organization"
                .to_owned()
        } else if client.metadata.software_statement.is_some() {
            "by dynamic client registration with a software statement of an issuer this server trusts"
                .to_owned()
        } else {
            "by open dynamic client registration, without an initial access token".to_owned()
        };
        Ok(ConsentPage {
            interaction: interaction.to_owned(),
            csrf: csrf.to_owned(),
            user: user.username.clone(),
            client_id: client_id.clone(),
            client_name: display_name(client),
            organization,
            scopes: request.scope.split(' ').map(str::to_owned).collect(),
            resources,
            registration,
            redirect_host: host_of(&request.redirect_uri),
            loopback_only: !client.metadata.redirect_uris.is_empty()
                && client
                    .metadata
                    .redirect_uris
                    .iter()
                    .all(|u| is_loopback_uri(u)),
            client_uri: client.metadata.client_uri.clone(),
            logo_uri: client.metadata.logo_uri.clone(),
            policy_uri: client.metadata.policy_uri.clone(),
            tos_uri: client.metadata.tos_uri.clone(),
        })
    }
}

/// Whether the client's redirect URIs were vouched for: registered with an
/// initial access token of an organization (or by an administrator), not
/// anonymously or by a metadata document anyone can publish. A client
/// registered by a software statement alone does not count: the statement
/// vouches for its redirect URIs only if it lists them, and the cautious
/// answer costs no more than an error page instead of a redirect.
fn trusted(client: &Client) -> bool {
    client.in_use.client.initial_access_token_id.is_some()
}

fn display_name(client: &Client) -> String {
    client
        .metadata
        .client_name
        .clone()
        .unwrap_or_else(|| client.in_use.client.client_id.clone())
}

/// Restricts a description to the characters RFC 6749 §4.1.2.1 allows in
/// `error_description` (%x20-21 / %x23-5B / %x5D-7E).
fn safe_description(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

fn internal_page(e: Error) -> Answer {
    tracing::error!(error = %e, "authorization endpoint failed");
    error_page(
        500,
        "Something went wrong",
        "The server could not handle the request. Try again later.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_port_varies_and_nothing_else_does() {
        // RFC 8252 §7.3, RFC 9700 §2.1: exact matching except the loopback port.
        let cases = [
            ("http://127.0.0.1/cb", "http://127.0.0.1:5555/cb", true),
            ("http://127.0.0.1:80/cb", "http://127.0.0.1:5555/cb", true),
            ("http://[::1]/cb", "http://[::1]:4000/cb", true),
            ("http://localhost/cb", "http://localhost:4000/cb", true),
            ("http://127.0.0.1/cb", "http://127.0.0.1:5555/cb/", false),
            ("http://127.0.0.1/cb", "http://127.0.0.1:5555/CB", false),
            ("http://127.0.0.1/cb", "http://127.0.0.1:5555/cb?x=1", false),
            ("https://app.example/cb", "https://app.example/cb", true),
            ("https://app.example/cb", "https://app.example/cb/", false),
            ("https://app.example/cb", "https://APP.example/cb", false),
            ("https://app.example/cb", "https://app.example/Cb", false),
            (
                "https://app.example/cb",
                "https://app.example/cb?x=1",
                false,
            ),
            (
                "https://app.example/cb",
                "https://app.example:8443/cb",
                false,
            ),
            ("https://app.example/cb", "https://app.example/cb#f", false),
            (
                "https://app.example:443/cb",
                "https://app.example/cb",
                false,
            ),
            ("http://127.0.0.1/cb", "http://127.0.0.2:5555/cb", false),
            ("http://127.0.0.1/cb", "http://127.0.0.1:55a/cb", false),
            ("https://127.0.0.1/cb", "https://127.0.0.1:5555/cb", false),
        ];
        for (registered, requested, expected) in cases {
            assert_eq!(
                redirect_uri_matches(registered, requested),
                expected,
                "{registered} vs {requested}"
            );
        }
    }

    #[test]
    fn response_parameters_join_the_query() {
        assert_eq!(
            with_query("https://a.example/cb", &[("code", "x y")]),
            "https://a.example/cb?code=x+y"
        );
        assert_eq!(
            with_query("https://a.example/cb?k=v", &[("code", "c")]),
            "https://a.example/cb?k=v&code=c"
        );
    }

    #[test]
    fn challenges_are_s256_shaped() {
        assert!(valid_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!valid_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"
        ));
        assert!(!valid_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"
        ));
    }
}
