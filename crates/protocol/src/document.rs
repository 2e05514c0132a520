//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document,
//! "CIMD"; MCP authorization 2025-11-25 and later): a `client_id` that is an
//! https URL naming a JSON document of the client's metadata.
//!
//! Two pure checks: [`check_client_id_url`] decides whether a `client_id`
//! is such a URL (before anything is fetched), and [`validate_document`]
//! turns the fetched bytes into the [`ClientMetadata`] the server keeps,
//! with the same validation as a registration request plus the document's
//! own rules. Fetching, caching and the domain policy live in the service.

use crate::metadata::{AuthMethod, ClientMetadata};
use crate::validate::validate_registration;
use crate::{check_json_shape, Error, ErrorCode, UniqueObject};
use serde_json::Value;

/// The longest `client_id` URL accepted: it is stored, shown on the consent
/// page and sent back by clients on every request.
pub const MAX_CLIENT_ID_URL_LENGTH: usize = 1024;

/// Whether `client_id` claims to be a metadata document URL: anything that
/// starts with `https://`, which the server never issues itself (CIMD
/// §6.9), so such a `client_id` is either a document URL or invalid.
pub fn is_document_client_id(client_id: &str) -> bool {
    client_id
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// Checks a `client_id` URL against CIMD §3 before anything is fetched:
/// `https`, a host, a path other than `/`, no `.` or `..` segments (also
/// percent-encoded), no fragment, no user name or password, and no query
/// (a SHOULD NOT there; refused here, since a query only multiplies the
/// identifiers one document can claim). The URL must also be in the
/// normalized form a URL parser gives it (lowercase scheme and host, no
/// default port, no needless percent-encoding), because the document's
/// `client_id` is compared with it as a plain string (CIMD §4.1): two
/// spellings of one URL must not be two clients. Returns the parsed URL.
pub fn check_client_id_url(client_id: &str) -> Result<url::Url, String> {
    if client_id.len() > MAX_CLIENT_ID_URL_LENGTH {
        return Err(format!(
            "a client_id URL may have at most {MAX_CLIENT_ID_URL_LENGTH} characters"
        ));
    }
    if !client_id.starts_with("https://") {
        return Err("a client_id URL must use the https scheme, in lowercase".into());
    }
    let raw_path = client_id["https://".len()..]
        .split_once('/')
        .map(|(_, rest)| rest)
        .unwrap_or("");
    let raw_path = raw_path.split(['?', '#']).next().unwrap_or("");
    for segment in raw_path.split('/') {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        if decoded == "." || decoded == ".." {
            return Err("a client_id URL must not contain . or .. path segments".into());
        }
    }
    let url = url::Url::parse(client_id).map_err(|e| format!("not a valid URL: {e}"))?;
    if url.scheme() != "https" {
        return Err("a client_id URL must use the https scheme".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("a client_id URL must have a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a client_id URL must not contain a user name or password".into());
    }
    if url.fragment().is_some() {
        return Err("a client_id URL must not contain a fragment".into());
    }
    if url.query().is_some() {
        return Err("a client_id URL must not contain a query".into());
    }
    if url.path() == "/" || url.path().is_empty() {
        return Err("a client_id URL must contain a path, not only /".into());
    }
    if url.as_str() != client_id {
        return Err(format!(
            "a client_id URL must be in normalized form; this one normalizes to {}",
            url.as_str()
        ));
    }
    Ok(url)
}

/// Members a metadata document must not contain: a document is public, so
/// a shared secret in it is no secret (CIMD §4.1).
const SECRET_MEMBERS: [&str; 2] = ["client_secret", "client_secret_expires_at"];

/// Members a document must contain (MCP "Client ID Metadata Documents").
const REQUIRED_MEMBERS: [&str; 3] = ["client_id", "client_name", "redirect_uris"];

/// Validates the fetched document of `client_id` (already checked with
/// [`check_client_id_url`]) into the metadata the server keeps.
///
/// The document must be one JSON object without repeated members, within
/// the same depth and size limits as a registration request; its
/// `client_id` must equal the URL exactly (CIMD §4.1, simple string
/// comparison); `client_name` and `redirect_uris` must be present (MCP); it
/// must carry no secret and name no shared-secret authentication method
/// (`client_secret_basic`, `client_secret_post`, `client_secret_jwt`). An
/// omitted `token_endpoint_auth_method` means `none` here, not RFC 7591's
/// `client_secret_basic`: a document cannot give a client a secret. A
/// `software_statement` is refused (nothing in a public document can vouch
/// for it). Everything else is validated exactly like a registration
/// request, so a document is held to the same redirect URI, grant type and
/// key rules as dynamic registration.
pub fn validate_document(client_id: &str, body: &[u8]) -> Result<ClientMetadata, Error> {
    let invalid = |text: String| Error::new(ErrorCode::InvalidClientMetadata, text);
    check_json_shape(body).map_err(|e| invalid(format!("metadata document: {}", e.description)))?;
    let UniqueObject(mut members) = serde_json::from_slice::<UniqueObject>(body).map_err(|e| {
        invalid(format!(
            "metadata document: not a JSON object without repeated members ({e})"
        ))
    })?;
    let missing: Vec<&str> = REQUIRED_MEMBERS
        .into_iter()
        .filter(|m| members.get(*m).is_none_or(Value::is_null))
        .collect();
    if !missing.is_empty() {
        return Err(invalid(format!(
            "metadata document: required member{} missing: {}",
            if missing.len() == 1 { " is" } else { "s are" },
            missing.join(", ")
        )));
    }
    match members.get("client_id") {
        Some(Value::String(id)) if id == client_id => {}
        Some(Value::String(id)) => {
            return Err(invalid(format!(
                "metadata document: its client_id {id:?} is not the URL it was fetched from, {client_id:?}"
            )))
        }
        _ => {
            return Err(invalid(
                "metadata document: client_id must be a string".into(),
            ))
        }
    }
    if let Some(member) = SECRET_MEMBERS.iter().find(|m| members.contains_key(**m)) {
        return Err(invalid(format!(
            "metadata document: {member} must not appear in a public document; use token_endpoint_auth_method \"none\" or \"private_key_jwt\""
        )));
    }
    if members.contains_key("software_statement") {
        return Err(invalid(
            "metadata document: software_statement is not accepted in a metadata document".into(),
        ));
    }
    members.remove("client_id");
    members
        .entry("token_endpoint_auth_method")
        .or_insert_with(|| Value::String("none".into()));
    let metadata = validate_registration(&members)?;
    match metadata.token_endpoint_auth_method {
        AuthMethod::None | AuthMethod::PrivateKeyJwt => Ok(metadata),
        other => Err(invalid(format!(
            "metadata document: token_endpoint_auth_method {:?} relies on a shared secret, which a public document cannot hold; use \"none\" or \"private_key_jwt\"",
            other.as_str()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const URL: &str = "https://app.example/oauth/client.json";

    fn doc(overrides: Value) -> Vec<u8> {
        let mut base = json!({
            "client_id": URL,
            "client_name": "Example agent",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none"
        });
        for (k, v) in overrides.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        serde_json::to_vec(&base).unwrap()
    }

    #[test]
    fn client_id_urls() {
        assert!(check_client_id_url(URL).is_ok());
        assert!(check_client_id_url("https://app.example:8443/c").is_ok());
        for (bad, why) in [
            ("http://app.example/c.json", "https"),
            ("HTTPS://app.example/c.json", "https"),
            ("https://app.example", "path"),
            ("https://app.example/", "path"),
            ("https://app.example/a/./c.json", ". or .."),
            ("https://app.example/a/../c.json", ". or .."),
            ("https://app.example/a/%2e%2E/c.json", ". or .."),
            ("https://app.example/a/%2E/c.json", ". or .."),
            ("https://app.example/c.json#x", "fragment"),
            ("https://app.example/c.json#", "fragment"),
            ("https://u:p@app.example/c.json", "user name"),
            ("https://u@app.example/c.json", "user name"),
            ("https://app.example/c.json?v=1", "query"),
            ("https://App.Example/c.json", "normalized"),
            ("https://app.example:443/c.json", "normalized"),
            ("https://app.example/a b", "normalized"),
            ("https:///c.json", "path"),
            ("https://[::1/c", "valid URL"),
        ] {
            let e = check_client_id_url(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
        let long = format!("https://app.example/{}", "a".repeat(1100));
        assert!(check_client_id_url(&long).unwrap_err().contains("at most"));
    }

    #[test]
    fn document_client_ids_are_recognized() {
        assert!(is_document_client_id(URL));
        assert!(is_document_client_id("HTTPS://x/y"));
        assert!(!is_document_client_id("abc"));
        assert!(!is_document_client_id("http://x/y"));
    }

    #[test]
    fn a_valid_document() {
        let m = validate_document(URL, &doc(json!({}))).unwrap();
        assert_eq!(m.client_name.as_deref(), Some("Example agent"));
        assert_eq!(m.token_endpoint_auth_method, AuthMethod::None);
        // An omitted method means a public client, not client_secret_basic.
        let m = validate_document(URL, &doc(json!({"token_endpoint_auth_method": null}))).unwrap();
        assert_eq!(m.token_endpoint_auth_method, AuthMethod::None);
    }

    #[test]
    fn refused_documents() {
        for (overrides, why) in [
            (
                json!({"client_id": "https://app.example/oauth/client.json/"}),
                "is not the URL",
            ),
            (
                json!({"client_id": "https://APP.example/oauth/client.json"}),
                "is not the URL",
            ),
            (json!({"client_id": 7}), "must be a string"),
            (json!({"client_id": null}), "client_id"),
            (json!({"client_name": null}), "client_name"),
            (json!({"redirect_uris": null}), "redirect_uris"),
            (json!({"client_secret": "s3cret"}), "client_secret"),
            (
                json!({"client_secret_expires_at": 0}),
                "client_secret_expires_at",
            ),
            (
                json!({"token_endpoint_auth_method": "client_secret_basic"}),
                "shared secret",
            ),
            (
                json!({"token_endpoint_auth_method": "client_secret_post"}),
                "shared secret",
            ),
            (
                json!({"token_endpoint_auth_method": "client_secret_jwt"}),
                "client_secret_jwt",
            ),
            (json!({"software_statement": "a.b.c"}), "software_statement"),
            (
                json!({"redirect_uris": ["https://app.example/cb#frag"]}),
                "redirect_uris",
            ),
            (json!({"grant_types": ["implicit"]}), "implicit"),
            (
                json!({"token_endpoint_auth_method": "private_key_jwt"}),
                "jwks",
            ),
        ] {
            let e =
                validate_document(URL, &doc(overrides.clone())).expect_err(&overrides.to_string());
            assert!(
                matches!(
                    e.code,
                    ErrorCode::InvalidClientMetadata | ErrorCode::InvalidRedirectUri
                ),
                "{overrides}"
            );
            assert!(
                e.description.contains(why),
                "{overrides}: {}",
                e.description
            );
        }
        for bad in [
            &b"[1]"[..],
            b"not json",
            b"{\"client_id\": 1, \"client_id\": 2}",
        ] {
            assert!(validate_document(URL, bad).is_err());
        }
        let both_missing = validate_document(
            URL,
            &doc(json!({"client_name": null, "redirect_uris": null})),
        )
        .unwrap_err();
        assert!(both_missing
            .description
            .contains("members are missing: client_name, redirect_uris"));
    }
}
