//! Bearer credentials: generation from the OS CSPRNG, keyed hashing for
//! storage, and constant-time comparison.
//!
//! Every credential is 256 random bits, so a fast keyed hash (HMAC-SHA-256)
//! is the right storage form: nothing can be brute-forced, and a hot path
//! pays microseconds, not the tens of milliseconds of a password hash. The
//! prefix names the kind of credential so that a leaked one is recognizable
//! by secret scanners and never mistaken for another kind.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use subtle::ConstantTimeEq;

use charter_store::TokenHash;

/// The kinds of credential the server issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    ClientSecret,
    RegistrationAccessToken,
    InitialAccessToken,
    AdminToken,
    /// RFC 6749 §4.1.2.
    AuthorizationCode,
    /// RFC 6749 §1.5.
    RefreshToken,
    /// A signed-in browser's session cookie.
    Session,
    /// The cookie that binds a pending authorization request to a browser.
    Browser,
    /// Not issued: the domain of the anti-CSRF tokens of the login and
    /// consent forms, derived from the interaction and the browser cookie.
    FormToken,
    /// Not issued: the domain of DPoP server nonces (RFC 9449 §8).
    DpopNonce,
}

impl Credential {
    fn prefix(self) -> &'static str {
        match self {
            Credential::ClientSecret => "chs_",
            Credential::RegistrationAccessToken => "chr_",
            Credential::InitialAccessToken => "chi_",
            Credential::AdminToken => "cha_",
            Credential::AuthorizationCode => "chc_",
            Credential::RefreshToken => "chrt_",
            Credential::Session => "chss_",
            Credential::Browser => "chb_",
            Credential::FormToken => "chft_",
            Credential::DpopNonce => "chdn_",
        }
    }
}

/// Random bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], crate::Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| crate::Error::Internal(format!("OS random source failed: {e}")))?;
    Ok(bytes)
}

/// A new credential of `kind`: its prefix and 256 random bits, base64url.
pub fn generate(kind: Credential) -> Result<Secret, crate::Error> {
    Ok(Secret(format!(
        "{}{}",
        kind.prefix(),
        URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)
    )))
}

/// An unguessable identifier: 128 random bits in the URL-safe base64 alphabet.
pub fn random_id() -> Result<String, crate::Error> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<16>()?))
}

/// A credential in clear, shown once to its holder. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Keyed hashing of credentials (HMAC-SHA-256 with the server's hash key).
#[derive(Clone)]
pub struct Hasher {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hasher([redacted])")
    }
}

impl Hasher {
    pub fn new(key: &[u8]) -> Self {
        // HMAC accepts keys of any length; this cannot fail.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        Self { mac }
    }

    /// The storage form of a credential. The kind is mixed in, so a hash of
    /// one kind never matches a lookup of another.
    pub fn hash(&self, kind: Credential, presented: &str) -> TokenHash {
        let mut mac = self.mac.clone();
        mac.update(kind.prefix().as_bytes());
        mac.update(&[0]);
        mac.update(presented.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Whether `presented` hashes to `stored`, compared in constant time.
    pub fn verify(&self, kind: Credential, presented: &str, stored: &TokenHash) -> bool {
        self.hash(kind, presented).ct_eq(stored).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_long_random_and_prefixed() {
        let a = generate(Credential::ClientSecret).unwrap();
        let b = generate(Credential::ClientSecret).unwrap();
        assert_ne!(a, b);
        assert!(a.expose().starts_with("chs_"));
        // 32 bytes of randomness = 43 base64url characters.
        assert_eq!(a.expose().len(), 4 + 43);
        assert!(!format!("{a:?}").contains(&a.expose()[4..]));
        let id = random_id().unwrap();
        assert_eq!(id.len(), 22);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[test]
    fn hashes_are_keyed_and_kind_separated() {
        let h = Hasher::new(b"k1");
        let stored = h.hash(Credential::InitialAccessToken, "t");
        assert!(h.verify(Credential::InitialAccessToken, "t", &stored));
        assert!(!h.verify(Credential::RegistrationAccessToken, "t", &stored));
        assert!(!h.verify(Credential::InitialAccessToken, "u", &stored));
        assert!(!Hasher::new(b"k2").verify(Credential::InitialAccessToken, "t", &stored));
    }
}
