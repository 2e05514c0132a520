//! Charter's one typed configuration.
//!
//! A TOML file (every key optional) is read into [`RawConfig`] with
//! `deny_unknown_fields`, command-line flags and environment variables
//! override it, and [`RawConfig::validate`] turns the result into a
//! [`Config`] of real types, or a list of *every* problem, each naming the
//! key, the bad value and what is accepted. The server does not start until
//! all are fixed.

pub use charter_policy::parse_duration;
pub use documents::{
    DocumentBinding, MetadataDocumentsConfig, RawMetadataDocuments, RawTrustedDomain,
    TrustedDomain, UnknownDomains,
};
pub use statements::{
    IssuerKeys, RawSoftwareStatements, RawStatementIssuer, SoftwareStatementsConfig, TrustedIssuer,
    DEFAULT_STATEMENT_ALGS,
};

mod documents;
mod statements;
mod workloads;
pub use workloads::{
    RawTrustSource, RawWorkloadIdentity, WorkloadIdentityConfig, WorkloadKeys, WorkloadTrustSource,
    DEFAULT_MAX_WORKLOAD_TOKEN_LIFETIME,
};

use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./charter-data";

/// The file format: every key optional, strings where the value needs parsing.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub storage: RawStorage,
    #[serde(default)]
    pub registration: RawRegistration,
    #[serde(default)]
    pub secrets: RawSecrets,
    /// Registration policy profiles; without any, the built-in `default`
    /// profile allows what the protocol rules allow.
    #[serde(default)]
    pub policy: charter_policy::RawPolicy,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub tokens: RawTokens,
    #[serde(default)]
    pub lifecycle: RawLifecycle,
    #[serde(default)]
    pub login: RawLogin,
    #[serde(default)]
    pub dpop: RawDpop,
    #[serde(default)]
    pub fetch: RawFetch,
    /// Trusted software statement issuers (RFC 7591 §2.3).
    #[serde(default)]
    pub software_statements: RawSoftwareStatements,
    /// Trusted SPIFFE trust domains and Kubernetes clusters (workload identity).
    #[serde(default)]
    pub workload_identity: RawWorkloadIdentity,
    /// Client ID Metadata Documents and their domain policy.
    #[serde(default)]
    pub client_id_metadata_documents: RawMetadataDocuments,
}

/// End-user sign-in at the authorization endpoint.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogin {
    pub session_lifetime: Option<String>,
    pub interaction_lifetime: Option<String>,
}

/// DPoP (RFC 9449) proofs.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDpop {
    pub require_nonce: Option<bool>,
    pub proof_max_age: Option<String>,
}

/// Access tokens and the keys that sign them.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokens {
    pub access_token_lifetime: Option<String>,
    pub signing_alg: Option<String>,
    pub key_rotation_interval: Option<String>,
    pub key_publish_ahead: Option<String>,
    pub authorization_code_lifetime: Option<String>,
    pub refresh_token_lifetime: Option<String>,
}

/// The client lifecycle: secret rotation overlap, last use, the reaper.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLifecycle {
    pub secret_rotation_overlap: Option<String>,
    pub expired_retention: Option<String>,
    pub unused_client_expiry: Option<String>,
    pub last_used_flush_interval: Option<String>,
}

/// Rate limits (GCRA). Rates are per second; 0 switches a limit off.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub registrations_per_second_per_source: Option<u32>,
    pub registrations_per_second_per_initial_access_token: Option<u32>,
    pub failed_authentications_per_minute_per_source: Option<u32>,
    pub authorization_requests_per_minute_per_source: Option<u32>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub issuer: Option<String>,
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub tls: RawTls,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub database_url: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegistration {
    pub rotate_registration_access_token_on_update: Option<bool>,
    pub client_secret_lifetime: Option<String>,
    pub client_lifetime: Option<String>,
    pub pending_lifetime: Option<String>,
    #[serde(default)]
    pub anonymous: RawAnonymous,
}

/// Registration without an initial access token. Off by default.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnonymous {
    pub enabled: Option<bool>,
    pub profile: Option<String>,
    pub organization: Option<String>,
    pub registrations_per_minute_per_source: Option<u32>,
}

#[derive(Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecrets {
    pub hash_key: Option<String>,
}

impl fmt::Debug for RawSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawSecrets")
            .field("hash_key", &self.hash_key.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub registration: RegistrationConfig,
    pub secrets: SecretsConfig,
    pub policy: charter_policy::Policy,
    pub limits: LimitsConfig,
    pub tokens: TokensConfig,
    pub lifecycle: LifecycleConfig,
    pub login: LoginConfig,
    pub dpop: DpopConfig,
    /// The outbound fetcher (jwks_uri, sector_identifier_uri, ...).
    pub fetch: charter_fetch::FetchConfig,
    pub software_statements: SoftwareStatementsConfig,
    pub workload_identity: WorkloadIdentityConfig,
    pub client_id_metadata_documents: MetadataDocumentsConfig,
}

/// Validated token settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokensConfig {
    /// Lifetime of access tokens (`expires_in`).
    pub access_token_lifetime: Duration,
    /// `ES256` (default) or `RS256`: the algorithm access tokens are signed with.
    pub signing_alg: &'static str,
    /// How long each signing key signs before its successor takes over.
    pub key_rotation_interval: Duration,
    /// How long a new key is published in the JWK Set before it signs, so
    /// that resource servers holding a cached JWK Set know it in time.
    pub key_publish_ahead: Duration,
    /// How long an authorization code may be redeemed (RFC 6749 §4.1.2:
    /// at most 10 minutes).
    pub authorization_code_lifetime: Duration,
    /// Lifetime of a grant's refresh tokens unless the client's profile
    /// sets a shorter one; each rotation keeps the grant's absolute end.
    pub refresh_token_lifetime: Duration,
}

/// Validated sign-in settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginConfig {
    /// How long a browser stays signed in.
    pub session_lifetime: Duration,
    /// How long a user has to sign in and consent to one request.
    pub interaction_lifetime: Duration,
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            session_lifetime: Duration::from_secs(8 * 3600),
            interaction_lifetime: Duration::from_secs(600),
        }
    }
}

/// Validated DPoP settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopConfig {
    /// Whether proofs must carry a server nonce (RFC 9449 §8, §9).
    pub require_nonce: bool,
    /// How old a proof's `iat` may be.
    pub proof_max_age: Duration,
}

impl Default for DpopConfig {
    fn default() -> Self {
        Self {
            require_nonce: true,
            proof_max_age: Duration::from_secs(60),
        }
    }
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            access_token_lifetime: Duration::from_secs(600),
            signing_alg: "ES256",
            key_rotation_interval: Duration::from_secs(30 * 86_400),
            key_publish_ahead: Duration::from_secs(3600),
            authorization_code_lifetime: Duration::from_secs(60),
            refresh_token_lifetime: Duration::from_secs(30 * 86_400),
        }
    }
}

/// Validated lifecycle settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleConfig {
    /// How long a rotated-out client secret keeps working.
    pub secret_rotation_overlap: Duration,
    /// How long an expired client is kept (visible to reports and its
    /// owner's GET) before the reaper deletes it.
    pub expired_retention: Duration,
    /// Dynamically registered clients never used for this long are expired;
    /// `None` switches this off.
    pub unused_client_expiry: Option<Duration>,
    /// How often `last_used_at` is flushed from memory to the database.
    pub last_used_flush_interval: Duration,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            secret_rotation_overlap: Duration::from_secs(86_400),
            expired_retention: Duration::from_secs(30 * 86_400),
            unused_client_expiry: Some(Duration::from_secs(90 * 86_400)),
            last_used_flush_interval: Duration::from_secs(10),
        }
    }
}

/// Validated rate limits; `None` is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    pub registrations_per_second_per_source: Option<u32>,
    pub registrations_per_second_per_initial_access_token: Option<u32>,
    /// Failed bearer-token attempts (IAT, RAT, admin) a source may make per
    /// minute before it is refused with 429 (RFC 7592 §5 asks for this).
    pub failed_authentications_per_minute_per_source: Option<u32>,
    /// Authorization requests a source may start per minute: each stores
    /// a pending interaction until it expires.
    pub authorization_requests_per_minute_per_source: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// `None`: derived from the bound address at start-up (`http://127.0.0.1:PORT`).
    pub issuer: Option<Issuer>,
    pub data_dir: PathBuf,
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    Sqlite { url: String },
    Postgres { url: String },
}

#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    /// RFC 7592 §2.2 allows a new registration access token in every update
    /// response; on by default so a leaked token dies at the next update.
    /// Some profiles (the Brazil DCR suite) expect it unchanged.
    pub rotate_registration_access_token_on_update: bool,
    /// Lifetime of issued client secrets (`client_secret_expires_at`) under
    /// profiles that set none.
    pub client_secret_lifetime: Duration,
    /// Lifetime of a client registration under profiles that set none.
    pub client_lifetime: Duration,
    /// `Some` when anonymous registration is enabled.
    pub anonymous: Option<AnonymousConfig>,
    /// How long a client may stay pending before it is expired.
    pub pending_lifetime: Duration,
}

/// Anonymous registration: public clients only, decided under `profile`,
/// owned by the quarantine `organization`, rate limited per source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnonymousConfig {
    pub profile: String,
    pub organization: String,
    pub registrations_per_minute_per_source: u32,
}

#[derive(Clone, Default)]
pub struct SecretsConfig {
    /// Key for hashing credentials; when `None` a key is generated and kept
    /// in the data directory. Replicas sharing a database must share it.
    pub hash_key: Option<Vec<u8>>,
}

impl fmt::Debug for SecretsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsConfig")
            .field("hash_key", &self.hash_key.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// An issuer identifier (RFC 8414 §2): kept byte-exact as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    text: String,
    path: String,
}

impl Issuer {
    /// Parses and checks an issuer identifier: `https` (or `http` on a
    /// loopback host), no query, no fragment, no user information, no
    /// trailing slash.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url =
            url::Url::parse(text).map_err(|e| format!("{text:?} is not an absolute URL ({e})"))?;
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => return Err(format!("{text:?} uses http on a non-loopback host; a public issuer must be https (RFC 8414 §2)")),
            other => return Err(format!("{text:?} has scheme {other:?}; use https")),
        }
        if url.query().is_some() || url.fragment().is_some() || text.contains(['?', '#']) {
            return Err(format!(
                "{text:?} must not contain a query or fragment (RFC 8414 §2)"
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("{text:?} must not contain user information"));
        }
        if text.ends_with('/') {
            return Err(format!(
                "{text:?} must not end with '/'; the issuer is compared byte for byte"
            ));
        }
        if url.as_str().trim_end_matches('/') != text {
            return Err(format!(
                "{text:?} is not in normalized form; write it as {:?}",
                url.as_str().trim_end_matches('/')
            ));
        }
        let path = url.path().trim_end_matches('/').to_owned();
        Ok(Self {
            text: text.to_owned(),
            path,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The issuer's path without a trailing slash; empty for a host-only issuer.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// An endpoint URL under the issuer.
    pub fn endpoint(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.text)
    }
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Errors of loading, before validation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl RawConfig {
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| Error::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text, path)
    }

    /// Checks every key and collects every problem.
    pub fn validate(self) -> Result<Config, Error> {
        let mut problems = Vec::new();
        let listen_text = self.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
            problems.push(format!("server.listen: {listen_text:?} is not an address; write IP:PORT such as 127.0.0.1:8080"));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        let issuer = self.server.issuer.as_deref().and_then(|text| {
            Issuer::parse(text)
                .map_err(|e| problems.push(format!("server.issuer: {e}")))
                .ok()
        });
        if issuer.is_none() && self.server.issuer.is_none() && !listen.ip().is_loopback() {
            problems.push(format!(
                "server.issuer: missing; required when server.listen ({listen}) is not a loopback address, and it must be https"
            ));
        }
        if let Some(issuer) = &issuer {
            if issuer.as_str().starts_with("http://") && !listen.ip().is_loopback() {
                problems.push(format!(
                    "server.issuer: {issuer} is a plain-http loopback issuer but server.listen ({listen}) accepts remote \
                     connections; credentials would cross the network in clear (RFC 7591 section 3): use an https issuer"
                ));
            }
        }
        let data_dir = self
            .server
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));

        let tls = match (&self.server.tls.cert, &self.server.tls.key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                for (name, path) in [("server.tls.cert", cert), ("server.tls.key", key)] {
                    if !path.is_file() {
                        problems.push(format!(
                            "{name}: {} does not exist or is not a file",
                            path.display()
                        ));
                    }
                }
                Some(TlsConfig {
                    cert: cert.clone(),
                    key: key.clone(),
                })
            }
            (Some(_), None) => {
                problems
                    .push("server.tls.key: missing; required when server.tls.cert is set".into());
                None
            }
            (None, Some(_)) => {
                problems
                    .push("server.tls.cert: missing; required when server.tls.key is set".into());
                None
            }
        };
        if let Some(issuer) = &issuer {
            if tls.is_some() && !issuer.as_str().starts_with("https://") {
                problems.push(format!(
                    "server.issuer: {issuer} must be https when TLS is enabled"
                ));
            }
        }

        let storage = match self.storage.database_url {
            None => StorageConfig::Sqlite {
                url: format!("sqlite:{}", data_dir.join("charter.db").display()),
            },
            Some(url) if url.starts_with("sqlite:") => StorageConfig::Sqlite { url },
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                StorageConfig::Postgres { url }
            }
            Some(url) => {
                let shown = url
                    .split_once("://")
                    .map_or(url.as_str(), |(scheme, _)| scheme);
                problems.push(format!(
                    "storage.database_url: scheme of {shown:?} is not supported; use sqlite:PATH or postgres://USER@HOST/DB"
                ));
                StorageConfig::Sqlite { url: String::new() }
            }
        };

        let lifetime_text = self
            .registration
            .client_secret_lifetime
            .as_deref()
            .unwrap_or("90d");
        let client_secret_lifetime = match parse_duration(lifetime_text) {
            Ok(d)
                if d >= Duration::from_secs(60) && d <= Duration::from_secs(10 * 366 * 86_400) =>
            {
                d
            }
            Ok(_) => {
                problems.push(format!("registration.client_secret_lifetime: {lifetime_text:?} is out of range; use 1m to 3660d"));
                Duration::ZERO
            }
            Err(e) => {
                problems.push(format!("registration.client_secret_lifetime: {e}"));
                Duration::ZERO
            }
        };

        let client_lifetime_text = self
            .registration
            .client_lifetime
            .as_deref()
            .unwrap_or("365d");
        let client_lifetime = match parse_duration(client_lifetime_text) {
            Ok(d)
                if d >= Duration::from_secs(60) && d <= Duration::from_secs(10 * 366 * 86_400) =>
            {
                d
            }
            Ok(_) => {
                problems.push(format!("registration.client_lifetime: {client_lifetime_text:?} is out of range; use 1m to 3660d"));
                Duration::ZERO
            }
            Err(e) => {
                problems.push(format!("registration.client_lifetime: {e}"));
                Duration::ZERO
            }
        };
        if client_secret_lifetime > client_lifetime && !client_lifetime.is_zero() {
            problems.push("registration.client_secret_lifetime: longer than registration.client_lifetime; a secret cannot outlive its client".into());
        }
        let policy = self
            .policy
            .validate("policy.", (client_lifetime, client_secret_lifetime))
            .map_err(|p| problems.extend(p))
            .ok();

        let pending_text = self
            .registration
            .pending_lifetime
            .as_deref()
            .unwrap_or("7d");
        let pending_lifetime = match parse_duration(pending_text) {
            Ok(d) if d >= Duration::from_secs(60) => d,
            Ok(_) => {
                problems.push(format!("registration.pending_lifetime: {pending_text:?} is shorter than the minimum of 1m"));
                Duration::ZERO
            }
            Err(e) => {
                problems.push(format!("registration.pending_lifetime: {e}"));
                Duration::ZERO
            }
        };
        let anonymous = match self.registration.anonymous.enabled {
            Some(true) => {
                let raw = &self.registration.anonymous;
                let profile = raw.profile.clone().unwrap_or_else(|| "anonymous".into());
                if let Some(policy) = &policy {
                    if policy.profile(&profile).is_none() {
                        problems.push(format!(
                            "registration.anonymous.profile: {profile:?} is not a defined policy profile; define [policy.profiles.{profile}] with narrow scopes, loopback or allowlisted redirect URIs and approval"
                        ));
                    }
                }
                let per_minute = raw.registrations_per_minute_per_source.unwrap_or(10);
                if per_minute == 0 {
                    problems.push("registration.anonymous.registrations_per_minute_per_source: must be at least 1; anonymous registration is always rate limited".into());
                }
                Some(AnonymousConfig {
                    profile,
                    organization: raw
                        .organization
                        .clone()
                        .unwrap_or_else(|| "quarantine".into()),
                    registrations_per_minute_per_source: per_minute,
                })
            }
            _ => None,
        };

        let hash_key = self.secrets.hash_key.as_deref().and_then(|text| {
            use base64::Engine;
            match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim()) {
                Ok(key) if key.len() >= 32 => Some(key),
                _ => {
                    problems.push("secrets.hash_key: must be at least 32 bytes, base64url-encoded without padding (value not shown)".into());
                    None
                }
            }
        });

        let tokens = self.tokens.validate(&mut problems);
        let lifecycle = self.lifecycle.validate(&mut problems);
        let login = self.login.validate(&mut problems);
        let dpop = self.dpop.validate(&mut problems);
        let fetch = self.fetch.validate(&mut problems);
        let software_statements =
            self.software_statements
                .validate(policy.as_ref(), &fetch, &mut problems);

        let workload_identity =
            self.workload_identity
                .validate(policy.as_ref(), &fetch, &mut problems);
        let client_id_metadata_documents = self
            .client_id_metadata_documents
            .validate(policy.as_ref(), &mut problems);
        if !problems.is_empty() {
            return Err(Error::Invalid(problems));
        }
        Ok(Config {
            client_id_metadata_documents,
            tokens,
            lifecycle,
            login,
            dpop,
            fetch,
            software_statements,
            workload_identity,
            server: ServerConfig {
                listen,
                issuer,
                data_dir,
                tls,
            },
            storage,
            registration: RegistrationConfig {
                rotate_registration_access_token_on_update: self
                    .registration
                    .rotate_registration_access_token_on_update
                    .unwrap_or(true),
                client_secret_lifetime,
                client_lifetime,
                anonymous,
                pending_lifetime,
            },
            secrets: SecretsConfig { hash_key },
            limits: LimitsConfig {
                registrations_per_second_per_source: self
                    .limits
                    .registrations_per_second_per_source
                    .filter(|n| *n > 0),
                registrations_per_second_per_initial_access_token: self
                    .limits
                    .registrations_per_second_per_initial_access_token
                    .filter(|n| *n > 0),
                failed_authentications_per_minute_per_source: Some(
                    self.limits
                        .failed_authentications_per_minute_per_source
                        .unwrap_or(60),
                )
                .filter(|n| *n > 0),
                authorization_requests_per_minute_per_source: Some(
                    self.limits
                        .authorization_requests_per_minute_per_source
                        .unwrap_or(600),
                )
                .filter(|n| *n > 0),
            },
            policy: policy.unwrap_or_else(|| {
                charter_policy::Policy::builtin(client_lifetime, client_secret_lifetime)
            }),
        })
    }
}

/// A duration key within `min..=max`, or its default; a problem names the key.
fn duration_key(
    problems: &mut Vec<String>,
    key: &str,
    value: Option<&str>,
    default: Duration,
    (min, max): (Duration, Duration),
) -> Duration {
    let Some(text) = value else {
        return default;
    };
    match parse_duration(text) {
        Ok(d) if d >= min && d <= max => d,
        Ok(_) => {
            problems.push(format!(
                "{key}: {text:?} is out of range; use {}s to {}s",
                min.as_secs(),
                max.as_secs()
            ));
            default
        }
        Err(e) => {
            problems.push(format!("{key}: {e}"));
            default
        }
    }
}

const DAY: u64 = 86_400;

/// The longest `tokens.access_token_lifetime` accepted. Signing keys are
/// kept this long after their successor starts signing, so a token signed
/// before a change of the configured lifetime still verifies.
pub const MAX_ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(DAY);

impl RawTokens {
    fn validate(self, problems: &mut Vec<String>) -> TokensConfig {
        let defaults = TokensConfig::default();
        let secs = Duration::from_secs;
        let access_token_lifetime = duration_key(
            problems,
            "tokens.access_token_lifetime",
            self.access_token_lifetime.as_deref(),
            defaults.access_token_lifetime,
            (secs(10), MAX_ACCESS_TOKEN_LIFETIME),
        );
        let signing_alg = match self.signing_alg.as_deref() {
            None | Some("ES256") => "ES256",
            Some("RS256") => "RS256",
            Some(other) => {
                problems.push(format!(
                    "tokens.signing_alg: {other:?} is not supported; use \"ES256\" or \"RS256\""
                ));
                "ES256"
            }
        };
        let key_rotation_interval = duration_key(
            problems,
            "tokens.key_rotation_interval",
            self.key_rotation_interval.as_deref(),
            defaults.key_rotation_interval,
            (secs(10), secs(366 * DAY)),
        );
        let key_publish_ahead = duration_key(
            problems,
            "tokens.key_publish_ahead",
            self.key_publish_ahead.as_deref(),
            defaults.key_publish_ahead.min(key_rotation_interval / 2),
            (secs(2), secs(30 * DAY)),
        );
        if key_publish_ahead >= key_rotation_interval {
            problems.push(format!(
                "tokens.key_publish_ahead: {}s is not shorter than tokens.key_rotation_interval ({}s); a key must sign for a while after it is published",
                key_publish_ahead.as_secs(),
                key_rotation_interval.as_secs()
            ));
        }
        TokensConfig {
            access_token_lifetime,
            signing_alg,
            key_rotation_interval,
            key_publish_ahead,
            authorization_code_lifetime: duration_key(
                problems,
                "tokens.authorization_code_lifetime",
                self.authorization_code_lifetime.as_deref(),
                defaults.authorization_code_lifetime,
                (secs(5), secs(600)),
            ),
            refresh_token_lifetime: duration_key(
                problems,
                "tokens.refresh_token_lifetime",
                self.refresh_token_lifetime.as_deref(),
                defaults.refresh_token_lifetime,
                (secs(60), secs(366 * DAY)),
            ),
        }
    }
}

impl RawLifecycle {
    fn validate(self, problems: &mut Vec<String>) -> LifecycleConfig {
        let defaults = LifecycleConfig::default();
        let secs = Duration::from_secs;
        let unused_client_expiry = match self.unused_client_expiry.as_deref() {
            Some("off") => None,
            other => Some(duration_key(
                problems,
                "lifecycle.unused_client_expiry",
                other,
                defaults.unused_client_expiry.unwrap_or_default(),
                (secs(60), secs(3660 * DAY)),
            )),
        };
        LifecycleConfig {
            secret_rotation_overlap: duration_key(
                problems,
                "lifecycle.secret_rotation_overlap",
                self.secret_rotation_overlap.as_deref(),
                defaults.secret_rotation_overlap,
                (secs(0), secs(30 * DAY)),
            ),
            expired_retention: duration_key(
                problems,
                "lifecycle.expired_retention",
                self.expired_retention.as_deref(),
                defaults.expired_retention,
                (secs(0), secs(3660 * DAY)),
            ),
            unused_client_expiry,
            last_used_flush_interval: duration_key(
                problems,
                "lifecycle.last_used_flush_interval",
                self.last_used_flush_interval.as_deref(),
                defaults.last_used_flush_interval,
                (secs(1), secs(3600)),
            ),
        }
    }
}

impl RawLogin {
    fn validate(self, problems: &mut Vec<String>) -> LoginConfig {
        let defaults = LoginConfig::default();
        let secs = Duration::from_secs;
        LoginConfig {
            session_lifetime: duration_key(
                problems,
                "login.session_lifetime",
                self.session_lifetime.as_deref(),
                defaults.session_lifetime,
                (secs(60), secs(30 * DAY)),
            ),
            interaction_lifetime: duration_key(
                problems,
                "login.interaction_lifetime",
                self.interaction_lifetime.as_deref(),
                defaults.interaction_lifetime,
                (secs(60), secs(3600)),
            ),
        }
    }
}

/// The outbound fetcher: the only component that opens connections.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFetch {
    pub allow_hosts: Option<Vec<String>>,
    pub allow_cidrs: Option<Vec<String>>,
    pub allow_http: Option<bool>,
    pub connect_timeout: Option<String>,
    pub timeout: Option<String>,
    pub cache_min_ttl: Option<String>,
    pub cache_max_ttl: Option<String>,
    pub negative_ttl: Option<String>,
    pub max_cache_entries: Option<usize>,
    pub max_concurrent_per_host: Option<usize>,
    pub refetch_interval: Option<String>,
    /// PEM files of extra trust anchors for fetched https URLs.
    pub root_certificates: Option<Vec<PathBuf>>,
}

impl RawFetch {
    fn validate(self, problems: &mut Vec<String>) -> charter_fetch::FetchConfig {
        let defaults = charter_fetch::FetchConfig::default();
        let secs = Duration::from_secs;
        let mut cidrs = Vec::new();
        for text in self.allow_cidrs.unwrap_or_default() {
            match text.parse::<charter_fetch::IpNet>() {
                Ok(net) => cidrs.push(net),
                Err(_) => problems.push(format!(
                    "fetch.allow_cidrs: {text:?} is not a CIDR block such as \"10.20.0.0/16\""
                )),
            }
        }
        let mut config = charter_fetch::FetchConfig {
            allow_hosts: self
                .allow_hosts
                .unwrap_or_default()
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            allow_cidrs: cidrs,
            allow_http: self.allow_http.unwrap_or(defaults.allow_http),
            connect_timeout: duration_key(
                problems,
                "fetch.connect_timeout",
                self.connect_timeout.as_deref(),
                defaults.connect_timeout,
                (Duration::from_millis(100), secs(60)),
            ),
            timeout: duration_key(
                problems,
                "fetch.timeout",
                self.timeout.as_deref(),
                defaults.timeout,
                (Duration::from_millis(100), secs(120)),
            ),
            cache_min_ttl: duration_key(
                problems,
                "fetch.cache_min_ttl",
                self.cache_min_ttl.as_deref(),
                defaults.cache_min_ttl,
                (secs(0), secs(DAY)),
            ),
            cache_max_ttl: duration_key(
                problems,
                "fetch.cache_max_ttl",
                self.cache_max_ttl.as_deref(),
                defaults.cache_max_ttl,
                (secs(0), secs(7 * DAY)),
            ),
            negative_ttl: duration_key(
                problems,
                "fetch.negative_ttl",
                self.negative_ttl.as_deref(),
                defaults.negative_ttl,
                (secs(0), secs(3600)),
            ),
            max_cache_entries: self.max_cache_entries.unwrap_or(defaults.max_cache_entries),
            max_concurrent_per_host: self
                .max_concurrent_per_host
                .unwrap_or(defaults.max_concurrent_per_host),
            refetch_interval: duration_key(
                problems,
                "fetch.refetch_interval",
                self.refetch_interval.as_deref(),
                defaults.refetch_interval,
                (secs(0), secs(3600)),
            ),
            root_certificates_pem: Vec::new(),
        };
        for path in self.root_certificates.unwrap_or_default() {
            match std::fs::read(&path) {
                Ok(pem) if pem.starts_with(b"-----BEGIN CERTIFICATE-----") => {
                    config.root_certificates_pem.push(pem)
                }
                Ok(_) => problems.push(format!(
                    "fetch.root_certificates: {} is not a PEM certificate",
                    path.display()
                )),
                Err(e) => {
                    problems.push(format!("fetch.root_certificates: {}: {e}", path.display()))
                }
            }
        }
        problems.extend(config.problems().into_iter().map(|p| format!("fetch.{p}")));
        config
    }
}

impl RawDpop {
    fn validate(self, problems: &mut Vec<String>) -> DpopConfig {
        let defaults = DpopConfig::default();
        let secs = Duration::from_secs;
        DpopConfig {
            require_nonce: self.require_nonce.unwrap_or(defaults.require_nonce),
            proof_max_age: duration_key(
                problems,
                "dpop.proof_max_age",
                self.proof_max_age.as_deref(),
                defaults.proof_max_age,
                (secs(5), secs(300)),
            ),
        }
    }
}

#[cfg(test)]
mod tests;
