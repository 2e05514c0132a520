//! Turning a registration or update request body into [`ClientMetadata`].
//!
//! Validation collects every violated rule and reports them together, so a
//! developer fixes a request in one round trip. The error code is
//! `invalid_redirect_uri` when every violation concerns redirect URIs and
//! `invalid_client_metadata` otherwise (RFC 7591 §3.2.2).

use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};

use crate::capabilities::{CLIENT_ASSERTION_ALGS, ID_TOKEN_SIGNING_ALGS, SUBJECT_TYPES};
use crate::metadata::{ApplicationType, AuthMethod, ClientMetadata, GrantType, ResponseType};
use crate::redirect::{check_https_uri, check_redirect_uri};
use crate::{Error, ErrorCode};

const MAX_REDIRECT_URIS: usize = 32;
const MAX_CONTACTS: usize = 16;
const MAX_TEXT_LEN: usize = 256;
const MAX_SCOPE_LEN: usize = 2000;

/// Human-readable members that may carry a language tag (RFC 7591 §2.2).
const LOCALIZABLE: [&str; 5] = [
    "client_name",
    "client_uri",
    "logo_uri",
    "policy_uri",
    "tos_uri",
];

/// Known members whose features this server does not offer. They are refused
/// rather than ignored because a client that sends them expects a behavior
/// (encryption, request objects, pairwise subjects) it would silently not get.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("request_uris", "request objects are not supported"),
    (
        "request_object_signing_alg",
        "request objects are not supported",
    ),
    (
        "request_object_encryption_alg",
        "request objects are not supported",
    ),
    (
        "request_object_encryption_enc",
        "request objects are not supported",
    ),
    (
        "id_token_encrypted_response_alg",
        "ID token encryption is not supported",
    ),
    (
        "id_token_encrypted_response_enc",
        "ID token encryption is not supported",
    ),
    (
        "userinfo_signed_response_alg",
        "signed userinfo responses are not supported",
    ),
    (
        "userinfo_encrypted_response_alg",
        "userinfo encryption is not supported",
    ),
    (
        "userinfo_encrypted_response_enc",
        "userinfo encryption is not supported",
    ),
    (
        "tls_client_certificate_bound_access_tokens",
        "mutual-TLS bound tokens are not supported",
    ),
    (
        "require_pushed_authorization_requests",
        "pushed authorization requests are not supported",
    ),
    (
        "require_signed_request_object",
        "request objects are not supported",
    ),
    (
        "default_acr_values",
        "authentication context classes are not supported",
    ),
    (
        "post_logout_redirect_uris",
        "RP-initiated logout is not supported",
    ),
    (
        "frontchannel_logout_uri",
        "front-channel logout is not supported",
    ),
    (
        "backchannel_logout_uri",
        "back-channel logout is not supported",
    ),
];

/// Extension grant types with a registered meaning (IANA "OAuth URI"
/// registry, RFC 7591 §2) that this server does not serve. Listed beside a
/// grant it does serve, such a value is left out of the registration and
/// the registered `grant_types` are echoed without it: RFC 7591 §3.2.1 lets
/// the server replace requested values, and the value only says the client
/// *could* use that grant somewhere (VS Code's metadata lists the device
/// grant, claude.ai's the JWT bearer grant; see docs/mcp-clients.md).
/// Dropping it grants nothing: the token endpoint serves only
/// [`crate::capabilities::TOKEN_GRANT_TYPES`]. Alone, it is refused, since
/// the client could not use the registration at all. Values outside this
/// list (typos, `password`, `implicit`) are never dropped.
const UNSERVED_EXTENSION_GRANTS: [(&str, &str); 5] = [
    (
        "urn:ietf:params:oauth:grant-type:device_code",
        "the device authorization grant, RFC 8628",
    ),
    (
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "token exchange, RFC 8693",
    ),
    (
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "the JWT bearer assertion grant, RFC 7523",
    ),
    (
        "urn:ietf:params:oauth:grant-type:saml2-bearer",
        "the SAML 2.0 bearer assertion grant, RFC 7522",
    ),
    (
        "urn:openid:params:grant-type:ciba",
        "client-initiated backchannel authentication, OpenID CIBA",
    ),
];

/// What an [`UNSERVED_EXTENSION_GRANTS`] value is, if `grant` is one.
fn unserved_extension_grant(grant: &str) -> Option<&'static str> {
    UNSERVED_EXTENSION_GRANTS
        .iter()
        .find(|(name, _)| *name == grant)
        .map(|&(_, feature)| feature)
}

/// Members a client may never set on update (RFC 7592 §2.2).
const SERVER_MANAGED: [&str; 4] = [
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
];

/// A parsed RFC 7592 update: the new metadata and the `client_secret` the
/// client echoed, which the caller must compare with the current one.
#[derive(Debug)]
pub struct UpdateRequest {
    pub metadata: ClientMetadata,
    pub client_secret: Option<String>,
}

/// Validates an RFC 7591 registration request. Members the server assigns
/// (`client_id`, `client_secret`, …) are ignored: a client never influences
/// its identifier (RFC 9700 §2.6).
pub fn validate_registration(body: &Map<String, Value>) -> Result<ClientMetadata, Error> {
    if let Some(statement) = present(body, "software_statement") {
        return Err(software_statement_error(statement));
    }
    Validator::default().run(body)
}

/// Validates an RFC 7592 full-replacement update for `client_id`.
pub fn validate_update(body: &Map<String, Value>, client_id: &str) -> Result<UpdateRequest, Error> {
    match body.get("client_id") {
        None => {
            return Err(Error::invalid_request(
                "client_id: required in an update request and must equal the client's identifier (RFC 7592 §2.2)",
            ))
        }
        Some(Value::String(id)) if id == client_id => {}
        Some(_) => {
            return Err(Error::invalid_request(
                "client_id: does not match the client being updated (RFC 7592 §2.2)",
            ))
        }
    }
    let forbidden: Vec<&str> = SERVER_MANAGED
        .into_iter()
        .filter(|m| body.contains_key(*m))
        .collect();
    if !forbidden.is_empty() {
        return Err(Error::invalid_request(format!(
            "{}: must not be sent in an update request; the server manages these values (RFC 7592 §2.2)",
            forbidden.join(", ")
        )));
    }
    let client_secret = match present(body, "client_secret") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(Error::invalid_request("client_secret: must be a string")),
    };
    if let Some(statement) = present(body, "software_statement") {
        return Err(software_statement_error(statement));
    }
    let metadata = Validator::default().run(body)?;
    Ok(UpdateRequest {
        metadata,
        client_secret,
    })
}

/// A statement reached validation without being verified (the service
/// verifies trusted issuers' statements first and validates through
/// [`crate::SoftwareStatement`]), so nobody approved it: a malformed one is
/// invalid, a well-formed one unapproved (RFC 7591 §3.2.2).
fn software_statement_error(statement: &Value) -> Error {
    match crate::statement::parse(statement) {
        Err(e) => e,
        Ok(_) => Error::new(
            ErrorCode::UnapprovedSoftwareStatement,
            "software_statement: no software statement issuer is trusted by this server",
        ),
    }
}

/// A member's value, treating JSON `null` as absent (RFC 7592 §2.2 lets the
/// server ignore nulls).
fn present<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

#[derive(Default)]
struct Validator {
    redirect_violations: Vec<String>,
    other_violations: Vec<String>,
}

impl Validator {
    fn bad(&mut self, field: &str, rule: impl AsRef<str>) {
        self.other_violations
            .push(format!("{field}: {}", rule.as_ref()));
    }

    fn bad_redirect(&mut self, rule: impl AsRef<str>) {
        self.redirect_violations
            .push(format!("redirect_uris: {}", rule.as_ref()));
    }

    fn string(&mut self, body: &Map<String, Value>, field: &str) -> Option<String> {
        match present(body, field)? {
            Value::String(s) if s.is_empty() => {
                self.bad(field, "must not be empty");
                None
            }
            Value::String(s) if s.len() > MAX_TEXT_LEN && !field.ends_with("_uri") => {
                self.bad(field, format!("must be at most {MAX_TEXT_LEN} characters"));
                None
            }
            Value::String(s) if s.chars().any(char::is_control) => {
                self.bad(field, "must not contain control characters");
                None
            }
            Value::String(s) => Some(s.clone()),
            _ => {
                self.bad(field, "must be a string");
                None
            }
        }
    }

    fn string_array(
        &mut self,
        body: &Map<String, Value>,
        field: &str,
        max: usize,
    ) -> Option<Vec<String>> {
        let value = present(body, field)?;
        let Some(items) = value.as_array() else {
            self.bad(field, "must be an array of strings");
            return None;
        };
        if items.len() > max {
            self.bad(field, format!("must hold at most {max} values"));
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        let mut seen = HashSet::new();
        for item in items {
            let Some(s) = item.as_str() else {
                self.bad(field, "must be an array of strings");
                return None;
            };
            if !seen.insert(s) {
                self.bad(field, format!("lists \"{s}\" more than once"));
                return None;
            }
            out.push(s.to_owned());
        }
        Some(out)
    }

    fn https_uri(
        &mut self,
        body: &Map<String, Value>,
        field: &str,
        allow_fragment: bool,
    ) -> Option<String> {
        let uri = self.string(body, field)?;
        match check_https_uri(&uri, allow_fragment) {
            Ok(()) => Some(uri),
            Err(rule) => {
                self.bad(field, rule);
                None
            }
        }
    }

    fn run(mut self, body: &Map<String, Value>) -> Result<ClientMetadata, Error> {
        for &(field, reason) in UNSUPPORTED {
            let requested = match present(body, field) {
                None | Some(Value::Bool(false)) => false,
                Some(_) => true,
            };
            if requested {
                self.bad(field, reason);
            }
        }

        let application_type = match present(body, "application_type") {
            None => ApplicationType::Web,
            Some(Value::String(s)) => ApplicationType::parse(s).unwrap_or_else(|| {
                self.bad("application_type", "must be \"web\" or \"native\"");
                ApplicationType::Web
            }),
            Some(_) => {
                self.bad("application_type", "must be a string");
                ApplicationType::Web
            }
        };

        let auth_method = match present(body, "token_endpoint_auth_method") {
            // RFC 7591 §2: the default is client_secret_basic.
            None => AuthMethod::ClientSecretBasic,
            Some(Value::String(s)) => AuthMethod::parse(s).unwrap_or_else(|| {
                self.bad(
                    "token_endpoint_auth_method",
                    format!("\"{s}\" is not supported; use one of client_secret_basic, client_secret_post, private_key_jwt, none"),
                );
                AuthMethod::ClientSecretBasic
            }),
            Some(_) => {
                self.bad("token_endpoint_auth_method", "must be a string");
                AuthMethod::ClientSecretBasic
            }
        };

        let grants = self.grant_types(body);
        let responses = self.response_types(body);
        let (grant_types, response_types) = self.reconcile(grants, responses);

        let redirect_uris = self.redirect_uris(body, application_type, &grant_types);

        if grant_types.contains(&GrantType::ClientCredentials) && auth_method == AuthMethod::None {
            self.bad(
                "grant_types",
                "client_credentials requires an authenticated client; token_endpoint_auth_method \"none\" cannot use it (RFC 6749 §4.4)",
            );
        }

        let jwks =
            present(body, "jwks").and_then(|jwks| match charter_jose::validate_client_jwks(jwks) {
                Ok(()) => Some(jwks.clone()),
                Err(e) => {
                    self.bad("jwks", e.0);
                    None
                }
            });
        let jwks_uri = self.https_uri(body, "jwks_uri", false);
        if present(body, "jwks").is_some() && present(body, "jwks_uri").is_some() {
            self.bad(
                "jwks",
                "jwks and jwks_uri must not both be present (RFC 7591 §2)",
            );
        }
        if auth_method == AuthMethod::PrivateKeyJwt
            && present(body, "jwks").is_none()
            && present(body, "jwks_uri").is_none()
        {
            self.bad(
                "token_endpoint_auth_method",
                "private_key_jwt requires the client's public keys in jwks or jwks_uri",
            );
        }
        let signing_alg = self.signing_alg(body, auth_method, jwks.as_ref());

        let scope = self.scope(body);
        let contacts = self
            .string_array(body, "contacts", MAX_CONTACTS)
            .unwrap_or_default();
        for contact in &contacts {
            if contact.is_empty()
                || contact.len() > MAX_TEXT_LEN
                || contact.chars().any(char::is_control)
            {
                self.bad(
                    "contacts",
                    format!("each contact must be 1 to {MAX_TEXT_LEN} printable characters"),
                );
                break;
            }
        }

        let oidc = grant_types.contains(&GrantType::AuthorizationCode);
        let id_token_alg =
            self.choice(body, "id_token_signed_response_alg", &ID_TOKEN_SIGNING_ALGS);
        let subject_type = self.choice(body, "subject_type", &SUBJECT_TYPES);
        let require_auth_time = match present(body, "require_auth_time") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.bad("require_auth_time", "must be a boolean");
                None
            }
        };
        // RFC 9449 §5.2: a client that always uses DPoP says so, and its
        // token requests without a proof are refused.
        let dpop_bound_access_tokens = match present(body, "dpop_bound_access_tokens") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.bad("dpop_bound_access_tokens", "must be a boolean");
                None
            }
        };
        let default_max_age = match present(body, "default_max_age") {
            None => None,
            Some(v) => v.as_u64().or_else(|| {
                self.bad(
                    "default_max_age",
                    "must be a non-negative integer number of seconds",
                );
                None
            }),
        };

        let localized = self.localized(body);

        let metadata = ClientMetadata {
            redirect_uris,
            token_endpoint_auth_method: auth_method,
            grant_types,
            response_types,
            application_type,
            client_name: self.string(body, "client_name"),
            client_uri: self.https_uri(body, "client_uri", true),
            logo_uri: self.https_uri(body, "logo_uri", true),
            policy_uri: self.https_uri(body, "policy_uri", true),
            tos_uri: self.https_uri(body, "tos_uri", true),
            contacts,
            scope,
            jwks,
            jwks_uri,
            software_id: self.string(body, "software_id"),
            software_version: self.string(body, "software_version"),
            // Set only by `SoftwareStatement::validate_*`, after verification.
            software_statement: None,
            token_endpoint_auth_signing_alg: signing_alg,
            // OIDC DCR §2 defaults, applied and echoed for clients of the
            // authorization endpoint only.
            id_token_signed_response_alg: id_token_alg.or_else(|| oidc.then(|| "RS256".into())),
            subject_type: subject_type.or_else(|| oidc.then(|| "public".into())),
            require_auth_time: require_auth_time.or(oidc.then_some(false)),
            default_max_age,
            initiate_login_uri: self.https_uri(body, "initiate_login_uri", false),
            // OIDC DCR §2, §5: https; fetched at registration by the service
            // and checked to list every redirect URI.
            sector_identifier_uri: self.https_uri(body, "sector_identifier_uri", false),
            dpop_bound_access_tokens,
            // Set only by the service, from a verified workload identity token.
            workload_identity: None,
            localized,
        };
        self.finish(metadata)
    }

    fn finish(self, metadata: ClientMetadata) -> Result<ClientMetadata, Error> {
        if self.redirect_violations.is_empty() && self.other_violations.is_empty() {
            return Ok(metadata);
        }
        let code = if self.other_violations.is_empty() {
            ErrorCode::InvalidRedirectUri
        } else {
            ErrorCode::InvalidClientMetadata
        };
        let mut all = self.redirect_violations;
        all.extend(self.other_violations);
        Err(Error::new(code, all.join("; ")))
    }

    /// The requested grant types this server serves. A well-known extension
    /// grant it does not serve is dropped when a served one is listed too
    /// ([`UNSERVED_EXTENSION_GRANTS`]); every other unknown value is refused.
    fn grant_types(&mut self, body: &Map<String, Value>) -> Option<Vec<GrantType>> {
        let names = self.string_array(body, "grant_types", 8)?;
        let mut grants = Vec::new();
        let mut unserved = Vec::new();
        for name in names {
            match (GrantType::parse(&name), name.as_str()) {
                (Some(g), _) => grants.push(g),
                (None, "password") => self.bad(
                    "grant_types",
                    "\"password\" is refused: the resource owner password credentials grant must not be used (RFC 9700 §2.4)",
                ),
                (None, "implicit") => self.bad(
                    "grant_types",
                    "\"implicit\" is refused: the implicit grant should not be used (RFC 9700 §2.1.2); use authorization_code with PKCE",
                ),
                (None, other) => match unserved_extension_grant(other) {
                    Some(feature) => unserved.push((name.clone(), feature)),
                    None => self.bad(
                        "grant_types",
                        format!("\"{other}\" is not supported; use authorization_code, client_credentials or refresh_token"),
                    ),
                },
            }
        }
        if grants.is_empty() {
            for (name, feature) in unserved {
                self.bad(
                    "grant_types",
                    format!("\"{name}\" ({feature}) is not supported by this server; register authorization_code, client_credentials or refresh_token"),
                );
            }
        }
        Some(grants)
    }

    fn response_types(&mut self, body: &Map<String, Value>) -> Option<Vec<ResponseType>> {
        let names = self.string_array(body, "response_types", 8)?;
        let mut types = Vec::new();
        for name in names {
            match ResponseType::parse(&name) {
                Some(t) => types.push(t),
                None => self.bad(
                    "response_types",
                    format!("\"{name}\" is not supported; only \"code\" is (implicit and hybrid flows are refused, RFC 9700 §2.1.2)"),
                ),
            }
        }
        Some(types)
    }

    /// Applies the RFC 7591 §2.1 / OIDC DCR §2 correspondence between grant
    /// and response types. An omitted member is derived from the other; when
    /// both are given they must agree, and the pair is never "corrected".
    fn reconcile(
        &mut self,
        grants: Option<Vec<GrantType>>,
        responses: Option<Vec<ResponseType>>,
    ) -> (Vec<GrantType>, Vec<ResponseType>) {
        let code_response = |grants: &[GrantType]| {
            if grants.contains(&GrantType::AuthorizationCode) {
                vec![ResponseType::Code]
            } else {
                Vec::new()
            }
        };
        let (grants, responses) = match (grants, responses) {
            (None, None) => (vec![GrantType::AuthorizationCode], vec![ResponseType::Code]),
            (Some(g), None) => {
                let r = code_response(&g);
                (g, r)
            }
            (None, Some(r)) => {
                let g = if r.contains(&ResponseType::Code) {
                    vec![GrantType::AuthorizationCode]
                } else {
                    Vec::new()
                };
                (g, r)
            }
            (Some(g), Some(r)) => {
                let has_code_grant = g.contains(&GrantType::AuthorizationCode);
                let has_code_response = r.contains(&ResponseType::Code);
                if has_code_grant && !has_code_response {
                    self.bad(
                        "response_types",
                        "grant type authorization_code requires response type \"code\" (RFC 7591 §2.1)",
                    );
                } else if has_code_response && !has_code_grant {
                    self.bad(
                        "grant_types",
                        "response type \"code\" requires grant type authorization_code (RFC 7591 §2.1)",
                    );
                }
                (g, r)
            }
        };
        if grants.is_empty() && self.other_violations.is_empty() {
            self.bad(
                "grant_types",
                "at least one supported grant type is required",
            );
        }
        if grants.contains(&GrantType::RefreshToken)
            && !grants.contains(&GrantType::AuthorizationCode)
        {
            self.bad(
                "grant_types",
                "refresh_token is only issued with authorization_code; register authorization_code too",
            );
        }
        (grants, responses)
    }

    fn redirect_uris(
        &mut self,
        body: &Map<String, Value>,
        app: ApplicationType,
        grants: &[GrantType],
    ) -> Vec<String> {
        let uris = match present(body, "redirect_uris") {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                if items.len() > MAX_REDIRECT_URIS {
                    self.bad_redirect(format!(
                        "at most {MAX_REDIRECT_URIS} redirect URIs are accepted"
                    ));
                    return Vec::new();
                }
                let mut uris = Vec::with_capacity(items.len());
                let mut native_https = false;
                for item in items {
                    let Some(uri) = item.as_str() else {
                        self.bad("redirect_uris", "must be an array of strings");
                        return Vec::new();
                    };
                    if uris.iter().any(|u| u == uri) {
                        self.bad_redirect(format!("\"{uri}\" is listed more than once"));
                    } else if let Err(rule) = check_redirect_uri(uri, app) {
                        native_https |= app == ApplicationType::Native
                            && check_redirect_uri(uri, ApplicationType::Web).is_ok()
                            && uri.starts_with("https:");
                        self.bad_redirect(format!("\"{uri}\" {rule}"));
                    }
                    uris.push(uri.to_owned());
                }
                // VS Code registers its https redirector as a native client
                // (docs/mcp-clients.md). Redirect URIs are never replaced
                // (OIDC DCR §3.2), so say what the client can change: MCP
                // tells clients to retry with an adjusted application_type.
                if native_https {
                    self.bad_redirect(
                        "application_type \"native\" allows no https redirect URI; register the https URIs with application_type \"web\" (which accepts http loopback URIs too), or only private-use scheme and http loopback URIs as \"native\"",
                    );
                }
                uris
            }
            Some(_) => {
                self.bad("redirect_uris", "must be an array of strings");
                return Vec::new();
            }
        };
        if uris.is_empty() && grants.contains(&GrantType::AuthorizationCode) {
            self.bad_redirect(
                "required for the authorization_code grant (RFC 7591 §2, RFC 6749 §3.1.2.2)",
            );
        }
        uris
    }

    fn signing_alg(
        &mut self,
        body: &Map<String, Value>,
        method: AuthMethod,
        jwks: Option<&Value>,
    ) -> Option<String> {
        const FIELD: &str = "token_endpoint_auth_signing_alg";
        let alg = self.string(body, FIELD)?;
        if method != AuthMethod::PrivateKeyJwt {
            self.bad(
                FIELD,
                "applies only to token_endpoint_auth_method \"private_key_jwt\"",
            );
            return None;
        }
        if !CLIENT_ASSERTION_ALGS.contains(&alg.as_str()) {
            self.bad(
                FIELD,
                format!(
                    "\"{alg}\" is not supported; use one of {}",
                    CLIENT_ASSERTION_ALGS.join(", ")
                ),
            );
            return None;
        }
        if let Some(keys) = jwks.and_then(|j| j.get("keys")).and_then(Value::as_array) {
            let (kty, crv) = if alg == "ES256" {
                ("EC", Some("P-256"))
            } else {
                ("RSA", None)
            };
            let usable = keys.iter().any(|k| {
                k.get("kty").and_then(Value::as_str) == Some(kty)
                    && crv.is_none_or(|c| k.get("crv").and_then(Value::as_str) == Some(c))
                    && k.get("use")
                        .and_then(Value::as_str)
                        .is_none_or(|u| u == "sig")
            });
            if !usable {
                self.bad(
                    FIELD,
                    format!("jwks holds no signing key usable with {alg}"),
                );
            }
        }
        Some(alg)
    }

    fn choice(
        &mut self,
        body: &Map<String, Value>,
        field: &str,
        allowed: &[&str],
    ) -> Option<String> {
        let value = self.string(body, field)?;
        if allowed.contains(&value.as_str()) {
            Some(value)
        } else {
            self.bad(
                field,
                format!(
                    "\"{value}\" is not supported; use one of {}",
                    allowed.join(", ")
                ),
            );
            None
        }
    }

    /// `scope` is a space-separated string of scope tokens (RFC 7591 §2,
    /// RFC 6749 §3.3).
    fn scope(&mut self, body: &Map<String, Value>) -> Option<String> {
        let value = present(body, "scope")?;
        let Some(scope) = value.as_str() else {
            self.bad(
                "scope",
                "must be a string of space-separated scope values (RFC 7591 §2)",
            );
            return None;
        };
        // RFC 7592 §2.2 lets the server ignore an empty value: an empty
        // string asks for no scope, exactly like an omitted member (the MCP
        // Inspector sends `"scope": ""` when none is configured), so the
        // profile's default applies and is echoed. RFC 6749 §3.3 has no
        // empty scope token to store.
        if scope.is_empty() {
            return None;
        }
        if scope.len() > MAX_SCOPE_LEN {
            self.bad(
                "scope",
                format!("must be at most {MAX_SCOPE_LEN} characters"),
            );
            return None;
        }
        let mut seen = HashSet::new();
        for token in scope.split(' ') {
            let valid_chars = token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
            if token.is_empty() || !valid_chars {
                self.bad("scope", "must be scope tokens separated by single spaces, each of the characters RFC 6749 §3.3 allows");
                return None;
            }
            if !seen.insert(token) {
                self.bad("scope", format!("lists \"{token}\" more than once"));
                return None;
            }
        }
        Some(scope.to_owned())
    }

    /// Language-tagged variants of human-readable members (RFC 7591 §2.2).
    /// Tags are kept exactly as sent; a tagged member of any other name is an
    /// unknown member and ignored.
    fn localized(&mut self, body: &Map<String, Value>) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for key in body.keys() {
            let Some((base, tag)) = key.split_once('#') else {
                continue;
            };
            if !LOCALIZABLE.contains(&base) {
                continue;
            }
            let tag_ok = !tag.is_empty()
                && tag.len() <= 35
                && tag.split('-').all(|sub| {
                    !sub.is_empty()
                        && sub.len() <= 8
                        && sub.bytes().all(|b| b.is_ascii_alphanumeric())
                });
            if !tag_ok {
                self.bad(key, "carries a malformed language tag (BCP 47, RFC 5646)");
                continue;
            }
            let value = if base == "client_name" {
                self.string(body, key)
            } else {
                self.https_uri(body, key, true)
            };
            if let Some(value) = value {
                out.insert(key.clone(), value);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
