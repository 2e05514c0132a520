//! Workload identity tokens: SPIFFE JWT-SVIDs and Kubernetes projected
//! service-account tokens, as pure functions of the token, the keys of its
//! trust source and the time.
//!
//! A token is decided in three steps, so that the caller can find the trust
//! source's keys in between (configured, or fetched: this crate does no I/O):
//!
//! 1. [`parse_workload_token`]: a compact JWS (strict, never `none` or
//!    HMAC) whose header holds only `alg`, `kid` and `typ` (`JWT` or
//!    `JOSE`, JWT-SVID §2), and whose `sub` says which kind of workload it
//!    is: a SPIFFE ID (`spiffe://TRUST_DOMAIN/PATH`, SPIFFE-ID §2) or a
//!    Kubernetes service account (`system:serviceaccount:NS:NAME`, which
//!    needs an `iss`). The result names the trust source to look up: the
//!    SPIFFE trust domain (bundles are keyed by trust domain, never by a
//!    token's `iss`: JWT-SVID §6.2, draft-ietf-oauth-spiffe-client-auth §6)
//!    or the cluster's issuer.
//! 2. The caller looks the trust domain or issuer up among the sources it
//!    trusts and gets their keys; an untrusted one is refused there.
//! 3. [`UnverifiedWorkloadToken::verify`] with those keys: the signature
//!    (by the key its `kid` names), `aud` = this server alone, `exp`
//!    required and not past, a bounded lifetime, `nbf` / `iat` not in the
//!    future, and for Kubernetes the `kubernetes.io` claims consistent with
//!    `sub` (the service account's `uid` is returned, so a re-created
//!    account of the same name can be told apart).
//!
//! What this module deliberately does not do: decide which trust sources
//! are trusted, map them to organizations, remember `jti` values (SPIFFE
//! implementations and the kubelet reuse a token for its whole lifetime,
//! JWT-SVID §7.1), or call the Kubernetes TokenReview API.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client_jwks::PRIVATE_MEMBERS;
use crate::{decode, Jwt, PublicKey};

/// How far the workload's clock and ours may disagree, in seconds.
pub const WORKLOAD_CLOCK_SKEW: i64 = 60;

/// The longest SPIFFE ID accepted (SPIFFE-ID §2.3).
pub const MAX_SPIFFE_ID_BYTES: usize = 2048;

/// The longest trust domain name accepted (SPIFFE-ID §2.1).
const MAX_TRUST_DOMAIN_BYTES: usize = 255;

const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// The two kinds of workload token this module understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    /// A SPIFFE JWT-SVID, verified with its trust domain's bundle.
    Spiffe,
    /// A Kubernetes projected service-account token, verified with its
    /// cluster issuer's keys.
    Kubernetes,
}

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Spiffe => "spiffe",
            WorkloadKind::Kubernetes => "kubernetes",
        }
    }
}

/// Why a workload token was refused. Each description is a fixed sentence
/// (no token content), safe for a response body and a `WWW-Authenticate`
/// header alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    #[error("{}", self.description())]
    Malformed,
    #[error("{}", self.description())]
    Subject,
    #[error("{}", self.description())]
    MissingIssuer,
    #[error("{}", self.description())]
    UntrustedTrustDomain,
    #[error("{}", self.description())]
    UntrustedIssuer,
    #[error("{}", self.description())]
    UnknownKey,
    #[error("{}", self.description())]
    Signature,
    #[error("{}", self.description())]
    Audience,
    #[error("{}", self.description())]
    Times,
    #[error("{}", self.description())]
    MissingExpiry,
    #[error("{}", self.description())]
    Expired,
    #[error("{}", self.description())]
    TooLong,
    #[error("{}", self.description())]
    NotYetValid,
    #[error("{}", self.description())]
    KeysUnavailable,
}

impl WorkloadError {
    pub fn description(self) -> &'static str {
        match self {
            WorkloadError::Malformed => "the workload identity token is not a compact JWS signed with ES256, PS256 or RS256 whose header holds only alg, kid and typ (JWT or JOSE)",
            WorkloadError::Subject => "the workload identity token's sub is neither a SPIFFE ID with a workload path nor a Kubernetes service account (system:serviceaccount:NAMESPACE:NAME) consistent with its kubernetes.io claims",
            WorkloadError::MissingIssuer => "the workload identity token names no issuer; a Kubernetes service-account token must carry iss",
            WorkloadError::UntrustedTrustDomain => "the workload identity token's SPIFFE trust domain is not trusted by this server",
            WorkloadError::UntrustedIssuer => "the workload identity token's issuer is not a Kubernetes cluster this server trusts",
            WorkloadError::UnknownKey => "no key of the workload's trust source matches the token's kid and alg",
            WorkloadError::Signature => "the workload identity token's signature does not verify with its trust source's keys",
            WorkloadError::Audience => "the workload identity token's aud must name this server as its only value",
            WorkloadError::Times => "the workload identity token's exp, nbf and iat must be NumericDates (seconds since 1970)",
            WorkloadError::MissingExpiry => "the workload identity token has no exp; tokens that never expire are not accepted",
            WorkloadError::Expired => "the workload identity token has expired",
            WorkloadError::TooLong => "the workload identity token lives longer than this server accepts; use a short-lived token",
            WorkloadError::NotYetValid => "the workload identity token is not valid yet (nbf or iat is in the future)",
            WorkloadError::KeysUnavailable => "the keys of the workload's trust source could not be fetched; try again later",
        }
    }
}

/// A SPIFFE ID split into its trust domain and path (SPIFFE-ID §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpiffeId<'a> {
    pub trust_domain: &'a str,
    /// Empty for the ID of the trust domain itself, else `/seg/seg`.
    pub path: &'a str,
}

/// Whether `name` is a valid SPIFFE trust domain name (SPIFFE-ID §2.1):
/// lowercase letters, digits, `.`, `-` and `_`, at most 255 bytes.
pub fn valid_trust_domain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TRUST_DOMAIN_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// Parses a SPIFFE ID strictly (SPIFFE-ID §2): scheme `spiffe` in lowercase,
/// a valid trust domain (so no port, user information or uppercase), path
/// segments of letters, digits, `.`, `-` and `_` that are neither empty nor
/// `.` or `..`, no trailing `/`, no query, fragment or percent-encoding, at
/// most [`MAX_SPIFFE_ID_BYTES`]. The error names the rule broken.
pub fn parse_spiffe_id(id: &str) -> Result<SpiffeId<'_>, &'static str> {
    if id.len() > MAX_SPIFFE_ID_BYTES {
        return Err("a SPIFFE ID is at most 2048 bytes");
    }
    let Some(rest) = id.strip_prefix("spiffe://") else {
        return Err("a SPIFFE ID starts with spiffe://");
    };
    let (trust_domain, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    if !valid_trust_domain(trust_domain) {
        return Err(
            "the trust domain must be non-empty lowercase letters, digits, '.', '-' and '_'",
        );
    }
    if !path.is_empty() {
        for segment in path[1..].split('/') {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err("path segments must not be empty, '.' or '..' (and no trailing '/')");
            }
            if !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err("path segments hold only letters, digits, '.', '-' and '_'");
            }
        }
    }
    Ok(SpiffeId { trust_domain, path })
}

/// The namespace and name of a Kubernetes service-account subject
/// (`system:serviceaccount:NAMESPACE:NAME`): a DNS label and a DNS
/// subdomain name (RFC 1123), as Kubernetes names them.
pub fn parse_service_account(subject: &str) -> Option<(&str, &str)> {
    let (namespace, name) = subject
        .strip_prefix(SERVICE_ACCOUNT_PREFIX)?
        .split_once(':')?;
    let label = |s: &str, max: usize, dots: bool| {
        !s.is_empty()
            && s.len() <= max
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (dots && b == b'.')
            })
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
    };
    (label(namespace, 63, false) && label(name, 253, true)).then_some((namespace, name))
}

/// Whether a `sub` names a workload rather than a client: a JWT client
/// assertion whose subject is one is a workload's own token (client ids
/// never contain ':').
pub fn is_workload_subject(sub: &str) -> bool {
    sub.starts_with("spiffe:") || sub.starts_with(SERVICE_ACCOUNT_PREFIX)
}

/// A workload token that parsed and says which trust source to check it
/// with. Nothing in it may be trusted until [`Self::verify`] succeeds.
#[derive(Debug, Clone)]
pub struct UnverifiedWorkloadToken {
    jwt: Jwt,
    kind: WorkloadKind,
    /// The SPIFFE trust domain, or the Kubernetes issuer.
    trust: String,
}

/// Parses a workload token; see the module documentation for the rules.
pub fn parse_workload_token(token: &str) -> Result<UnverifiedWorkloadToken, WorkloadError> {
    parse_workload_jwt(decode(token).map_err(|_| WorkloadError::Malformed)?)
}

/// [`parse_workload_token`] of a JWT already decoded (strictly, by [`decode`]).
pub fn parse_workload_jwt(jwt: Jwt) -> Result<UnverifiedWorkloadToken, WorkloadError> {
    // JWT-SVID §2, §2.3: only these header parameters, and an explicit
    // type, if any, of a plain JWT; so an access token (`at+jwt`), a DPoP
    // proof or a client assertion typed for something else cannot pass.
    let header_ok = jwt
        .header()
        .iter()
        .all(|(name, value)| match name.as_str() {
            "alg" => true,
            "kid" => value.is_string(),
            "typ" => matches!(value.as_str(), Some("JWT" | "JOSE")),
            _ => false,
        });
    if !header_ok {
        return Err(WorkloadError::Malformed);
    }
    let sub = jwt.claim_str("sub").ok_or(WorkloadError::Subject)?;
    let (kind, trust) = if sub.starts_with("spiffe:") {
        let id = parse_spiffe_id(sub).map_err(|_| WorkloadError::Subject)?;
        // SPIFFE-ID §2: the ID of the trust domain itself names no workload.
        if id.path.is_empty() {
            return Err(WorkloadError::Subject);
        }
        (WorkloadKind::Spiffe, id.trust_domain.to_owned())
    } else if parse_service_account(sub).is_some() {
        match jwt.claim_str("iss") {
            Some(iss) if !iss.is_empty() => (WorkloadKind::Kubernetes, iss.to_owned()),
            _ => return Err(WorkloadError::MissingIssuer),
        }
    } else {
        return Err(WorkloadError::Subject);
    };
    Ok(UnverifiedWorkloadToken { jwt, kind, trust })
}

/// What a workload token is checked against: the keys of the trust source
/// its trust domain or issuer names, this server's audience, the time and
/// the longest lifetime accepted.
#[derive(Debug, Clone, Copy)]
pub struct WorkloadCheck<'a> {
    pub keys: &'a [PublicKey],
    /// This server's audience for the trust source (by default its issuer).
    pub audience: &'a str,
    /// Seconds since the Unix epoch.
    pub now: i64,
    /// The longest a token may live, from `iat` (when present) and from now.
    pub max_lifetime_secs: i64,
}

/// What a verified workload token establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadIdentity {
    pub kind: WorkloadKind,
    /// The SPIFFE trust domain, or the Kubernetes issuer.
    pub trust: String,
    /// The SPIFFE ID, or `system:serviceaccount:NAMESPACE:NAME`.
    pub subject: String,
    /// Kubernetes: `kubernetes.io.serviceaccount.uid`, when the token has it.
    pub service_account_uid: Option<String>,
    pub expires_at: i64,
}

impl UnverifiedWorkloadToken {
    pub fn kind(&self) -> WorkloadKind {
        self.kind
    }

    /// The SPIFFE trust domain (from `sub`), or the Kubernetes issuer (`iss`).
    pub fn trust(&self) -> &str {
        &self.trust
    }

    pub fn kid(&self) -> Option<&str> {
        self.jwt.kid()
    }

    /// Verifies the token with its trust source's keys.
    pub fn verify(self, check: &WorkloadCheck<'_>) -> Result<WorkloadIdentity, WorkloadError> {
        let jwt = &self.jwt;
        let alg = jwt.alg();
        // A `kid` names the one key to use (JWT-SVID §2.2); without one,
        // every key of the source that suits the algorithm is tried.
        let candidates: Vec<&PublicKey> = check
            .keys
            .iter()
            .filter(|k| jwt.kid().is_none_or(|kid| k.kid() == Some(kid)))
            .filter(|k| k.suits(alg))
            .collect();
        if candidates.is_empty() {
            return Err(WorkloadError::UnknownKey);
        }
        if !candidates.iter().any(|k| k.verify(jwt).is_ok()) {
            return Err(WorkloadError::Signature);
        }
        // WL-03 (JWT-SVID §3.2, the SPIFFE client-auth draft §3.1, 7523bis):
        // this server as the only audience. A token also valid elsewhere
        // could be replayed here by any of its other audiences.
        let audience_ok = match jwt.claims().get("aud") {
            Some(Value::String(aud)) => aud == check.audience,
            Some(Value::Array(auds)) => auds.len() == 1 && auds[0].as_str() == Some(check.audience),
            _ => false,
        };
        if !audience_ok {
            return Err(WorkloadError::Audience);
        }
        let time = |name: &str| match jwt.claims().get(name) {
            None => Ok(None),
            Some(_) => jwt.claim_time(name).map(Some).ok_or(WorkloadError::Times),
        };
        let skew = WORKLOAD_CLOCK_SKEW;
        // WL-04, WL-22, WL-26: `exp` is required (legacy secret-based
        // Kubernetes tokens never expire and are refused here).
        let exp = time("exp")?.ok_or(WorkloadError::MissingExpiry)?;
        let (nbf, iat) = (time("nbf")?, time("iat")?);
        if check.now >= exp.saturating_add(skew) {
            return Err(WorkloadError::Expired);
        }
        if [nbf, iat]
            .into_iter()
            .flatten()
            .any(|t| t > check.now.saturating_add(skew))
        {
            return Err(WorkloadError::NotYetValid);
        }
        let lifetime_from = iat.unwrap_or(check.now).min(check.now);
        if exp.saturating_sub(lifetime_from) > check.max_lifetime_secs.saturating_add(skew) {
            return Err(WorkloadError::TooLong);
        }
        let subject = jwt.claim_str("sub").unwrap_or_default().to_owned();
        let service_account_uid = match self.kind {
            WorkloadKind::Spiffe => None,
            WorkloadKind::Kubernetes => kubernetes_uid(jwt.claims(), &subject)?,
        };
        Ok(WorkloadIdentity {
            kind: self.kind,
            trust: self.trust,
            subject,
            service_account_uid,
            expires_at: exp,
        })
    }
}

/// The service account's uid from the `kubernetes.io` claims, which must
/// agree with `sub` where they name the namespace and account (WL-23).
fn kubernetes_uid(
    claims: &Map<String, Value>,
    subject: &str,
) -> Result<Option<String>, WorkloadError> {
    let Some(k8s) = claims.get("kubernetes.io") else {
        return Ok(None);
    };
    let (namespace, name) = parse_service_account(subject).ok_or(WorkloadError::Subject)?;
    let k8s = k8s.as_object().ok_or(WorkloadError::Subject)?;
    let agrees =
        |value: Option<&Value>, expected: &str| value.is_none_or(|v| v.as_str() == Some(expected));
    let account = k8s.get("serviceaccount").and_then(Value::as_object);
    if !agrees(k8s.get("namespace"), namespace)
        || !agrees(account.and_then(|a| a.get("name")), name)
    {
        return Err(WorkloadError::Subject);
    }
    match account.and_then(|a| a.get("uid")) {
        None => Ok(None),
        Some(Value::String(uid)) if !uid.is_empty() && uid.len() <= 128 => Ok(Some(uid.clone())),
        Some(_) => Err(WorkloadError::Subject),
    }
}

/// The JWT-SVID keys of a SPIFFE bundle (a JWK Set, SPIFFE Trust Domain and
/// Bundle §4), and a problem for each entry that cannot be used.
///
/// WL-06: only keys with `"use": "jwt-svid"` (and a `kid`) verify JWT-SVIDs;
/// `x509-svid` entries (CA certificates) are skipped silently, anything
/// else is a problem. Other members of the bundle (`spiffe_sequence`,
/// `spiffe_refresh_hint`) are ignored.
pub fn spiffe_bundle_keys(bundle: &Value) -> (Vec<PublicKey>, Vec<String>) {
    let Some(entries) = bundle.get("keys").and_then(Value::as_array) else {
        return (
            Vec::new(),
            vec!["must be a JSON object with a \"keys\" array (RFC 7517 §5)".into()],
        );
    };
    let mut keys = Vec::new();
    let mut problems = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let Some(members) = entry.as_object() else {
            problems.push(format!("keys[{i}] must be a JSON object"));
            continue;
        };
        match members.get("use").and_then(Value::as_str) {
            Some("x509-svid") => continue,
            Some("jwt-svid") => {}
            _ => {
                problems.push(format!(
                    "keys[{i}] has no \"use\": \"jwt-svid\"; a SPIFFE bundle marks the keys that sign JWT-SVIDs so (JWT-SVID §6.2)"
                ));
                continue;
            }
        }
        if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| members.contains_key(**m)) {
            problems.push(format!(
                "keys[{i}] carries the private member \"{member}\"; give public keys only"
            ));
            continue;
        }
        if !members.get("kid").is_some_and(Value::is_string) {
            problems.push(format!(
                "keys[{i}] has no \"kid\"; JWT-SVID keys are named by kid (JWT-SVID §2.2)"
            ));
            continue;
        }
        // `PublicKey::from_jwk` knows the `use` values of RFC 7517 only.
        let mut jwk = members.clone();
        jwk.insert("use".into(), Value::from("sig"));
        match PublicKey::from_jwk(&Value::Object(jwk)) {
            Ok(key) => keys.push(key),
            Err(e) => problems.push(format!("keys[{i}]: {e}")),
        }
    }
    if keys.is_empty() && problems.is_empty() {
        problems.push("holds no JWT-SVID key (\"use\": \"jwt-svid\")".into());
    }
    (keys, problems)
}

#[cfg(test)]
mod tests;
