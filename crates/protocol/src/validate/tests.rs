//! Case-by-case checks of registration and update validation. Each case
//! names the checklist item or spec clause it covers.

use super::*;
use serde_json::json;

fn body(value: Value) -> Map<String, Value> {
    value.as_object().cloned().expect("test bodies are objects")
}

/// Expect success, or a refusal with `code` whose description contains `fragment`.
fn check(request: Value, expected: Result<(), (ErrorCode, &str)>) -> Option<ClientMetadata> {
    let got = validate_registration(&body(request.clone()));
    match (got, expected) {
        (Ok(m), Ok(())) => Some(m),
        (Err(e), Err((code, fragment))) => {
            assert_eq!(e.code, code, "{request}: {}", e.description);
            assert!(
                e.description.contains(fragment),
                "{request}: «{}» lacks «{fragment}»",
                e.description
            );
            None
        }
        (got, want) => panic!("{request}: got {got:?}, want {want:?}"),
    }
}

fn ok(request: Value) -> ClientMetadata {
    check(request, Ok(())).expect("accepted")
}

const META: ErrorCode = ErrorCode::InvalidClientMetadata;
const REDIRECT: ErrorCode = ErrorCode::InvalidRedirectUri;

// OIDR-20, DCR-15: defaults applied and echoed.
#[test]
fn defaults_applied() {
    let m = ok(json!({"redirect_uris": ["https://c.example/cb"]}));
    assert_eq!(m.grant_types, vec![GrantType::AuthorizationCode]);
    assert_eq!(m.response_types, vec![ResponseType::Code]);
    assert_eq!(m.token_endpoint_auth_method, AuthMethod::ClientSecretBasic);
    assert_eq!(m.application_type, ApplicationType::Web);
    assert_eq!(m.require_auth_time, Some(false));
    assert_eq!(m.id_token_signed_response_alg.as_deref(), Some("RS256"));
    let echoed = serde_json::to_value(&m).unwrap();
    assert_eq!(echoed["grant_types"], json!(["authorization_code"]));
    assert_eq!(
        echoed["token_endpoint_auth_method"],
        json!("client_secret_basic")
    );
}

// DCR-21: a machine client needs no redirect URI.
#[test]
fn client_credentials_without_redirect_uris() {
    let m = ok(json!({"grant_types": ["client_credentials"], "response_types": []}));
    assert!(m.response_types.is_empty() && m.redirect_uris.is_empty());
    assert_eq!(m.id_token_signed_response_alg, None);
    let m = ok(json!({"grant_types": ["client_credentials"]}));
    assert!(m.response_types.is_empty());
}

// DCR-20, OIDR-01.
#[test]
fn redirect_uris_required_for_code_grant() {
    check(
        json!({}),
        Err((REDIRECT, "required for the authorization_code grant")),
    );
    check(json!({"redirect_uris": []}), Err((REDIRECT, "required")));
}

// DCR-22..25, OIDR-05, OIDR-07: every URI is checked, one bad entry fails.
#[test]
fn redirect_uri_rules() {
    check(
        json!({"redirect_uris": ["https://c.example/cb", "https://c.example/cb#f"]}),
        Err((REDIRECT, "fragment")),
    );
    check(
        json!({"redirect_uris": ["/cb"]}),
        Err((REDIRECT, "absolute")),
    );
    check(
        json!({"redirect_uris": ["http://c.example/cb"]}),
        Err((REDIRECT, "loopback")),
    );
    check(
        json!({"redirect_uris": ["myapp:/cb"], "application_type": "native"}),
        Err((REDIRECT, "reverse domain")),
    );
    check(
        json!({"redirect_uris": ["https://c.example/cb"], "application_type": "native"}),
        Err((REDIRECT, "native")),
    );
    check(
        json!({"redirect_uris": ["https://c.example/cb", "https://c.example/cb"]}),
        Err((REDIRECT, "more than once")),
    );
    ok(
        json!({"redirect_uris": ["com.example.app:/cb", "http://127.0.0.1/cb"], "application_type": "native"}),
    );
    ok(
        json!({"redirect_uris": ["http://localhost:33418/callback"], "token_endpoint_auth_method": "none"}),
    );
}

// OIDR-02, OIDR-28: redirect URIs are stored exactly as sent, never normalized.
#[test]
fn redirect_uris_kept_verbatim() {
    let uris = json!([
        "https://C.Example:443/cb/../x?b=2&a=1",
        "https://c.example/cb/"
    ]);
    assert_eq!(
        serde_json::to_value(ok(json!({"redirect_uris": uris}))).unwrap()["redirect_uris"],
        uris
    );
}

// DCR-30, OIDR-21: grant and response types agree or the request fails.
#[test]
fn grant_response_consistency() {
    check(
        json!({"grant_types": ["client_credentials"], "response_types": ["code"], "redirect_uris": ["https://c.example/cb"]}),
        Err((META, "requires grant type authorization_code")),
    );
    check(
        json!({"grant_types": ["authorization_code"], "response_types": [], "redirect_uris": ["https://c.example/cb"]}),
        Err((META, "requires response type \"code\"")),
    );
    check(
        json!({"response_types": ["token"], "redirect_uris": ["https://c.example/cb"]}),
        Err((META, "\"token\" is not supported")),
    );
    check(
        json!({"response_types": ["code id_token"], "redirect_uris": ["https://c.example/cb"]}),
        Err((META, "not supported")),
    );
    check(
        json!({"grant_types": ["refresh_token"]}),
        Err((META, "only issued with authorization_code")),
    );
    check(json!({"grant_types": []}), Err((META, "at least one")));
    let m = ok(json!({"response_types": ["code"], "redirect_uris": ["https://c.example/cb"]}));
    assert_eq!(m.grant_types, vec![GrantType::AuthorizationCode]);
}

// DCR-33, RFC 9700 §2.4 and §2.1.2.
#[test]
fn password_and_implicit_refused() {
    check(
        json!({"grant_types": ["password"]}),
        Err((META, "RFC 9700 §2.4")),
    );
    check(
        json!({"grant_types": ["implicit"], "redirect_uris": ["https://c.example/cb"]}),
        Err((META, "implicit")),
    );
    check(
        json!({"grant_types": ["urn:ietf:params:oauth:grant-type:device_code"]}),
        Err((META, "not supported")),
    );
}

// DCR-32.
#[test]
fn auth_methods() {
    check(
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_jwt"}),
        Err((META, "not supported")),
    );
    check(
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": 3}),
        Err((META, "must be a string")),
    );
    check(
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}),
        Err((META, "client_credentials requires an authenticated client")),
    );
    let m = ok(
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"}),
    );
    assert!(m.needs_secret());
}

fn ec_jwk() -> Value {
    json!({"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})
}

// DCR-26..29, OIDR-08, OIDR-16.
#[test]
fn key_material() {
    let base = |extra: Value| {
        let mut b = json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt"});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    check(
        base(json!({})),
        Err((META, "requires the client's public keys")),
    );
    check(
        base(json!({"jwks": {"keys": [ec_jwk()]}, "jwks_uri": "https://c.example/jwks"})),
        Err((META, "must not both be present")),
    );
    check(
        base(json!({"jwks": [ec_jwk()]})),
        Err((META, "jwks: must be a JSON object")),
    );
    let mut private = ec_jwk();
    private["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
    check(
        base(json!({"jwks": {"keys": [private]}})),
        Err((META, "private or symmetric")),
    );
    check(
        base(json!({"jwks_uri": "http://c.example/jwks"})),
        Err((META, "jwks_uri: must be an https URI")),
    );
    check(
        base(json!({"jwks": {"keys": [ec_jwk()]}, "token_endpoint_auth_signing_alg": "none"})),
        Err((META, "\"none\" is not supported")),
    );
    check(
        base(json!({"jwks": {"keys": [ec_jwk()]}, "token_endpoint_auth_signing_alg": "HS256"})),
        Err((META, "not supported")),
    );
    check(
        base(json!({"jwks": {"keys": [ec_jwk()]}, "token_endpoint_auth_signing_alg": "RS256"})),
        Err((META, "no signing key usable with RS256")),
    );
    let m = ok(base(
        json!({"jwks": {"keys": [ec_jwk()]}, "token_endpoint_auth_signing_alg": "ES256"}),
    ));
    assert!(!m.needs_secret());
    ok(base(json!({"jwks_uri": "https://c.example/jwks"})));
    check(
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_signing_alg": "ES256"}),
        Err((META, "applies only to")),
    );
}

// DCR-34: JSON types are checked.
#[test]
fn json_types() {
    check(
        json!({"grant_types": ["client_credentials"], "contacts": "a@b.example"}),
        Err((META, "contacts: must be an array of strings")),
    );
    check(
        json!({"redirect_uris": "https://c.example/cb"}),
        Err((META, "redirect_uris: must be an array")),
    );
    check(
        json!({"grant_types": ["client_credentials"], "scope": ["a"]}),
        Err((META, "space-separated")),
    );
    check(
        json!({"grant_types": "client_credentials"}),
        Err((META, "grant_types: must be an array")),
    );
    check(
        json!({"grant_types": ["client_credentials"], "client_name": 7}),
        Err((META, "client_name: must be a string")),
    );
    check(
        json!({"redirect_uris": ["https://c.example/cb"], "require_auth_time": "yes"}),
        Err((META, "boolean")),
    );
    check(
        json!({"redirect_uris": ["https://c.example/cb"], "default_max_age": -1}),
        Err((META, "non-negative")),
    );
}

// RFC 7591 §2 scope syntax (RFC 6749 §3.3).
#[test]
fn scope_syntax() {
    let cc = |scope: &str| json!({"grant_types": ["client_credentials"], "scope": scope});
    assert_eq!(
        ok(cc("read write:all")).scope.as_deref(),
        Some("read write:all")
    );
    check(cc("read  write"), Err((META, "single spaces")));
    check(cc(" read"), Err((META, "single spaces")));
    check(cc("re\"ad"), Err((META, "scope")));
    check(cc("read read"), Err((META, "more than once")));
}

// DCR-35: language-tagged members kept per tag.
#[test]
fn language_tags() {
    let m = ok(
        json!({"grant_types": ["client_credentials"], "client_name": "Agent",
        "client_name#ja-Jpan-JP": "エージェント", "logo_uri#fr": "https://c.example/fr.png", "x_unknown#en": "ignored"}),
    );
    let echoed = serde_json::to_value(&m).unwrap();
    assert_eq!(echoed["client_name#ja-Jpan-JP"], json!("エージェント"));
    assert_eq!(echoed["logo_uri#fr"], json!("https://c.example/fr.png"));
    assert!(echoed.get("x_unknown#en").is_none());
    check(
        json!({"grant_types": ["client_credentials"], "client_name#": "x"}),
        Err((META, "language tag")),
    );
    check(
        json!({"grant_types": ["client_credentials"], "logo_uri#fr": "http://c.example/l.png"}),
        Err((META, "https")),
    );
}

// DCR-17: unknown members ignored and never echoed; DCR-11: client_id ignored.
#[test]
fn unknown_and_server_assigned_members_ignored() {
    let m = ok(
        json!({"grant_types": ["client_credentials"], "x_vendor_flag": true, "client_id": "mine",
        "client_secret": "mine", "client_id_issued_at": 1, "dpop_bound_access_tokens": false}),
    );
    let echoed = serde_json::to_value(&m).unwrap();
    for member in [
        "x_vendor_flag",
        "client_id",
        "client_secret",
        "client_id_issued_at",
    ] {
        assert!(echoed.get(member).is_none(), "{member} echoed");
    }
}

// OIDR-09, OIDR-13, OIDR-14, OIDR-15, OIDR-18, OIDR-19.
#[test]
fn oidc_members() {
    let code = |extra: Value| {
        let mut b = json!({"redirect_uris": ["https://c.example/cb"]});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    // OIDR-09: https only; the fetch itself is the service's.
    assert_eq!(
        ok(code(
            json!({"sector_identifier_uri": "https://c.example/s.json"})
        ))
        .sector_identifier_uri
        .as_deref(),
        Some("https://c.example/s.json")
    );
    check(
        code(json!({"sector_identifier_uri": "http://c.example/s.json"})),
        Err((META, "sector_identifier_uri")),
    );
    check(
        code(json!({"subject_type": "pairwise"})),
        Err((META, "\"pairwise\" is not supported")),
    );
    check(
        code(json!({"id_token_signed_response_alg": "none"})),
        Err((META, "\"none\" is not supported")),
    );
    check(
        code(json!({"id_token_encrypted_response_enc": "A128CBC-HS256"})),
        Err((META, "encryption")),
    );
    check(
        code(json!({"request_uris": ["http://c.example/r"]})),
        Err((META, "request objects")),
    );
    check(
        code(json!({"initiate_login_uri": "http://c.example/login"})),
        Err((META, "initiate_login_uri: must be an https URI")),
    );
    assert_eq!(
        ok(code(
            json!({"initiate_login_uri": "https://c.example/login"})
        ))
        .initiate_login_uri
        .as_deref(),
        Some("https://c.example/login")
    );
    ok(code(
        json!({"tls_client_certificate_bound_access_tokens": false}),
    ));
    // RFC 9449 §5.2: accepted, stored and echoed; it must be a boolean.
    assert_eq!(
        ok(code(json!({"dpop_bound_access_tokens": true}))).dpop_bound_access_tokens,
        Some(true)
    );
    check(
        code(json!({"dpop_bound_access_tokens": "yes"})),
        Err((META, "boolean")),
    );
    check(
        code(json!({"post_logout_redirect_uris": ["https://c.example/bye"]})),
        Err((META, "logout")),
    );
    check(
        code(json!({"application_type": "desktop"})),
        Err((META, "\"web\" or \"native\"")),
    );
}

// DCR-40, DCR-42: a statement that reaches validation unverified.
#[test]
fn software_statements() {
    // {"alg":"ES256"}.{"iss":"x"}.sig: well-formed, but nobody verified it.
    check(
        json!({"software_statement": "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln"}),
        Err((
            ErrorCode::UnapprovedSoftwareStatement,
            "no software statement issuer",
        )),
    );
    // DCR-40: alg "none" is not a signed statement at all.
    check(
        json!({"software_statement": "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0."}),
        Err((ErrorCode::InvalidSoftwareStatement, "compact")),
    );
    check(
        json!({"software_statement": "{\"iss\":\"x\"}"}),
        Err((ErrorCode::InvalidSoftwareStatement, "compact")),
    );
    check(
        json!({"software_statement": 5}),
        Err((ErrorCode::InvalidSoftwareStatement, "compact")),
    );
}

// Every violation is reported at once; mixed violations use invalid_client_metadata.
#[test]
fn all_violations_reported() {
    let e = validate_registration(&body(
        json!({"redirect_uris": ["http://c.example/cb"], "contacts": 1, "scope": 2}),
    ))
    .unwrap_err();
    assert_eq!(e.code, META);
    for part in ["redirect_uris:", "contacts:", "scope:"] {
        assert!(e.description.contains(part), "{}", e.description);
    }
}

// JSON null is treated as absent (RFC 7592 §2.2 lets the server ignore it).
#[test]
fn nulls_are_absent() {
    let m =
        ok(json!({"grant_types": ["client_credentials"], "client_name": null, "jwks_uri": null}));
    assert_eq!(m.client_name, None);
}

// MGMT-11, MGMT-12, MGMT-13 (RFC 7592 §2.2).
#[test]
fn update_rules() {
    let upd = |v: Value| validate_update(&body(v), "abc");
    let e = upd(json!({"grant_types": ["client_credentials"]})).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidRequest);
    assert!(e.description.contains("client_id: required"));
    let e = upd(json!({"client_id": "other", "grant_types": ["client_credentials"]})).unwrap_err();
    assert!(e.description.contains("does not match"));
    for member in SERVER_MANAGED {
        let mut b = json!({"client_id": "abc", "grant_types": ["client_credentials"]});
        b[member] = json!("x");
        let e = upd(b).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.description.contains(member));
    }
    let u = upd(
        json!({"client_id": "abc", "client_secret": "s", "grant_types": ["client_credentials"]}),
    )
    .unwrap();
    assert_eq!(u.client_secret.as_deref(), Some("s"));
    let e = upd(json!({"client_id": "abc", "redirect_uris": ["http://c.example/cb"]})).unwrap_err();
    assert_eq!(e.code, REDIRECT);
}

// Stored metadata deserializes back to the same value.
#[test]
fn storage_round_trip() {
    let m = ok(
        json!({"redirect_uris": ["https://c.example/cb"], "client_name": "A", "client_name#de": "B",
        "contacts": ["ops@c.example"], "scope": "read", "software_id": "s1"}),
    );
    let back: ClientMetadata = serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
    assert_eq!(back, m);
}

// Real MCP clients (docs/mcp-clients.md): a well-known extension grant the
// server does not serve is dropped beside a served one (RFC 7591 §3.2.1)
// and the registered grant_types are echoed without it.
#[test]
fn unserved_extension_grants_dropped_beside_served_ones() {
    const DEVICE: &str = "urn:ietf:params:oauth:grant-type:device_code";
    const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
    // VS Code's client metadata document lists the device grant.
    let m = ok(json!({
        "redirect_uris": ["http://127.0.0.1:33418/"],
        "grant_types": ["authorization_code", "refresh_token", DEVICE],
        "response_types": ["code"], "token_endpoint_auth_method": "none"}));
    assert_eq!(
        m.grant_types,
        vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
    );
    assert_eq!(
        serde_json::to_value(&m).unwrap()["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    // claude.ai's lists the JWT bearer grant.
    let m = ok(json!({
        "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
        "grant_types": ["authorization_code", "refresh_token", JWT_BEARER],
        "response_types": ["code"], "token_endpoint_auth_method": "none"}));
    assert_eq!(
        m.grant_types,
        vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
    );
    // Order is kept, whatever the position of the dropped value.
    let m = ok(json!({"grant_types": [TOKEN_EXCHANGE, "client_credentials"]}));
    assert_eq!(m.grant_types, vec![GrantType::ClientCredentials]);
    assert!(m.response_types.is_empty());
    for name in [
        "urn:ietf:params:oauth:grant-type:saml2-bearer",
        "urn:openid:params:grant-type:ciba",
    ] {
        let m = ok(json!({"grant_types": ["client_credentials", name]}));
        assert_eq!(m.grant_types, vec![GrantType::ClientCredentials], "{name}");
    }
}

// Alone, an unserved extension grant leaves nothing to register: refused,
// naming the grant and what to register instead.
#[test]
fn unserved_extension_grants_alone_refused() {
    const DEVICE: &str = "urn:ietf:params:oauth:grant-type:device_code";
    check(
        json!({"grant_types": [DEVICE]}),
        Err((META, "RFC 8628) is not supported by this server")),
    );
    check(
        json!({"grant_types": [DEVICE, "urn:ietf:params:oauth:grant-type:jwt-bearer"]}),
        Err((META, "RFC 7523) is not supported")),
    );
    // Dropping the device grant leaves refresh_token alone, which needs
    // authorization_code: the usual rule applies to what would be registered.
    check(
        json!({"grant_types": [DEVICE, "refresh_token"]}),
        Err((META, "refresh_token is only issued with authorization_code")),
    );
}

// Only the listed extension grants are dropped: security-relevant and
// unknown values stay refusals, beside a served grant too.
#[test]
fn other_grant_values_still_refused_beside_served_ones() {
    let code = |grant: &str| json!({"redirect_uris": ["https://c.example/cb"], "grant_types": ["authorization_code", grant]});
    check(code("password"), Err((META, "RFC 9700 §2.4")));
    check(code("implicit"), Err((META, "RFC 9700 §2.1.2")));
    check(
        code("refresh-token"),
        Err((META, "\"refresh-token\" is not supported")),
    );
    check(
        code("urn:ietf:params:oauth:grant-type:DEVICE_CODE"),
        Err((META, "not supported")),
    );
    check(
        code("urn:ietf:params:oauth:grant-type:unknown"),
        Err((META, "not supported")),
    );
}

// The same rule holds for an RFC 7592 update (and for client metadata
// documents, which go through the same validation).
#[test]
fn unserved_extension_grants_dropped_on_update() {
    let u = validate_update(
        &body(
            json!({"client_id": "abc", "redirect_uris": ["http://127.0.0.1/cb"],
            "grant_types": ["authorization_code", "urn:ietf:params:oauth:grant-type:device_code"]}),
        ),
        "abc",
    )
    .unwrap();
    assert_eq!(u.metadata.grant_types, vec![GrantType::AuthorizationCode]);
}

// RFC 7592 §2.2: an empty scope string is an empty value the server may
// ignore; it registers no scope (a profile default may then apply). The
// MCP Inspector sends one when no scope is configured.
#[test]
fn empty_scope_is_no_scope() {
    let m = ok(json!({
        "redirect_uris": ["http://localhost:6274/oauth/callback", "http://localhost:6274/oauth/callback/debug"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
        "client_name": "MCP Inspector", "client_uri": "https://github.com/modelcontextprotocol/inspector",
        "scope": ""}));
    assert_eq!(m.scope, None);
    assert!(serde_json::to_value(&m).unwrap().get("scope").is_none());
    // Whitespace is not empty: still malformed.
    let cc = |scope: &str| json!({"grant_types": ["client_credentials"], "scope": scope});
    check(cc(" "), Err((META, "single spaces")));
    check(cc("mcp "), Err((META, "single spaces")));
}

// A native client's https redirect URIs stay refused (OIDC DCR §2; redirect
// URIs are never replaced, §3.2), with one hint that says what to change.
#[test]
fn native_https_redirect_uris_refused_with_a_hint() {
    // microsoft/vscode src/vs/base/common/oauth.ts, fetchDynamicRegistration.
    let vscode = json!({
        "client_name": "Visual Studio Code", "client_uri": "https://code.visualstudio.com",
        "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
        "response_types": ["code"],
        "redirect_uris": ["https://insiders.vscode.dev/redirect", "https://vscode.dev/redirect",
                          "http://127.0.0.1/", "http://127.0.0.1:33418/"],
        "token_endpoint_auth_method": "none", "application_type": "native"});
    let e = validate_registration(&body(vscode.clone())).unwrap_err();
    assert_eq!(e.code, REDIRECT, "{}", e.description);
    assert!(e
        .description
        .contains("\"https://vscode.dev/redirect\" native clients"));
    assert_eq!(
        e.description.matches("application_type \"web\"").count(),
        1,
        "{}",
        e.description
    );
    assert!(!e.description.contains("device_code"), "{}", e.description);
    // The retry MCP suggests (application_type web) registers every URI
    // verbatim, the loopback ones under decision 7.
    let mut web = vscode;
    web["application_type"] = json!("web");
    let m = ok(web);
    assert_eq!(m.application_type, ApplicationType::Web);
    assert_eq!(m.redirect_uris.len(), 4);
    assert_eq!(
        m.grant_types,
        vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
    );
    // No hint where "web" would not help.
    let e = validate_registration(&body(
        json!({"application_type": "native", "redirect_uris": ["myapp:/cb", "https://c.example/cb#f"]}),
    ))
    .unwrap_err();
    assert!(
        !e.description.contains("application_type"),
        "{}",
        e.description
    );
}

// Client ID Metadata Documents go through this validation too: the real
// documents of claude.ai (the JWT bearer grant) and VS Code (native https
// redirect URIs, the device grant) get the same decisions as a request.
#[test]
fn real_metadata_documents() {
    let claude = "https://claude.ai/oauth/mcp-oauth-client-metadata";
    let m = crate::document::validate_document(
        claude,
        json!({"client_id": claude, "client_name": "Claude", "client_uri": "https://claude.ai",
            "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
            "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer"],
            "response_types": ["code"], "token_endpoint_auth_method": "none"})
        .to_string()
        .as_bytes(),
    )
    .expect("claude.ai's document");
    assert_eq!(
        m.grant_types,
        vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
    );
    let vscode = "https://vscode.dev/oauth/client-metadata.json";
    let e = crate::document::validate_document(
        vscode,
        json!({"client_name": "Visual Studio Code",
            "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
            "response_types": ["code"], "token_endpoint_auth_method": "none", "application_type": "native",
            "client_id": vscode, "client_uri": "https://vscode.dev/product",
            "redirect_uris": ["http://127.0.0.1:33418/", "https://vscode.dev/redirect"]})
        .to_string()
        .as_bytes(),
    )
    .unwrap_err();
    assert_eq!(e.code, REDIRECT, "{}", e.description);
    assert!(e.description.contains("application_type \"web\""));
}
