//! Verification of DPoP proofs (RFC 9449 §4.3): the `DPoP` header a client
//! sends to prove that it holds the private key its tokens are bound to.
//!
//! [`verify_dpop_proof`] checks one proof against what the server expects at
//! an endpoint (method, URL, time window and, at a protected resource, the
//! access token) and returns the key's RFC 7638 thumbprint (`jkt`), the
//! `jti` and the optional `nonce`. It deliberately does not remember `jti`
//! values, issue or compare nonces, or compare `jkt` with a token's
//! `cnf.jkt`: those need state or a token and belong to the caller. Nor does
//! it pick one proof out of several `DPoP` headers; the caller refuses that
//! (RFC 9449 §4.3 step 1).
//!
//! [`normalize_htu`] implements the URI comparison RFC 9449 §4.3 recommends
//! (RFC 3986 §6.2.2 and §6.2.3), without a URL library: the rules are few and
//! a strict hand-written parser refuses rather than guesses.

use ring::signature;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fmt;

use crate::client_jwks::PRIVATE_MEMBERS;
use crate::jwt::decode_with_algs;
use crate::{b64url, b64url_decode, jwk_thumbprint, Jwt, PublicKey};

/// The algorithms a DPoP proof may be signed with, for discovery's
/// `dpop_signing_alg_values_supported` (RFC 9449 §5.1). All are asymmetric,
/// as RFC 9449 §4.2 requires; `Ed25519` is the fully-specified name of
/// `EdDSA` over Ed25519 (RFC 9864 §2.2), and `EdDSA` is accepted with
/// Ed25519 keys only.
pub const DPOP_SIGNING_ALGS: &[&str] = &["ES256", "PS256", "RS256", "Ed25519", "EdDSA"];

/// The longest `jti` accepted. RFC 9449 §4.2 asks for at least 96 bits of
/// randomness; the bound keeps a replay cache's entries small.
const MAX_JTI_CHARS: usize = 256;

/// What the server expects of a proof at one endpoint.
#[derive(Clone, Copy)]
pub struct DpopCheck<'a> {
    /// The HTTP method of the request, e.g. `"POST"`.
    pub method: &'a str,
    /// The endpoint's absolute URL as the server publishes it (no query).
    pub url: &'a str,
    /// The current time, in Unix seconds.
    pub now: i64,
    /// How old `iat` may be, in seconds.
    pub max_age_secs: i64,
    /// How far in the future `iat` may be, in seconds (clock skew).
    pub future_skew_secs: i64,
    /// At a protected resource, the access token presented with the proof:
    /// `ath` is then required and must be its hash (RFC 9449 §4.3 step 12).
    pub access_token: Option<&'a str>,
}

impl fmt::Debug for DpopCheck<'_> {
    // The access token is a bearer credential until its binding is checked,
    // so it never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopCheck")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("now", &self.now)
            .field("max_age_secs", &self.max_age_secs)
            .field("future_skew_secs", &self.future_skew_secs)
            .field("access_token", &self.access_token.map(|_| "<redacted>"))
            .finish()
    }
}

/// What a verified proof establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopProof {
    /// RFC 7638 SHA-256 thumbprint of the proof's `jwk` (RFC 9449 §6.1).
    pub jkt: String,
    /// The proof's unique identifier, for the caller's replay check.
    pub jti: String,
    /// When the client made the proof, in Unix seconds.
    pub iat: i64,
    /// The server-provided nonce the proof carries, for the caller to check
    /// (RFC 9449 §8, §9).
    pub nonce: Option<String>,
    /// The signature algorithm, one of [`DPOP_SIGNING_ALGS`].
    pub alg: String,
}

/// Why a proof was refused (`invalid_dpop_proof`, RFC 9449 §5). The message
/// is safe to return to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DPoP proof: {0}")]
pub struct DpopError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, DpopError> {
    Err(DpopError(message.into()))
}

/// Verifies one DPoP proof JWT against `check` (RFC 9449 §4.3).
///
/// The cheap structural checks and the claim checks run before the
/// signature is verified, so a malformed or misdirected proof costs no
/// public-key operation.
pub fn verify_dpop_proof(proof: &str, check: &DpopCheck<'_>) -> Result<DpopProof, DpopError> {
    // Steps 2–5: one compact JWS of bounded size (MAX_JWT_BYTES), no
    // repeated members, an asymmetric alg from our list, no `crit`.
    let jwt = decode_with_algs(proof, DPOP_SIGNING_ALGS).map_err(|e| DpopError(e.0))?;
    let alg = jwt.alg().to_owned();
    // Step 4: explicit typing (RFC 8725 §3.11), so no other JWT the client
    // signs with the same key can pass for a proof.
    if !jwt.typ().is_some_and(is_dpop_typ) {
        return fail("typ must be \"dpop+jwt\" (RFC 9449 §4.2)");
    }
    let Some(jwk) = jwt.header().get("jwk") else {
        return fail("the header must carry the public key as \"jwk\" (RFC 9449 §4.2)");
    };
    let Some(jwk_members) = jwk.as_object() else {
        return fail("\"jwk\" must be a JSON object");
    };
    // Step 7: a private key in the header is refused rather than ignored: a
    // client that publishes its private key has no proof of possession left.
    if let Some(member) = PRIVATE_MEMBERS
        .iter()
        .find(|m| jwk_members.contains_key(**m))
    {
        return fail(format!(
            "\"jwk\" must be a public key, but it carries the private member \"{member}\""
        ));
    }
    let expected_kty = match alg.as_str() {
        "ES256" => "EC",
        "Ed25519" | "EdDSA" => "OKP",
        _ => "RSA",
    };
    if jwk_members.get("kty").and_then(Value::as_str) != Some(expected_kty) {
        return fail(format!("alg {alg} needs a \"jwk\" with kty {expected_kty}"));
    }
    let jkt = jwk_thumbprint(jwk).map_err(|e| DpopError(e.0))?;

    let claims = check_claims(jwt.claims(), check)?;

    // Step 6: the signature verifies with the key in the header.
    match alg.as_str() {
        "Ed25519" | "EdDSA" => verify_ed25519(&jwt, jwk_members)?,
        _ => {
            let key = PublicKey::from_jwk(jwk).map_err(|e| DpopError(format!("\"jwk\": {e}")))?;
            if !key.suits(&alg) {
                return fail(format!("\"jwk\" cannot verify {alg} signatures"));
            }
            key.verify(&jwt).map_err(|e| DpopError(e.0))?;
        }
    }
    Ok(DpopProof {
        jkt,
        jti: claims.jti,
        iat: claims.iat,
        nonce: claims.nonce,
        alg,
    })
}

/// RFC 7515 §4.1.9: `typ` is a media type, compared case-insensitively, and
/// its "application/" prefix may be omitted.
fn is_dpop_typ(typ: &str) -> bool {
    let subtype = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    subtype.eq_ignore_ascii_case("dpop+jwt")
}

struct Claims {
    jti: String,
    iat: i64,
    nonce: Option<String>,
}

/// Steps 8–12 of RFC 9449 §4.3 (the nonce in step 10 is the caller's).
fn check_claims(claims: &Map<String, Value>, check: &DpopCheck<'_>) -> Result<Claims, DpopError> {
    let string = |name: &str| -> Result<&str, DpopError> {
        match claims.get(name) {
            None => fail(format!("the \"{name}\" claim is missing")),
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(_) => fail(format!("the \"{name}\" claim must be a string")),
        }
    };
    let jti = string("jti")?;
    if jti.is_empty() || jti.chars().count() > MAX_JTI_CHARS {
        return fail(format!("jti must be 1 to {MAX_JTI_CHARS} characters"));
    }
    // Step 8: the method is compared exactly; RFC 9110 §9.1 makes it
    // case-sensitive.
    if string("htm")? != check.method {
        return fail(format!("htm must be {}", check.method));
    }
    // Step 9: the URI, ignoring query and fragment, after normalization.
    let htu = string("htu")?;
    let Some(expected) = normalize_htu(check.url) else {
        return fail("the endpoint's URL cannot be compared with htu");
    };
    match normalize_htu(htu) {
        Some(actual) if actual == expected => {}
        Some(_) => return fail(format!("htu must be {expected}")),
        None => return fail("htu must be an absolute http or https URI"),
    }
    // Step 11: iat within the acceptance window. A NumericDate may have a
    // fraction (RFC 7519 §2); it is rounded down.
    let iat = match claims.get("iat") {
        None => return fail("the \"iat\" claim is missing"),
        Some(value) => match value.as_i64() {
            Some(iat) => iat,
            None => match value.as_f64().filter(|f| f.is_finite()) {
                Some(f) => f.floor() as i64,
                None => return fail("iat must be a number of seconds (RFC 7519 §2)"),
            },
        },
    };
    if iat < check.now.saturating_sub(check.max_age_secs) {
        return fail(format!(
            "iat is too old; proofs are accepted for {} seconds",
            check.max_age_secs
        ));
    }
    if iat > check.now.saturating_add(check.future_skew_secs) {
        return fail("iat is in the future");
    }
    // Step 12: with an access token, `ath` binds the proof to it. The hash
    // of a token is not secret, so a plain comparison is fine.
    if let Some(token) = check.access_token {
        let ath = match claims.get("ath") {
            None => {
                return fail("the \"ath\" claim is required with an access token (RFC 9449 §4.2)")
            }
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return fail("the \"ath\" claim must be a string"),
        };
        if ath != b64url(&Sha256::digest(token.as_bytes())) {
            return fail("ath does not match the access token");
        }
    }
    let nonce = match claims.get("nonce") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return fail("the \"nonce\" claim must be a string"),
    };
    Ok(Claims {
        jti: jti.to_owned(),
        iat,
        nonce,
    })
}

/// EdDSA over Ed25519 (RFC 8037 §3.1, RFC 9864 §2.2), which [`PublicKey`]
/// does not cover. The JWK rules mirror [`PublicKey::from_jwk`].
fn verify_ed25519(jwt: &Jwt, jwk: &Map<String, Value>) -> Result<(), DpopError> {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    if member("crv") != Some("Ed25519") {
        return fail(format!("alg {} needs an Ed25519 \"jwk\"", jwt.alg()));
    }
    if member("use").is_some_and(|u| u != "sig") {
        return fail("\"jwk\" is not a signature key (\"use\" is not \"sig\")");
    }
    if member("alg").is_some_and(|a| a != jwt.alg()) {
        return fail(format!("\"jwk\" cannot verify {} signatures", jwt.alg()));
    }
    let Some(x) = member("x")
        .and_then(b64url_decode)
        .filter(|x| x.len() == 32)
    else {
        return fail("\"jwk\": an Ed25519 key's \"x\" must be 32 bytes of base64url");
    };
    if jwt.verify_raw(&signature::ED25519, &x) {
        Ok(())
    } else {
        fail("the signature does not verify")
    }
}

/// The `htu` comparison form (RFC 9449 §4.3 step 9): the scheme and host
/// lowercased (RFC 3986 §6.2.2.1), percent-encoding normalized and dot
/// segments removed from the path (§6.2.2.2, §6.2.2.3), an empty or default
/// port dropped and an empty path made "/" (§6.2.3), the query and fragment
/// dropped.
///
/// `None` unless `uri` is an absolute `http` or `https` URI. This parser is
/// deliberately narrower than RFC 3986: it also refuses userinfo (deprecated
/// for http URIs, RFC 9110 §4.2.4), percent-encoded or non-ASCII hosts, and
/// any character a path may not hold, since none of them can appear in a
/// URL the server publishes.
pub fn normalize_htu(uri: &str) -> Option<String> {
    let uri = uri.find(['?', '#']).map_or(uri, |end| &uri[..end]);
    let (scheme, rest) = uri.split_once("://")?;
    let (scheme, default_port) = if scheme.eq_ignore_ascii_case("https") {
        ("https", 443)
    } else if scheme.eq_ignore_ascii_case("http") {
        ("http", 80)
    } else {
        return None;
    };
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let (host, port) = split_host_port(authority)?;
    let port = match port {
        Some(port) if port != default_port => format!(":{port}"),
        _ => String::new(),
    };
    let path = normalize_path(path)?;
    Some(format!("{scheme}://{host}{port}{path}"))
}

/// The lowercased host and the port, if one is given and not empty.
fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(literal) = authority.strip_prefix('[') {
        // An IPv6 literal (RFC 3986 §3.2.2); IPvFuture is refused.
        let (address, after) = literal.split_once(']')?;
        let valid = !address.is_empty()
            && address
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !valid {
            return None;
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (format!("[{address}]"), port)
    } else {
        // A reg-name or IPv4 address, limited to the unreserved characters:
        // "@" (userinfo), "%" and sub-delims are refused.
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if host.is_empty() || !host.bytes().all(is_unreserved) {
            return None;
        }
        (host.to_owned(), port)
    };
    let port = match port {
        None | Some("") => None,
        Some(digits) if digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit()) => {
            Some(digits.parse::<u16>().ok()?)
        }
        Some(_) => return None,
    };
    Some((host.to_ascii_lowercase(), port))
}

/// RFC 3986 §2.3.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The path with percent-encoding normalized (unreserved characters decoded,
/// hex digits uppercased) and dot segments removed; `None` if it holds a
/// character no path may hold (RFC 3986 §3.3) or a broken escape.
fn normalize_path(path: &str) -> Option<String> {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len() + 1);
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let high = hex(*bytes.get(i + 1)?)?;
            let low = hex(*bytes.get(i + 2)?)?;
            let decoded = u8::try_from(high * 16 + low).ok()?;
            if is_unreserved(decoded) {
                out.push(char::from(decoded));
            } else {
                out.push_str(&format!("%{decoded:02X}"));
            }
            i += 3;
            continue;
        }
        let allowed = is_unreserved(b)
            || matches!(
                b,
                b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
            )
            || matches!(b, b':' | b'@' | b'/');
        if !allowed {
            return None;
        }
        out.push(char::from(b));
        i += 1;
    }
    let path = remove_dot_segments(&out);
    Some(if path.is_empty() {
        "/".to_owned()
    } else {
        path
    })
}

/// RFC 3986 §5.2.4, for a path that is empty or starts with "/".
fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut output: Vec<&str> = Vec::new();
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest;
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") {
            input = &input[3..];
            output.pop();
        } else if input == "/.." {
            input = "/";
            output.pop();
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push(&input[..end]);
            input = &input[end..];
        }
    }
    output.concat()
}

#[cfg(test)]
mod tests;
