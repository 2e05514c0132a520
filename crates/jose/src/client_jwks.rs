//! Validation of a JWK Set a client registers as `jwks` (RFC 7591 §2,
//! OIDC DCR §2). A client's key set must hold public keys only: the server
//! refuses private members and symmetric keys rather than silently storing a
//! secret it was never meant to see.

use serde_json::{Map, Value};
use std::collections::HashSet;

/// Why a client's JWK Set was refused; the message names the key and member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JwksError(pub String);

/// The most keys a client may register; more is never needed and only costs
/// verification time.
pub const MAX_KEYS: usize = 16;

/// Members that only a private or symmetric JWK carries (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
pub(crate) const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Checks that `jwks` is a JSON object holding a non-empty `keys` array of
/// well-formed public signature or encryption keys.
pub fn validate_client_jwks(jwks: &Value) -> Result<(), JwksError> {
    let err = |m: String| Err(JwksError(m));
    let Some(set) = jwks.as_object() else {
        return err("must be a JSON object with a \"keys\" array (RFC 7517 §5)".into());
    };
    let Some(keys) = set.get("keys") else {
        return err("is missing the \"keys\" member (RFC 7517 §5)".into());
    };
    let Some(keys) = keys.as_array() else {
        return err("\"keys\" must be an array".into());
    };
    if keys.is_empty() {
        return err("\"keys\" must not be empty".into());
    }
    if keys.len() > MAX_KEYS {
        return err(format!(
            "holds {} keys; at most {MAX_KEYS} are accepted",
            keys.len()
        ));
    }
    // OIDC DCR §2: when a set holds both signature and encryption keys,
    // every key must say which it is.
    let uses: HashSet<&str> = keys
        .iter()
        .filter_map(|k| k.get("use").and_then(Value::as_str))
        .collect();
    if uses.len() > 1 && keys.iter().any(|k| k.get("use").is_none()) {
        return err("mixes signature and encryption keys, so every key needs a \"use\" member (OIDC DCR section 2)".into());
    }
    let mut kids = HashSet::new();
    for (i, key) in keys.iter().enumerate() {
        let Some(key) = key.as_object() else {
            return err(format!("keys[{i}] must be a JSON object"));
        };
        validate_key(key).map_err(|m| JwksError(format!("keys[{i}] {m}")))?;
        if let Some(kid) = key.get("kid").and_then(Value::as_str) {
            if !kids.insert(kid) {
                return err(format!(
                    "keys[{i}] repeats kid \"{kid}\"; key ids must be unique so a signature names one key"
                ));
            }
        }
    }
    Ok(())
}

fn validate_key(key: &Map<String, Value>) -> Result<(), String> {
    for member in PRIVATE_MEMBERS {
        if key.contains_key(member) {
            return Err(format!(
                "carries the private or symmetric member \"{member}\"; register public keys only"
            ));
        }
    }
    for member in ["kid", "use", "alg"] {
        if let Some(v) = key.get(member) {
            if !v.is_string() {
                return Err(format!("member \"{member}\" must be a string"));
            }
        }
    }
    if let Some(usage) = key.get("use").and_then(Value::as_str) {
        if usage != "sig" && usage != "enc" {
            return Err(format!(
                "has \"use\":\"{usage}\"; only \"sig\" and \"enc\" are defined"
            ));
        }
    }
    if let Some(ops) = key.get("key_ops") {
        let valid = ops
            .as_array()
            .is_some_and(|ops| ops.iter().all(Value::is_string));
        if !valid {
            return Err("member \"key_ops\" must be an array of strings".into());
        }
    }
    match key.get("kty").and_then(Value::as_str) {
        None => Err("is missing \"kty\" (RFC 7517 §4.1)".into()),
        Some("RSA") => validate_rsa(key),
        Some("EC") => validate_ec(key),
        Some("OKP") => validate_okp(key),
        Some("oct") => Err("is a symmetric (\"oct\") key; register public keys only".into()),
        Some(other) => Err(format!(
            "has unsupported kty \"{other}\"; use RSA, EC or OKP"
        )),
    }
}

fn member_bytes(key: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let text = key
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("is missing \"{name}\""))?;
    crate::b64url_decode(text)
        .ok_or_else(|| format!("member \"{name}\" is not base64url without padding"))
}

fn validate_rsa(key: &Map<String, Value>) -> Result<(), String> {
    let n = member_bytes(key, "n")?;
    let e = member_bytes(key, "e")?;
    let leading_zeros = n.iter().take_while(|b| **b == 0).count();
    if leading_zeros > 0 {
        return Err("member \"n\" has leading zero octets (RFC 7518 §6.3.1.1)".into());
    }
    let bits = (n.len() * 8).saturating_sub(n.first().map_or(8, |b| b.leading_zeros() as usize));
    if bits < 2048 {
        return Err(format!(
            "is an RSA key of {bits} bits; at least 2048 are required (RFC 7518 §3.3)"
        ));
    }
    if bits > 8192 {
        return Err(format!(
            "is an RSA key of {bits} bits; at most 8192 are accepted"
        ));
    }
    let exponent_ok = !e.is_empty()
        && e.len() <= 8
        && e[0] != 0
        && e.last().is_some_and(|b| b & 1 == 1)
        && !(e.len() == 1 && e[0] < 3);
    if !exponent_ok {
        return Err("member \"e\" is not a valid RSA public exponent (odd, at least 3, no leading zero octets)".into());
    }
    Ok(())
}

fn validate_ec(key: &Map<String, Value>) -> Result<(), String> {
    let crv = key
        .get("crv")
        .and_then(Value::as_str)
        .ok_or("is missing \"crv\"")?;
    let size = match crv {
        "P-256" => 32,
        "P-384" => 48,
        "P-521" => 66,
        other => {
            return Err(format!(
                "has unsupported crv \"{other}\"; use P-256, P-384 or P-521"
            ))
        }
    };
    let (x, y) = (member_bytes(key, "x")?, member_bytes(key, "y")?);
    if x.len() != size || y.len() != size {
        return Err(format!(
            "has coordinates of the wrong length for {crv}: each must be {size} octets (RFC 7518 §6.2.1.2)"
        ));
    }
    if crv == "P-256" {
        // Refuse points that are not on the curve: such a key could never
        // verify a signature and invites invalid-curve attacks later.
        let (Ok(x), Ok(y)) = (<[u8; 32]>::try_from(x), <[u8; 32]>::try_from(y)) else {
            return Err("has coordinates of the wrong length for P-256".into());
        };
        let point = p256::EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
        if p256::PublicKey::from_sec1_bytes(point.as_bytes()).is_err() {
            return Err("is not a point on curve P-256".into());
        }
    }
    Ok(())
}

fn validate_okp(key: &Map<String, Value>) -> Result<(), String> {
    let crv = key
        .get("crv")
        .and_then(Value::as_str)
        .ok_or("is missing \"crv\"")?;
    let size = match crv {
        "Ed25519" | "X25519" => 32,
        "Ed448" => 57,
        "X448" => 56,
        other => return Err(format!("has unsupported crv \"{other}\" (RFC 8037 §2)")),
    };
    if member_bytes(key, "x")?.len() != size {
        return Err(format!(
            "member \"x\" must be {size} octets for {crv} (RFC 8037 §2)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // A valid P-256 public key (RFC 7515 Appendix A.3).
    fn ec_key() -> Value {
        json!({"kty":"EC","crv":"P-256",
               "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
               "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})
    }

    fn rsa_key(bits: usize) -> Value {
        let mut n = vec![0xffu8; bits / 8];
        n[0] = 0xc1;
        json!({"kty":"RSA","n": crate::b64url(&n),"e":"AQAB"})
    }

    fn check(jwks: Value, expected: Result<(), &str>) {
        match (validate_client_jwks(&jwks), expected) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(fragment)) => assert!(e.0.contains(fragment), "{e} lacks {fragment}"),
            (got, want) => panic!("{jwks}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn valid_sets() {
        check(json!({"keys":[ec_key()]}), Ok(()));
        check(json!({"keys":[rsa_key(2048), ec_key()]}), Ok(()));
        check(
            json!({"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}),
            Ok(()),
        );
    }

    // RFC 7591 §2: jwks is a JWK Set document, a JSON object with "keys".
    #[test]
    fn structural_errors() {
        check(json!([ec_key()]), Err("JSON object"));
        check(json!({}), Err("missing the \"keys\""));
        check(json!({"keys": {}}), Err("must be an array"));
        check(json!({"keys": []}), Err("must not be empty"));
        check(json!({"keys": ["x"]}), Err("keys[0] must be a JSON object"));
        check(
            json!({"keys": vec![ec_key(); MAX_KEYS + 1]}),
            Err("at most"),
        );
    }

    // OIDC DCR §2: the set MUST NOT contain private or symmetric keys.
    #[test]
    fn private_and_symmetric_keys_refused() {
        let mut private = ec_key();
        private["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
        check(
            json!({"keys":[private]}),
            Err("private or symmetric member \"d\""),
        );
        check(
            json!({"keys":[{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]}),
            Err("\"k\""),
        );
        check(json!({"keys":[{"kty":"oct"}]}), Err("symmetric"));
    }

    #[test]
    fn key_material_checked() {
        check(json!({"keys":[rsa_key(1024)]}), Err("1024 bits"));
        check(
            json!({"keys":[{"kty":"RSA","n":"!!","e":"AQAB"}]}),
            Err("base64url"),
        );
        check(
            json!({"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}),
            Err("wrong length"),
        );
        let mut off_curve = ec_key();
        off_curve["y"] = json!(crate::b64url(&[1u8; 32]));
        check(json!({"keys":[off_curve]}), Err("not a point"));
        check(
            json!({"keys":[{"kty":"EC","crv":"secp256k1","x":"AA","y":"AA"}]}),
            Err("unsupported crv"),
        );
        check(json!({"keys":[{"n":"AA"}]}), Err("missing \"kty\""));
        let mut bad_use = ec_key();
        bad_use["use"] = json!("both");
        check(json!({"keys":[bad_use]}), Err("\"use\""));
        let mut a = ec_key();
        a["kid"] = json!("k1");
        check(json!({"keys":[a.clone(), a]}), Err("repeats kid"));
    }
}
