//! Software statements (RFC 7591 §2.3): a JWT, signed by a party the server
//! trusts, that vouches for client metadata. Parsing, verification and the
//! merge of its claims over the request's JSON members, as pure functions.
//!
//! A statement is decided in three steps, so that the caller can find the
//! issuer's keys in between (possibly over the network, which this crate
//! never touches):
//!
//! 1. [`parse_software_statement`]: a compact JWS with an `iss`, or
//!    `invalid_software_statement`.
//! 2. The caller looks the `iss` up among its trusted issuers. An issuer it
//!    does not trust gets `unapproved_software_statement` (RFC 7591 §3.2.2):
//!    its signature cannot even be checked, since only trusted issuers have
//!    keys here.
//! 3. [`UnverifiedStatement::verify`] with that issuer's keys: algorithm,
//!    key, signature, `exp` / `nbf` / `iat`, `aud`; any failure is
//!    `invalid_software_statement`.
//!
//! The verified [`SoftwareStatement`] then validates the request with its
//! claims taking precedence over the plain JSON members, and is stored
//! unmodified so that it can be echoed (RFC 7591 §3.2.1). What this module
//! deliberately does not do: decide which issuers are trusted, which
//! organization or profile a statement binds to, or fetch keys.

use charter_jose::{Jwt, PublicKey};
use serde_json::{Map, Value};

use crate::metadata::ClientMetadata;
use crate::validate::{validate_registration, validate_update, UpdateRequest};
use crate::{Error, ErrorCode};

/// How far the issuer's clock and ours may disagree, in seconds, when
/// checking `exp`, `nbf` and `iat`.
pub const CLOCK_SKEW: i64 = 60;

/// Claims about the JWT itself (RFC 7519 §4.1) and members only the server
/// assigns (RFC 7591 §3.2.1, RFC 7592 §2.2). They are never merged into the
/// metadata: a statement describes software, it never chooses a client's
/// identifier or credentials (RFC 9700 §2.6), and a nested statement means
/// nothing.
const NOT_METADATA: [&str; 14] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "software_statement",
    "client_id",
    "client_secret",
    "client_id_issued_at",
    "client_secret_expires_at",
    "registration_access_token",
    "registration_client_uri",
];

fn invalid(rule: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorCode::InvalidSoftwareStatement,
        format!("software_statement: {rule}"),
    )
}

/// A software statement that is a well-formed compact JWS with an `iss`,
/// whose signature has not been checked yet: nothing in it may be trusted
/// except as a key to look the issuer up with.
#[derive(Debug, Clone)]
pub struct UnverifiedStatement {
    raw: String,
    jwt: Jwt,
}

/// The `software_statement` member of a request, parsed but not verified;
/// `None` when the member is absent (or `null`, RFC 7592 §2.2).
///
/// RFC 7591 §2.3 and §3.2.2: a value that is not a JWS (plain JSON, an
/// unsigned `alg: none` token, an HMAC token no third party could have
/// made) or that has no `iss` is `invalid_software_statement`.
pub fn parse_software_statement(
    body: &Map<String, Value>,
) -> Result<Option<UnverifiedStatement>, Error> {
    match body.get("software_statement") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => parse(value).map(Some),
    }
}

pub(crate) fn parse(value: &Value) -> Result<UnverifiedStatement, Error> {
    let Some(raw) = value.as_str() else {
        return Err(invalid(
            "must be a signed JWT in compact serialization (RFC 7591 §2.3)",
        ));
    };
    // Strict parsing: three base64url parts, JSON objects without repeated
    // members, an asymmetric algorithm; `none` and HMAC are refused here.
    let jwt = charter_jose::decode(raw).map_err(|e| {
        invalid(format!(
            "must be a signed JWT in compact serialization (RFC 7591 §2.3): {e}"
        ))
    })?;
    match jwt.claims().get("iss") {
        Some(Value::String(iss)) if !iss.is_empty() => {}
        Some(_) => return Err(invalid("\"iss\" must be a non-empty string")),
        None => {
            return Err(invalid(
                "has no \"iss\" claim naming its issuer (RFC 7591 §2.3)",
            ))
        }
    }
    Ok(UnverifiedStatement {
        raw: raw.to_owned(),
        jwt,
    })
}

/// What a statement is verified against: the keys and algorithms of the
/// trusted issuer its `iss` names, this server's issuer identifier (for
/// `aud`), and the time.
#[derive(Debug, Clone, Copy)]
pub struct StatementCheck<'a> {
    pub keys: &'a [PublicKey],
    /// The algorithms accepted from this issuer.
    pub algorithms: &'a [&'a str],
    /// This server's issuer identifier.
    pub audience: &'a str,
    /// Seconds since the Unix epoch.
    pub now: i64,
}

impl UnverifiedStatement {
    /// The `iss` claim (unverified: use it only to look the issuer up).
    pub fn issuer(&self) -> &str {
        self.jwt.claim_str("iss").unwrap_or_default()
    }

    /// The header's `kid`, if any.
    pub fn kid(&self) -> Option<&str> {
        self.jwt.kid()
    }

    /// The statement exactly as presented.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// Verifies the statement with the keys of the issuer its `iss` names.
    /// Every failure is `invalid_software_statement` (RFC 7591 §3.2.2).
    pub fn verify(self, check: &StatementCheck<'_>) -> Result<SoftwareStatement, Error> {
        let jwt = &self.jwt;
        let alg = jwt.alg();
        if !check.algorithms.contains(&alg) {
            return Err(invalid(format!(
                "alg {alg:?} is not accepted from this issuer; it signs with {}",
                check.algorithms.join(", ")
            )));
        }
        // A `kid` names the one key to use (RFC 7515 §4.1.4); without one,
        // every key of the issuer that suits the algorithm is tried.
        let candidates: Vec<&PublicKey> = check
            .keys
            .iter()
            .filter(|k| jwt.kid().is_none_or(|kid| k.kid() == Some(kid)))
            .filter(|k| k.suits(alg))
            .collect();
        if candidates.is_empty() {
            return Err(invalid(match jwt.kid() {
                Some(kid) => format!("the issuer has no {alg} key with kid {kid:?}"),
                None => format!("the issuer has no key for {alg}"),
            }));
        }
        if !candidates.iter().any(|k| k.verify(jwt).is_ok()) {
            return Err(invalid(
                "the signature does not verify with the issuer's keys",
            ));
        }
        let time = |name: &str| match jwt.claims().get(name) {
            None => Ok(None),
            Some(_) => jwt.claim_time(name).map(Some).ok_or_else(|| {
                invalid(format!(
                    "\"{name}\" must be a NumericDate (seconds since 1970, RFC 7519 §2)"
                ))
            }),
        };
        if time("exp")?.is_some_and(|exp| check.now >= exp.saturating_add(CLOCK_SKEW)) {
            return Err(invalid("has expired (\"exp\" is past)"));
        }
        if time("nbf")?.is_some_and(|nbf| nbf > check.now + CLOCK_SKEW) {
            return Err(invalid("is not valid yet (\"nbf\" is in the future)"));
        }
        if time("iat")?.is_some_and(|iat| iat > check.now + CLOCK_SKEW) {
            return Err(invalid("was issued in the future (\"iat\")"));
        }
        // RFC 7519 §4.1.3: a JWT whose `aud` does not name the recipient
        // must be rejected; statements without `aud` are meant for any server.
        let named = match jwt.claims().get("aud") {
            None => true,
            Some(Value::String(aud)) => aud == check.audience,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(check.audience)),
            Some(_) => false,
        };
        if !named {
            return Err(invalid("\"aud\" does not name this server's issuer"));
        }
        Ok(self.into_verified())
    }

    /// Accepts a statement without checking it again, because it is byte for
    /// byte the statement this server verified and stored with the client
    /// earlier. RFC 7592 §2.2 makes a client send back every member it was
    /// given, this one included; a statement that has since expired must not
    /// lock the client out of updating its registration.
    /// Anything else comes back unchanged, to be verified.
    pub fn into_previously_verified(self, stored: &str) -> Result<SoftwareStatement, Self> {
        if self.raw == stored {
            Ok(self.into_verified())
        } else {
            Err(self)
        }
    }

    fn into_verified(self) -> SoftwareStatement {
        let issuer = self.issuer().to_owned();
        SoftwareStatement {
            raw: self.raw,
            issuer,
            claims: self.jwt.into_claims(),
        }
    }
}

/// A software statement whose signature, issuer and times were verified.
#[derive(Debug, Clone)]
pub struct SoftwareStatement {
    raw: String,
    issuer: String,
    claims: Map<String, Value>,
}

impl SoftwareStatement {
    /// The statement exactly as presented: stored and echoed unmodified
    /// (RFC 7591 §3.2.1).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The issuer (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `software_id` the issuer vouches for, if any.
    pub fn software_id(&self) -> Option<&str> {
        self.claims.get("software_id").and_then(Value::as_str)
    }

    /// The statement's provenance in one line for the audit log.
    pub fn audit_reason(&self) -> String {
        format!(
            "software_statement iss={:?} software_id={:?}",
            self.issuer,
            self.software_id().unwrap_or("")
        )
    }

    /// The request's members with the statement's claims merged over them:
    /// "the values in the software statement take precedence" (RFC 7591
    /// §2.3), so the usual validation applies to what will be registered.
    /// The statement itself is not among the members.
    pub fn merge_over(&self, body: &Map<String, Value>) -> Map<String, Value> {
        let mut merged = body.clone();
        merged.remove("software_statement");
        for (name, value) in &self.claims {
            if !NOT_METADATA.contains(&name.as_str()) {
                merged.insert(name.clone(), value.clone());
            }
        }
        merged
    }

    /// [`validate_registration`] of the merged request; the metadata keeps
    /// the statement, unmodified, to be stored and echoed.
    pub fn validate_registration(
        &self,
        body: &Map<String, Value>,
    ) -> Result<ClientMetadata, Error> {
        let mut metadata = validate_registration(&self.merge_over(body))?;
        metadata.software_statement = Some(self.raw.clone());
        Ok(metadata)
    }

    /// [`validate_update`] of the merged request. `client_id`,
    /// `client_secret` and the members a client must not send are read from
    /// the JSON members only, since a statement never carries them.
    pub fn validate_update(
        &self,
        body: &Map<String, Value>,
        client_id: &str,
    ) -> Result<UpdateRequest, Error> {
        let mut update = validate_update(&self.merge_over(body), client_id)?;
        update.metadata.software_statement = Some(self.raw.clone());
        Ok(update)
    }
}

#[cfg(test)]
mod tests;
