//! Tests of DPoP proof verification (RFC 9449 §4.3) and `htu` normalization.
//! Proofs are signed here with `ring` over freshly generated keys.

use super::*;
use crate::jwk_thumbprint;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    RSA_PKCS1_SHA256, RSA_PSS_SHA256,
};
use serde_json::json;
use std::sync::OnceLock;

const NOW: i64 = 1_700_000_000;
const URL: &str = "https://as.example.com/token";
const TOKEN: &str = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";

enum Key {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair, Value),
    Ed(Ed25519KeyPair),
}

impl Key {
    fn ec() -> Self {
        let rng = SystemRandom::new();
        let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Key::Ec(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref(), &rng).unwrap(),
        )
    }

    /// One RSA key for the whole run: generating one takes a while.
    fn rsa() -> Self {
        static KEY: OnceLock<(Vec<u8>, Value)> = OnceLock::new();
        let (der, jwk) = KEY.get_or_init(|| {
            use rsa::pkcs8::EncodePrivateKey;
            use rsa::traits::PublicKeyParts;
            let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
            let jwk = json!({"kty": "RSA", "n": b64url(&key.n().to_bytes_be()),
                             "e": b64url(&key.e().to_bytes_be())});
            (key.to_pkcs8_der().unwrap().as_bytes().to_vec(), jwk)
        });
        Key::Rsa(RsaKeyPair::from_pkcs8(der).unwrap(), jwk.clone())
    }

    fn ed() -> Self {
        let der = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Key::Ed(Ed25519KeyPair::from_pkcs8(der.as_ref()).unwrap())
    }

    fn alg(&self) -> &'static str {
        match self {
            Key::Ec(_) => "ES256",
            Key::Rsa(..) => "RS256",
            Key::Ed(_) => "Ed25519",
        }
    }

    fn jwk(&self) -> Value {
        match self {
            Key::Ec(pair) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256",
                       "x": b64url(&point[1..33]), "y": b64url(&point[33..65])})
            }
            Key::Rsa(_, jwk) => jwk.clone(),
            Key::Ed(pair) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(pair.public_key().as_ref())})
            }
        }
    }

    fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Key::Ec(pair) => pair.sign(&rng, input).unwrap().as_ref().to_vec(),
            Key::Rsa(pair, _) => {
                let padding: &dyn ring::signature::RsaEncoding = if alg == "PS256" {
                    &RSA_PSS_SHA256
                } else {
                    &RSA_PKCS1_SHA256
                };
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(padding, &rng, input, &mut out).unwrap();
                out
            }
            Key::Ed(pair) => pair.sign(input).as_ref().to_vec(),
        }
    }
}

fn header(key: &Key) -> Value {
    json!({"typ": "dpop+jwt", "alg": key.alg(), "jwk": key.jwk()})
}

fn claims() -> Value {
    json!({"jti": "-BwC3ESc6acc2lTc", "htm": "POST", "htu": URL, "iat": NOW})
}

fn remove(object: &mut Value, member: &str) {
    object.as_object_mut().unwrap().remove(member);
}

fn sign(key: &Key, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let alg = header["alg"].as_str().unwrap_or_default();
    format!("{input}.{}", b64url(&key.sign(alg, input.as_bytes())))
}

fn expect(access_token: Option<&str>) -> DpopCheck<'_> {
    DpopCheck {
        method: "POST",
        url: URL,
        now: NOW,
        max_age_secs: 60,
        future_skew_secs: 5,
        access_token,
    }
}

/// Edits the header and claims of a valid proof made with `key`, then checks
/// the outcome: `Ok(())` for acceptance, or a fragment of the error message.
fn check_with(
    key: &Key,
    access_token: Option<&str>,
    edit: impl FnOnce(&mut Value, &mut Value),
    expected: Result<(), &str>,
) {
    let (mut h, mut c) = (header(key), claims());
    edit(&mut h, &mut c);
    let proof = sign(key, &h, &c);
    match (verify_dpop_proof(&proof, &expect(access_token)), expected) {
        (Ok(got), Ok(())) => {
            assert_eq!(got.jkt, jwk_thumbprint(&key.jwk()).unwrap());
            assert_eq!(Some(got.alg.as_str()), h["alg"].as_str());
            assert_eq!(Some(got.jti.as_str()), c["jti"].as_str());
        }
        (Err(e), Err(fragment)) => {
            let message = e.to_string();
            assert!(message.starts_with("DPoP proof: "), "{message}");
            assert!(
                message.contains(fragment),
                "{h} {c}: {message:?} lacks {fragment:?}"
            );
        }
        (got, want) => panic!("{h} {c}: got {got:?}, want {want:?}"),
    }
}

/// [`check_with`] for an ES256 proof without an access token.
fn check(edit: impl FnOnce(&mut Value, &mut Value), expected: Result<(), &str>) {
    check_with(&Key::ec(), None, edit, expected);
}

#[test]
fn valid_proofs_for_every_algorithm() {
    let ok = |key: &Key, alg: &str| {
        let mut h = header(key);
        h["alg"] = json!(alg);
        let proof = verify_dpop_proof(&sign(key, &h, &claims()), &expect(None)).unwrap();
        assert_eq!(
            proof,
            DpopProof {
                jkt: jwk_thumbprint(&key.jwk()).unwrap(),
                jti: "-BwC3ESc6acc2lTc".into(),
                iat: NOW,
                nonce: None,
                alg: alg.into(),
            }
        );
    };
    ok(&Key::ec(), "ES256");
    let rsa = Key::rsa();
    ok(&rsa, "RS256");
    ok(&rsa, "PS256");
    let ed = Key::ed();
    ok(&ed, "Ed25519");
    ok(&ed, "EdDSA");
}

#[test]
fn nonce_is_returned_for_the_caller_to_check() {
    let key = Key::ec();
    let mut c = claims();
    c["nonce"] = json!("eyJ7S_zG.eyJH0-Z.HX4w-7v");
    let proof = verify_dpop_proof(&sign(&key, &header(&key), &c), &expect(None)).unwrap();
    assert_eq!(proof.nonce.as_deref(), Some("eyJ7S_zG.eyJH0-Z.HX4w-7v"));
    check(
        |_, c| c["nonce"] = json!(7),
        Err("\"nonce\" claim must be a string"),
    );
}

// RFC 9449 §4.3 step 4, RFC 7515 §4.1.9: the media type, without parameters.
#[test]
fn typ_must_be_dpop_jwt() {
    for typ in [
        "dpop+jwt",
        "DPoP+JWT",
        "application/dpop+jwt",
        "Application/DPOP+jwt",
    ] {
        check(|h, _| h["typ"] = json!(typ), Ok(()));
    }
    for typ in [
        json!("JWT"),
        json!("at+jwt"),
        json!("application/jwt"),
        json!("dpop+jwt; x=1"),
        json!("xapplication/dpop+jwt"),
        json!(1),
    ] {
        check(|h, _| h["typ"] = typ, Err("typ must be \"dpop+jwt\""));
    }
    check(|h, _| remove(h, "typ"), Err("typ"));
}

// RFC 9449 §4.3 step 5: an asymmetric algorithm the server supports.
#[test]
fn alg_none_hmac_and_unsupported_algs_are_refused() {
    for alg in ["none", "HS256", "ES384", "RS512", "ES256K", "es256"] {
        check(|h, _| h["alg"] = json!(alg), Err("is not accepted"));
    }
    check(|h, _| remove(h, "alg"), Err("no \"alg\""));
    // An unsigned token, as an attacker would send it.
    let key = Key::ec();
    let mut h = header(&key);
    h["alg"] = json!("none");
    let unsigned = format!(
        "{}.{}.",
        b64url(h.to_string().as_bytes()),
        b64url(claims().to_string().as_bytes())
    );
    assert!(verify_dpop_proof(&unsigned, &expect(None)).is_err());
}

// RFC 9449 §4.3 steps 5–7: the header's public key.
#[test]
fn jwk_must_be_a_public_key_matching_alg() {
    check(|h, _| remove(h, "jwk"), Err("\"jwk\""));
    check(
        |h, _| h["jwk"] = json!("a key"),
        Err("must be a JSON object"),
    );
    for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
        check(
            |h, _| h["jwk"][member] = json!("AAAA"),
            Err(&format!("private member \"{member}\"")),
        );
    }
    check(
        |h, _| h["jwk"]["use"] = json!("enc"),
        Err("not a signature key"),
    );
    check(|h, _| h["jwk"]["crv"] = json!("P-384"), Err("P-256"));
    check(
        |h, _| h["jwk"] = Key::ed().jwk(),
        Err("needs a \"jwk\" with kty EC"),
    );
    check(
        |h, _| h["jwk"] = json!({"kty": "oct", "k": "AAAA"}),
        Err("private member \"k\""),
    );
    check(|h, _| h["jwk"] = json!({"kty": "oct"}), Err("kty EC"));
    check(
        |h, _| h["jwk"]["x"] = json!("not base64url!"),
        Err("base64url"),
    );
    // An RSA modulus under 2048 bits.
    let mut n = vec![0xffu8; 128];
    n[0] = 0xc1;
    let small = json!({"kty": "RSA", "n": b64url(&n), "e": "AQAB"});
    check_with(&Key::rsa(), None, |h, _| h["jwk"] = small, Err("2048 bits"));
    // The JWK's own "alg" restricts the key to that algorithm.
    check_with(
        &Key::rsa(),
        None,
        |h, _| {
            h["alg"] = json!("PS256");
            h["jwk"]["alg"] = json!("RS256");
        },
        Err("cannot verify PS256"),
    );
    check_with(
        &Key::ed(),
        None,
        |h, _| h["jwk"]["crv"] = json!("Ed448"),
        Err("Ed25519"),
    );
    check_with(
        &Key::ed(),
        None,
        |h, _| h["jwk"]["x"] = json!("AAAA"),
        Err("32 bytes"),
    );
    check_with(
        &Key::ed(),
        None,
        |h, _| h["jwk"]["alg"] = json!("EdDSA"),
        Err("cannot verify"),
    );
}

// RFC 9449 §4.3 step 6.
#[test]
fn signature_must_verify_with_the_header_jwk() {
    let (signer, other) = (Key::ec(), Key::ec());
    let mut h = header(&signer);
    h["jwk"] = other.jwk();
    let proof = sign(&signer, &h, &claims());
    let e = verify_dpop_proof(&proof, &expect(None)).unwrap_err();
    assert_eq!(e.to_string(), "DPoP proof: the signature does not verify");

    for key in [Key::ec(), Key::rsa(), Key::ed()] {
        let proof = sign(&key, &header(&key), &claims());
        let parts: Vec<&str> = proof.split('.').collect();
        let mut c = claims();
        c["jti"] = json!("another");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64url(c.to_string().as_bytes()),
            parts[2]
        );
        assert!(verify_dpop_proof(&proof, &expect(None)).is_ok());
        let e = verify_dpop_proof(&forged, &expect(None)).unwrap_err();
        assert!(e.0.contains("signature"), "{}: {e}", key.alg());
    }
}

// RFC 7515 §4.1.11: no critical extension is understood.
#[test]
fn crit_header_is_refused() {
    check(|h, _| h["crit"] = json!(["exp"]), Err("crit"));
}

// RFC 9449 §4.3 step 2: one well-formed JWS of bounded size.
#[test]
fn malformed_and_oversized_proofs_are_refused() {
    let key = Key::ec();
    let valid = sign(&key, &header(&key), &claims());
    let parts: Vec<&str> = valid.split('.').collect();
    let duplicated = format!(
        "{{\"typ\":\"dpop+jwt\",\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":{}}}",
        key.jwk()
    );
    for bad in [
        String::new(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{valid}.{}", parts[2]),
        format!("{valid},{valid}"),
        format!(
            "{}.{}.{}",
            b64url(duplicated.as_bytes()),
            parts[1],
            parts[2]
        ),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
    ] {
        assert!(verify_dpop_proof(&bad, &expect(None)).is_err(), "{bad}");
    }
    check(
        |_, c| c["pad"] = json!("x".repeat(8 * 1024)),
        Err("exceeds"),
    );
}

// RFC 9449 §4.2: jti, htm, htu and iat are required.
#[test]
fn required_claims() {
    for name in ["jti", "htm", "htu", "iat"] {
        check(
            |_, c| remove(c, name),
            Err(&format!("\"{name}\" claim is missing")),
        );
    }
    check(
        |_, c| c["jti"] = json!(42),
        Err("\"jti\" claim must be a string"),
    );
    check(
        |_, c| c["htm"] = json!(["POST"]),
        Err("\"htm\" claim must be a string"),
    );
    check(
        |_, c| c["htu"] = json!(null),
        Err("\"htu\" claim must be a string"),
    );
    check(
        |_, c| c["iat"] = json!(NOW.to_string()),
        Err("iat must be a number"),
    );
    check(|_, c| c["jti"] = json!(""), Err("jti must be 1 to 256"));
    check(|_, c| c["jti"] = json!("é".repeat(256)), Ok(()));
    check(
        |_, c| c["jti"] = json!("j".repeat(257)),
        Err("jti must be 1 to 256"),
    );
}

// RFC 9449 §4.3 step 8: the method, compared exactly.
#[test]
fn htm_must_match_the_method() {
    check(|_, c| c["htm"] = json!("GET"), Err("htm must be POST"));
    check(|_, c| c["htm"] = json!("post"), Err("htm must be POST"));
}

// RFC 9449 §4.3 step 9: htu, ignoring query and fragment, after normalization.
#[test]
fn htu_must_match_the_endpoint() {
    for same in [
        "https://as.example.com/token?client_id=c1",
        "https://as.example.com/token#frag",
        "HTTPS://AS.Example.COM/token",
        "https://as.example.com:443/token",
        "https://as.example.com/./token",
        "https://as.example.com/%74oken",
    ] {
        check(|_, c| c["htu"] = json!(same), Ok(()));
    }
    for other in [
        "https://as.example.com/token2",
        "https://as.example.com/Token",
        "https://as.example.com/token/",
        "https://as.example.com/",
        "https://as.example.com:8443/token",
        "http://as.example.com/token",
        "https://rs.example.com/token",
    ] {
        check(
            |_, c| c["htu"] = json!(other),
            Err("htu must be https://as.example.com/token"),
        );
    }
    for invalid in [
        "/token",
        "as.example.com/token",
        "https://user@as.example.com/token",
        "",
    ] {
        check(
            |_, c| c["htu"] = json!(invalid),
            Err("absolute http or https URI"),
        );
    }
}

// RFC 9449 §4.3 step 11: iat within the window the server allows.
#[test]
fn iat_must_be_recent() {
    check(|_, c| c["iat"] = json!(NOW - 60), Ok(()));
    check(|_, c| c["iat"] = json!(NOW + 5), Ok(()));
    check(|_, c| c["iat"] = json!(NOW as f64 + 0.5), Ok(()));
    check(|_, c| c["iat"] = json!(NOW - 61), Err("iat is too old"));
    check(
        |_, c| c["iat"] = json!(NOW + 6),
        Err("iat is in the future"),
    );
    check(|_, c| c["iat"] = json!(i64::MIN), Err("iat is too old"));
    check(|_, c| c["iat"] = json!(1e300), Err("iat is in the future"));
    check(
        |_, c| c["iat"] = json!(u64::MAX),
        Err("iat is in the future"),
    );
}

// RFC 9449 §4.3 step 12, §4.2: ath = base64url(SHA-256(access token)).
#[test]
fn ath_binds_the_access_token() {
    let ath = b64url(&Sha256::digest(TOKEN.as_bytes()));
    let with_token = |edit: &dyn Fn(&mut Value), expected| {
        check_with(&Key::ec(), Some(TOKEN), |_, c| edit(c), expected)
    };
    with_token(&|c| c["ath"] = json!(ath), Ok(()));
    with_token(&|_| {}, Err("\"ath\" claim is required"));
    with_token(
        &|c| c["ath"] = json!(b64url(&Sha256::digest(b"other"))),
        Err("ath does not match"),
    );
    with_token(
        &|c| c["ath"] = json!(format!("{ath}=")),
        Err("ath does not match"),
    );
    with_token(
        &|c| c["ath"] = json!(1),
        Err("\"ath\" claim must be a string"),
    );
    // Without an access token, ath is not the server's concern.
    check(|_, c| c["ath"] = json!("anything"), Ok(()));
    check(|_, c| c["ath"] = json!(1), Ok(()));
}

#[test]
fn check_debug_redacts_the_access_token() {
    let shown = format!("{:?}", expect(Some(TOKEN)));
    assert!(
        !shown.contains(TOKEN) && shown.contains("<redacted>"),
        "{shown}"
    );
}

/// RFC 3986 §6.2.2 (syntax-based) and §6.2.3 (scheme-based) normalization.
#[test]
fn normalize_htu_cases() {
    let check = |uri: &str, expected: Option<&str>| {
        assert_eq!(normalize_htu(uri).as_deref(), expected, "{uri}");
    };
    let same = |uri: &str| check(uri, Some(uri));
    same("https://as.example.com/token");
    same("http://localhost:8080/a/b");
    same("https://as.example.com/Path/With:Colons@And;Params=1,2");
    same("https://[::1]:8443/x");
    same("https://127.0.0.1/x");
    check(
        "HTTPS://AS.Example.COM/Token",
        Some("https://as.example.com/Token"),
    );
    check(
        "https://as.example.com:443/t",
        Some("https://as.example.com/t"),
    );
    check(
        "http://as.example.com:80/t",
        Some("http://as.example.com/t"),
    );
    check(
        "https://as.example.com:80/t",
        Some("https://as.example.com:80/t"),
    );
    check(
        "http://as.example.com:443/t",
        Some("http://as.example.com:443/t"),
    );
    check(
        "https://as.example.com:0443/t",
        Some("https://as.example.com/t"),
    );
    check("https://as.example.com", Some("https://as.example.com/"));
    check("https://as.example.com:", Some("https://as.example.com/"));
    check(
        "https://as.example.com:443",
        Some("https://as.example.com/"),
    );
    check(
        "https://as.example.com?x=1",
        Some("https://as.example.com/"),
    );
    check(
        "https://as.example.com/t?x=/../y#z",
        Some("https://as.example.com/t"),
    );
    check(
        "https://as.example.com/t#f?g",
        Some("https://as.example.com/t"),
    );
    check(
        "https://as.example.com/a/./b/../c",
        Some("https://as.example.com/a/c"),
    );
    check(
        "https://as.example.com/a/b/..",
        Some("https://as.example.com/a/"),
    );
    check(
        "https://as.example.com/../../a",
        Some("https://as.example.com/a"),
    );
    check(
        "https://as.example.com/%2e%2E/a",
        Some("https://as.example.com/a"),
    );
    check(
        "https://as.example.com/%7euser/%2fx%3a",
        Some("https://as.example.com/~user/%2Fx%3A"),
    );
    check("https://[FE80::1]/", Some("https://[fe80::1]/"));
    for invalid in [
        "",
        "/token",
        "as.example.com/token",
        "urn:ietf:params:oauth:token-type:jwt",
        "ftp://as.example.com/x",
        "https:/as.example.com/x",
        "https://",
        "https:///x",
        "https://:443/x",
        "https://user@as.example.com/x",
        "https://user:pw@as.example.com/x",
        "https://as.example.com:99999/x",
        "https://as.example.com:8a/x",
        "https://as.example.com:443:1/x",
        "https://as.example.com/a b",
        "https://as.example.com/a\nb",
        "https://as.example.com/é",
        "https://as.example.com/a\\b",
        "https://as.example.com/%zz",
        "https://as.example.com/%4",
        "https://as.example.com/%+1",
        "https://ex%41mple.com/",
        "https://exämple.com/",
        "https://[v1.x]/",
        "https://[]/",
        "https://[::1]x/",
        " https://as.example.com/",
    ] {
        check(invalid, None);
    }
}
