//! `[software_statements]`: the issuers whose software statements (RFC 7591
//! §2.3) this server trusts, each with its public keys, the organization
//! its clients belong to and the policy profile they are decided under.
//!
//! An issuer's keys come one of two ways ([`IssuerKeys`]): inline (`jwks`),
//! read into [`charter_jose::PublicKey`]s here, so that a bad key stops the
//! server at start-up rather than failing every registration; or published
//! at a `jwks_uri`, which must be `https` and pass every check of the
//! outbound fetcher that needs no name lookup (so a literal loopback or
//! private address not allowlisted under `[fetch]` stops the server too).
//! A name is vetted, and the set fetched, when a statement is verified:
//! the service's `ConfiguredKeys` (`crates/service/src/statements.rs`).

use charter_fetch::FetchConfig;
use charter_jose::{PublicKey, VERIFY_ALGS};
use charter_policy::Policy;
use serde::Deserialize;
use serde_json::Value;

/// Statements from an issuer that sets no `algorithms`: every asymmetric
/// algorithm the server verifies.
pub const DEFAULT_STATEMENT_ALGS: [&str; 3] = VERIFY_ALGS;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSoftwareStatements {
    pub enabled: Option<bool>,
    pub registrations_per_minute_per_source: Option<u32>,
    #[serde(default)]
    pub issuers: Vec<RawStatementIssuer>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatementIssuer {
    /// The statement's `iss`, compared exactly.
    pub issuer: Option<String>,
    /// A JWK Set: a table with `keys`, or the JSON text of one.
    pub jwks: Option<Value>,
    /// The https URL where the issuer publishes its JWK Set (instead of
    /// `jwks`).
    pub jwks_uri: Option<String>,
    pub organization: Option<String>,
    pub profile: Option<String>,
    pub algorithms: Option<Vec<String>>,
}

/// Validated software statement settings.
#[derive(Debug, Clone)]
pub struct SoftwareStatementsConfig {
    /// When off, every statement is refused as unapproved, as if no issuer
    /// were trusted (the issuers are still validated).
    pub enabled: bool,
    /// Registrations without an initial access token a source may attempt
    /// per minute (a statement is then the only credential).
    pub registrations_per_minute_per_source: u32,
    pub issuers: Vec<TrustedIssuer>,
}

impl Default for SoftwareStatementsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            registrations_per_minute_per_source: 60,
            issuers: Vec::new(),
        }
    }
}

impl SoftwareStatementsConfig {
    /// The trusted issuer whose identifier is exactly `iss`; `None` when it
    /// is not configured or the feature is off.
    pub fn issuer(&self, iss: &str) -> Option<&TrustedIssuer> {
        if !self.enabled {
            return None;
        }
        self.issuers.iter().find(|i| i.issuer == iss)
    }
}

/// An issuer whose statements bind clients to `organization` and `profile`.
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    pub issuer: String,
    pub keys: IssuerKeys,
    /// The name of the organization its clients belong to; it must exist
    /// when a statement is presented.
    pub organization: String,
    /// The policy profile its clients are decided under.
    pub profile: String,
    /// The algorithms its statements may be signed with.
    pub algorithms: Vec<&'static str>,
}

/// Where a trusted issuer's public keys come from.
#[derive(Debug, Clone)]
pub enum IssuerKeys {
    /// A JWK Set given in the configuration.
    Inline(Vec<PublicKey>),
    /// The https URL of the issuer's JWK Set, fetched (and cached) through
    /// the outbound fetcher when a statement is verified.
    JwksUri(String),
}

impl RawSoftwareStatements {
    /// Validates every issuer; `policy` is `None` when the policy itself
    /// is invalid (its problems are reported already). `fetch` holds the
    /// fetcher's allowlists, which a `jwks_uri` is checked against.
    pub(crate) fn validate(
        self,
        policy: Option<&Policy>,
        fetch: &FetchConfig,
        problems: &mut Vec<String>,
    ) -> SoftwareStatementsConfig {
        let defaults = SoftwareStatementsConfig::default();
        let enabled = self.enabled.unwrap_or(defaults.enabled);
        let per_minute = self
            .registrations_per_minute_per_source
            .unwrap_or(defaults.registrations_per_minute_per_source);
        if per_minute == 0 {
            problems.push("software_statements.registrations_per_minute_per_source: must be at least 1; registration without a token is always rate limited".into());
        }
        if enabled && self.issuers.is_empty() {
            problems.push("software_statements.issuers: none configured; software_statements.enabled = true needs at least one [[software_statements.issuers]]".into());
        }
        let mut issuers: Vec<TrustedIssuer> = Vec::new();
        for (i, raw) in self.issuers.into_iter().enumerate() {
            let key = format!("software_statements.issuers[{i}]");
            if let Some(issuer) = raw.validate(&key, policy, fetch, problems) {
                if let Some(first) = issuers.iter().position(|t| t.issuer == issuer.issuer) {
                    problems.push(format!(
                        "{key}.issuer: {:?} is already configured as software_statements.issuers[{first}]; trust an issuer once",
                        issuer.issuer
                    ));
                }
                issuers.push(issuer);
            }
        }
        SoftwareStatementsConfig {
            enabled,
            registrations_per_minute_per_source: per_minute,
            issuers,
        }
    }
}

impl RawStatementIssuer {
    fn validate(
        self,
        key: &str,
        policy: Option<&Policy>,
        fetch: &FetchConfig,
        problems: &mut Vec<String>,
    ) -> Option<TrustedIssuer> {
        let before = problems.len();
        let mut required = |field: &str, value: Option<String>, what: &str| match value {
            Some(v) if !v.trim().is_empty() && !v.chars().any(char::is_control) => v,
            Some(v) => {
                problems.push(format!(
                    "{key}.{field}: {v:?} must be non-empty printable text; {what}"
                ));
                String::new()
            }
            None => {
                problems.push(format!("{key}.{field}: missing; {what}"));
                String::new()
            }
        };
        let issuer = required(
            "issuer",
            self.issuer,
            "the statements' \"iss\", compared exactly",
        );
        let organization = required(
            "organization",
            self.organization,
            "the name of the organization its clients belong to",
        );
        let profile = required(
            "profile",
            self.profile,
            "the [policy] profile its clients are decided under",
        );
        if let Some(policy) = policy {
            if !profile.is_empty() && policy.profile(&profile).is_none() {
                problems.push(format!(
                    "{key}.profile: {profile:?} is not a defined policy profile; define [policy.profiles.{profile}] or name another"
                ));
            }
        }
        let algorithms: Vec<&'static str> = match self.algorithms {
            None => DEFAULT_STATEMENT_ALGS.to_vec(),
            Some(names) if names.is_empty() => {
                problems.push(format!(
                    "{key}.algorithms: must not be empty; omit it to accept {}",
                    VERIFY_ALGS.join(", ")
                ));
                Vec::new()
            }
            Some(names) => names
                .iter()
                .filter_map(|name| {
                    let known = VERIFY_ALGS.iter().find(|a| **a == name.as_str()).copied();
                    if known.is_none() {
                        problems.push(format!(
                            "{key}.algorithms: {name:?} is not accepted; use any of {} (never none or HMAC)",
                            VERIFY_ALGS.join(", ")
                        ));
                    }
                    known
                })
                .collect(),
        };
        let keys = match (self.jwks, self.jwks_uri) {
            (Some(_), Some(_)) => {
                problems.push(format!("{key}.jwks_uri: set together with {key}.jwks; give the issuer's public keys one way, inline (jwks) or by URL (jwks_uri)"));
                IssuerKeys::Inline(Vec::new())
            }
            (None, None) => {
                problems.push(format!(
                    "{key}.jwks: missing; the issuer's public keys as a JWK Set (RFC 7517 §5), or {key}.jwks_uri, the https URL where it publishes them"
                ));
                IssuerKeys::Inline(Vec::new())
            }
            (Some(jwks), None) => {
                IssuerKeys::Inline(public_keys(&format!("{key}.jwks"), jwks, problems))
            }
            (None, Some(url)) => {
                IssuerKeys::JwksUri(jwks_uri(&format!("{key}.jwks_uri"), url, fetch, problems))
            }
        };
        // Keys at a jwks_uri are known only once fetched: a set that cannot
        // verify the issuer's algorithms then fails each statement instead.
        if let IssuerKeys::Inline(keys) = &keys {
            if !keys.is_empty()
                && !algorithms.is_empty()
                && !keys
                    .iter()
                    .any(|k| algorithms.iter().any(|alg| k.suits(alg)))
            {
                problems.push(format!(
                    "{key}.jwks: no key can verify any of {key}.algorithms ({})",
                    algorithms.join(", ")
                ));
            }
        }
        (problems.len() == before).then_some(TrustedIssuer {
            issuer,
            keys,
            organization,
            profile,
            algorithms,
        })
    }
}

/// Checks an issuer's `jwks_uri`: an absolute `https` URL (the keys it
/// serves vouch for clients, so they must not travel in the clear, whatever
/// `fetch.allow_http` says) that the fetcher would not refuse without even
/// resolving its host. Returned as written.
fn jwks_uri(key: &str, url: String, fetch: &FetchConfig, problems: &mut Vec<String>) -> String {
    let what = "the https URL of the issuer's JWK Set (RFC 7517 §5)";
    match url::Url::parse(&url) {
        Err(e) => problems.push(format!("{key}: {url:?} is not a URL ({e}); {what}")),
        Ok(parsed) if parsed.scheme() != "https" => problems.push(format!(
            "{key}: {url:?} must use https; the issuer's keys vouch for clients and must not travel in the clear"
        )),
        // Not echoed: the password would end up in the log.
        Ok(parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            problems.push(format!(
                "{key}: must not contain a user name or password (value not shown); {what}"
            ))
        }
        Ok(parsed) if parsed.fragment().is_some() => problems.push(format!(
            "{key}: {url:?} must not have a fragment (#...); {what}"
        )),
        Ok(_) => {
            if let Err(e) = fetch.check_url(&url) {
                problems.push(format!("{key}: {e}; the fetcher would refuse every fetch of it (an internal address must be allowed with fetch.allow_cidrs or fetch.allow_hosts)"));
            }
        }
    }
    url
}

/// A configured JWK Set: a TOML table with `keys`, or the JSON text of one.
pub(crate) fn jwk_set(key: &str, jwks: Value, problems: &mut Vec<String>) -> Option<Value> {
    match jwks {
        Value::String(text) => match serde_json::from_str::<Value>(&text) {
            Ok(value) => Some(value),
            Err(e) => {
                problems.push(format!("{key}: the text is not a JSON JWK Set ({e})"));
                None
            }
        },
        other => Some(other),
    }
}

/// Reads a JWK Set of public signature keys, checked like a client's
/// `jwks` (public members only, key sizes, points on the curve).
pub(crate) fn public_keys(key: &str, jwks: Value, problems: &mut Vec<String>) -> Vec<PublicKey> {
    let Some(jwks) = jwk_set(key, jwks, problems) else {
        return Vec::new();
    };
    if let Err(e) = charter_jose::validate_client_jwks(&jwks) {
        problems.push(format!("{key}: {e}"));
        return Vec::new();
    }
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::with_capacity(keys.len());
    for (n, jwk) in keys.iter().enumerate() {
        match PublicKey::from_jwk(jwk) {
            Ok(k) => out.push(k),
            Err(e) => problems.push(format!("{key}: key {n}: {e}")),
        }
    }
    out
}
