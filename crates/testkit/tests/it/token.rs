//! The point of use over HTTP: the token endpoint with each client
//! authentication method and its failures, governance enforced at every
//! request, introspection, revocation, secret rotation, the reaper and the
//! reports.

use charter_jose::{b64url, Algorithm, SigningKey};
use charter_testkit::{json, on_both_backends, Options, TestServer};
use serde_json::Value;

const API: &str = "https://api.example.com/orders";

fn options() -> Options {
    Options {
        extra_toml: r#"
[policy]
version = "t-1"
default_profile = "open"

[policy.profiles.open]
resources = ["https://api.example.com/", "https://billing.example.com/"]

[policy.profiles.rs]
introspection_audiences = ["https://api.example.com/"]

[policy.profiles.gated]
approval = "always"

[lifecycle]
unused_client_expiry = "30d"
expired_retention = "7d"
last_used_flush_interval = "1s"
"#
        .into(),
        ..Default::default()
    }
}

struct Reply {
    status: u16,
    challenge: Option<String>,
    cache_control: Option<String>,
    body: Value,
}

enum Auth<'a> {
    Basic(&'a str, &'a str),
    None,
}

async fn post_form(
    server: &TestServer,
    path: &str,
    auth: Auth<'_>,
    form: &[(&str, &str)],
) -> Reply {
    let mut request = server.http.post(server.url(path)).form(form);
    if let Auth::Basic(id, secret) = auth {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.expect("request");
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let challenge = header("www-authenticate");
    let cache_control = header("cache-control");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Reply {
        status,
        challenge,
        cache_control,
        body,
    }
}

fn id_secret(client: &Value) -> (&str, &str) {
    (
        client["client_id"].as_str().unwrap(),
        client["client_secret"].as_str().unwrap(),
    )
}

/// A client_credentials token with client_secret_basic.
async fn token_for(server: &TestServer, client: &Value, extra: &[(&str, &str)]) -> Reply {
    let (id, secret) = id_secret(client);
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(extra);
    post_form(server, "/token", Auth::Basic(id, secret), &form).await
}

async fn access_token(server: &TestServer, client: &Value) -> String {
    let reply = token_for(server, client, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["access_token"].as_str().unwrap().to_owned()
}

async fn introspect(server: &TestServer, caller: &Value, token: &str) -> Value {
    let (id, secret) = id_secret(caller);
    let reply = post_form(
        server,
        "/introspect",
        Auth::Basic(id, secret),
        &[("token", token)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

fn cc_client(scope: &str) -> Value {
    json!({"grant_types": ["client_credentials"], "scope": scope, "client_name": "svc"})
}

/// The decoded parts of a JWT, unverified (the real-client test verifies).
fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut part = || {
        let bytes = charter_jose::b64url_decode(parts.next().unwrap()).unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()
    };
    (part(), part())
}

/// A client registered with an initial access token of `organization`
/// under `profile`.
async fn register_in(server: &TestServer, organization: &str, profile: &str, body: Value) -> Value {
    let (status, minted) = server
        .admin_post(
            &format!("/admin/v1/organizations/{organization}/initial-access-tokens"),
            json!({"profile": profile}),
        )
        .await;
    assert_eq!(status, 201, "{minted}");
    let iat = minted["initial_access_token"].as_str().unwrap();
    let response = server.register_with(Some(iat), &body).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// A resource server in its own organization `apis`, under the profile
/// that may introspect tokens for https://api.example.com/.
async fn resource_server(server: &TestServer) -> Value {
    let (status, _) = server
        .admin_post("/admin/v1/organizations", json!({"name": "apis"}))
        .await;
    assert_eq!(status, 201);
    register_in(server, "apis", "rs", cc_client("introspect")).await
}

/// Sets one time column of a client's row behind the server's back, as
/// the passing of time would; `None` clears it.
async fn set_time(server: &TestServer, client: &Value, column: &str, value: Option<i64>) {
    let id = client["client_id"].as_str().unwrap();
    let statement = match value {
        Some(_) => format!("UPDATE clients SET {column} = $3 WHERE client_id = $1 AND $2 = $2"),
        None => format!(
            "UPDATE clients SET {column} = NULL WHERE client_id = $1 AND $2 = $2 AND $3 = $3"
        ),
    };
    assert_eq!(
        server
            .execute_sql(&statement, id, "", value.unwrap_or(0))
            .await,
        1,
        "{statement}"
    );
}

fn assert_invalid_client(reply: &Reply, mentions: &str) {
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(reply.body["error"], "invalid_client", "{}", reply.body);
    let description = reply.body["error_description"].as_str().unwrap_or_default();
    assert!(
        description.contains(mentions),
        "{description:?} should mention {mentions:?}"
    );
}

// client_secret_basic and client_secret_post, scopes, resources, and each
// failure of secret authentication.
async fn secret_authentication(server: TestServer) -> TestServer {
    let client = server.register(&cc_client("read write")).await;
    let (id, secret) = id_secret(&client);

    let reply = token_for(&server, &client, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.cache_control.as_deref(), Some("no-store"));
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 600);
    assert_eq!(reply.body["scope"], "read write");
    assert!(reply.body.get("refresh_token").is_none());
    let (header, claims) = jwt_parts(reply.body["access_token"].as_str().unwrap());
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(claims["iss"], server.issuer.as_str());
    assert_eq!(claims["sub"], id);
    assert_eq!(claims["client_id"], id);
    assert_eq!(
        claims["aud"],
        server.issuer.as_str(),
        "no resource: the issuer"
    );
    assert_eq!(claims["scope"], "read write");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 22));

    // Scopes: a subset is granted, anything else refused.
    let reply = token_for(&server, &client, &[("scope", "read")]).await;
    assert_eq!(reply.body["scope"], "read");
    let reply = token_for(&server, &client, &[("scope", "read admin")]).await;
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (400, Some("invalid_scope"))
    );

    // RFC 8707 resources set the audience, within the profile.
    let reply = token_for(&server, &client, &[("resource", API)]).await;
    assert_eq!(
        jwt_parts(reply.body["access_token"].as_str().unwrap()).1["aud"],
        API
    );
    let reply = token_for(
        &server,
        &client,
        &[
            ("resource", API),
            ("resource", "https://billing.example.com/v1"),
        ],
    )
    .await;
    assert_eq!(
        jwt_parts(reply.body["access_token"].as_str().unwrap()).1["aud"],
        json!([API, "https://billing.example.com/v1"])
    );
    for bad in [
        "https://evil.example.com/",
        "/relative",
        "https://api.example.com/x#frag",
        // Dot-segments must not escape a prefix pattern.
        "https://api.example.com/../admin",
        "https://billing.example.com/%2e%2e/other",
        "https://api.example.com/x?tenant=other",
    ] {
        let reply = token_for(&server, &client, &[("resource", bad)]).await;
        assert_eq!(
            (reply.status, reply.body["error"].as_str()),
            (400, Some("invalid_target")),
            "{bad}"
        );
    }
    let many: Vec<String> = (0..9).map(|i| format!("{API}/{i}")).collect();
    let form: Vec<(&str, &str)> = many.iter().map(|r| ("resource", r.as_str())).collect();
    let reply = token_for(&server, &client, &form).await;
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (400, Some("invalid_target")),
        "at most 8 resources"
    );

    // Failures of the request itself.
    let reply = post_form(&server, "/token", Auth::Basic(id, secret), &[]).await;
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let reply = post_form(
        &server,
        "/token",
        Auth::Basic(id, secret),
        &[
            ("grant_type", "client_credentials"),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    for grant in ["password", "urn:example:unknown"] {
        let reply = post_form(
            &server,
            "/token",
            Auth::Basic(id, secret),
            &[("grant_type", grant)],
        )
        .await;
        assert_eq!(
            (reply.status, reply.body["error"].as_str()),
            (400, Some("unsupported_grant_type")),
            "{grant}"
        );
    }

    // Wrong secret: 401 with a Basic challenge, as the header was used.
    let reply = post_form(
        &server,
        "/token",
        Auth::Basic(id, "chs_wrong"),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_invalid_client(&reply, "failed");
    assert!(reply.challenge.is_some_and(|c| c.starts_with("Basic")));
    // Unknown client: the same answer.
    let reply = post_form(
        &server,
        "/token",
        Auth::Basic("nobody", secret),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_invalid_client(&reply, "failed");
    // The registered method only: the basic client posting its secret.
    let reply = post_form(
        &server,
        "/token",
        Auth::None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ],
    )
    .await;
    assert_invalid_client(&reply, "not the method the client registered");
    assert!(reply.challenge.is_none(), "no header was used");
    // Two methods at once.
    let reply = post_form(
        &server,
        "/token",
        Auth::Basic(id, secret),
        &[
            ("grant_type", "client_credentials"),
            ("client_secret", secret),
        ],
    )
    .await;
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // No credentials at all.
    let reply = post_form(
        &server,
        "/token",
        Auth::None,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_invalid_client(&reply, "required");

    // client_secret_post works for a client registered for it, Basic does not.
    let post = server
        .register(&json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"}))
        .await;
    let (post_id, post_secret) = id_secret(&post);
    let reply = post_form(
        &server,
        "/token",
        Auth::None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", post_id),
            ("client_secret", post_secret),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.get("scope").is_none(),
        "no scope registered, none granted"
    );
    let reply = token_for(&server, &post, &[]).await;
    assert_invalid_client(&reply, "not the method the client registered");

    // A client not registered for client_credentials.
    let web = server
        .register(&json!({"redirect_uris": ["https://app.example.com/cb"], "client_name": "web"}))
        .await;
    let reply = token_for(&server, &web, &[]).await;
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );

    // A token never outlives its client's registration.
    let ends = charter_service::now() + 100;
    set_time(&server, &client, "expires_at", Some(ends)).await;
    let reply = token_for(&server, &client, &[]).await;
    assert!(
        reply.body["expires_in"].as_i64().unwrap() <= 100,
        "{}",
        reply.body
    );
    let claims = jwt_parts(reply.body["access_token"].as_str().unwrap()).1;
    assert_eq!(claims["exp"], ends);

    // An expired secret is refused with a description saying so.
    set_time(
        &server,
        &client,
        "secret_expires_at",
        Some(charter_service::now() - 5),
    )
    .await;
    let reply = token_for(&server, &client, &[]).await;
    assert_invalid_client(&reply, "expired");
    server
}

fn assertion(key: &SigningKey, claims: Value) -> String {
    key.sign_jwt("client-authentication+jwt", &claims).unwrap()
}

// private_key_jwt per RFC 7523 and 7523bis.
async fn private_key_jwt(server: TestServer) -> TestServer {
    let ec = SigningKey::generate(Algorithm::Es256).unwrap();
    let rsa = SigningKey::generate(Algorithm::Rs256).unwrap();
    let client = server
        .register(&json!({
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "ES256",
            "jwks": {"keys": [ec.public_jwk(), rsa.public_jwk()]},
        }))
        .await;
    let id = client["client_id"].as_str().unwrap().to_owned();
    let now = charter_service::now();
    let issuer = server.issuer.clone();
    let claims = |jti: &str| json!({"iss": id, "sub": id, "aud": issuer, "exp": now + 120, "iat": now, "jti": jti});
    let target = &server;
    let with = |jwt: String| async move {
        post_form(
            target,
            "/token",
            Auth::None,
            &[
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &jwt),
            ],
        )
        .await
    };

    let reply = with(assertion(&ec, claims("j-1"))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        jwt_parts(reply.body["access_token"].as_str().unwrap()).1["sub"],
        id.as_str()
    );
    // Single use.
    assert_invalid_client(&with(assertion(&ec, claims("j-1"))).await, "already used");
    // aud: the issuer as the only value; a one-element array is accepted (7523bis).
    let mut c = claims("j-2");
    c["aud"] = json!([issuer]);
    assert_eq!(with(assertion(&ec, c)).await.status, 200);
    for aud in [
        json!(server.url("/token")),
        json!([issuer, "https://other.example"]),
        json!("https://other.example"),
    ] {
        let mut c = claims("j-3");
        c["aud"] = aud.clone();
        assert_invalid_client(&with(assertion(&ec, c)).await, "aud");
    }
    let mut c = claims("j-4");
    c.as_object_mut().unwrap().remove("aud");
    assert_invalid_client(&with(assertion(&ec, c)).await, "aud");
    // Times: expired, too long-lived, not yet valid.
    let mut c = claims("j-5");
    c["exp"] = json!(now - 120);
    assert_invalid_client(&with(assertion(&ec, c)).await, "expired");
    let mut c = claims("j-6");
    c["exp"] = json!(now + 3600);
    assert_invalid_client(&with(assertion(&ec, c)).await, "exp");
    let mut c = claims("j-7");
    c["nbf"] = json!(now + 600);
    assert_invalid_client(&with(assertion(&ec, c)).await, "nbf");
    let mut c = claims("j-8");
    c.as_object_mut().unwrap().remove("jti");
    assert_invalid_client(&with(assertion(&ec, c)).await, "jti");
    // iss and sub must both be the client.
    let mut c = claims("j-9");
    c["iss"] = json!("someone-else");
    assert_invalid_client(&with(assertion(&ec, c)).await, "iss");
    // Only the registered algorithm, even with a registered RSA key.
    assert_invalid_client(&with(assertion(&rsa, claims("j-10"))).await, "ES256");
    // A key the client never registered.
    let stranger = SigningKey::generate(Algorithm::Es256).unwrap();
    assert_invalid_client(&with(assertion(&stranger, claims("j-11"))).await, "verify");
    // alg none and HMAC never pass.
    for alg in ["none", "HS256"] {
        let header = b64url(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes());
        let body = b64url(claims("j-12").to_string().as_bytes());
        assert_invalid_client(&with(format!("{header}.{body}.c2lnbmF0dXJl")).await, alg);
    }
    // The media-type form of typ is the same type (RFC 7515 section 4.1.9).
    let typed = ec
        .sign_jwt("application/client-authentication+jwt", &claims("j-15"))
        .unwrap();
    assert_eq!(with(typed).await.status, 200);
    // A token of another kind (an access token) is not a client assertion.
    let typed = ec.sign_jwt("at+jwt", &claims("j-13")).unwrap();
    assert_invalid_client(&with(typed).await, "typ");
    // The wrong assertion type.
    let reply = post_form(
        &server,
        "/token",
        Auth::None,
        &[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            ),
            ("client_assertion", &assertion(&ec, claims("j-14"))),
        ],
    )
    .await;
    assert_invalid_client(&reply, "client_assertion_type");
    // The registered method only: a private_key_jwt client cannot use a secret.
    let reply = post_form(
        &server,
        "/token",
        Auth::Basic(&id, "chs_guess"),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_invalid_client(&reply, "not the method the client registered");
    server
}

// Every governance state is enforced at the next request, and tokens of a
// client that may no longer be used introspect as inactive.
async fn governance_at_point_of_use(server: TestServer) -> TestServer {
    let rs = resource_server(&server).await;
    let active = |token: String| {
        let (server, rs) = (&server, &rs);
        async move { introspect(server, rs, &token).await["active"] == true }
    };

    // Pending until approved.
    let gated = register_in(&server, "default", "gated", cc_client("read")).await;
    assert_eq!(gated["status"], "pending");
    assert_invalid_client(&token_for(&server, &gated, &[]).await, "pending");
    let gated_id = gated["client_id"].as_str().unwrap();
    let (status, _) = server
        .admin_post(
            &format!("/admin/v1/clients/{gated_id}/approve"),
            json!({"reason": "ok"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(token_for(&server, &gated, &[]).await.status, 200);

    // Revoked by an administrator: refused, and its tokens die.
    let client = server.register(&cc_client("read")).await;
    let issued = token_for(&server, &client, &[("resource", API)]).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(active(issued.clone()).await);
    let client_id = client["client_id"].as_str().unwrap();
    let (status, _) = server
        .admin_post(
            &format!("/admin/v1/clients/{client_id}/revoke"),
            json!({"reason": "leaked"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_invalid_client(&token_for(&server, &client, &[]).await, "revoked");
    assert!(
        !active(issued).await,
        "a revoked client's token is inactive"
    );

    // The organization suspended, then resumed.
    let client = server.register(&cc_client("read")).await;
    let issued = token_for(&server, &client, &[("resource", API)]).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = server
        .admin_post(
            "/admin/v1/organizations/default/suspend",
            json!({"reason": "audit"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_invalid_client(&token_for(&server, &client, &[]).await, "suspended");
    assert!(!active(issued.clone()).await, "suspended: inactive");
    let (status, _) = server
        .admin_post(
            "/admin/v1/organizations/default/resume",
            json!({"reason": "done"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(token_for(&server, &client, &[]).await.status, 200);
    assert!(active(issued.clone()).await, "resumed: active again");

    // The approval lapsed (before the sweep noticed).
    set_time(
        &server,
        &client,
        "approved_until",
        Some(charter_service::now() - 5),
    )
    .await;
    assert_invalid_client(&token_for(&server, &client, &[]).await, "lapsed");
    assert!(!active(issued.clone()).await);
    set_time(&server, &client, "approved_until", None).await;

    // Past its registration's end: the re-registration signal.
    set_time(
        &server,
        &client,
        "expires_at",
        Some(charter_service::now() - 5),
    )
    .await;
    assert_invalid_client(&token_for(&server, &client, &[]).await, "register again");
    assert!(!active(issued).await);

    // Deleted by its owner (RFC 7592): invalid_client, tokens inactive.
    let client = server.register(&cc_client("read")).await;
    let issued = token_for(&server, &client, &[("resource", API)]).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let deleted = server
        .http
        .delete(client["registration_client_uri"].as_str().unwrap())
        .bearer_auth(client["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_invalid_client(&token_for(&server, &client, &[]).await, "failed");
    assert!(
        !active(issued).await,
        "a deleted client's token is inactive"
    );
    server
}

// RFC 7662 and RFC 7009.
async fn introspection_and_revocation(server: TestServer) -> TestServer {
    let owner = server.register(&cc_client("read write")).await;
    let other = server.register(&cc_client("read")).await;
    let rs = resource_server(&server).await;

    let own = access_token(&server, &owner).await;
    let answer = introspect(&server, &owner, &own).await;
    assert_eq!(answer["active"], true, "{answer}");
    for member in [
        "scope",
        "client_id",
        "sub",
        "aud",
        "iss",
        "exp",
        "iat",
        "jti",
    ] {
        assert!(answer.get(member).is_some(), "{member} missing in {answer}");
    }
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["client_id"], owner["client_id"]);

    // Not entitled: another client, or a resource server of another audience.
    assert_eq!(
        introspect(&server, &other, &own).await,
        json!({"active": false})
    );
    assert_eq!(
        introspect(&server, &rs, &own).await,
        json!({"active": false})
    );
    let for_api = token_for(&server, &owner, &[("resource", API)]).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(introspect(&server, &rs, &for_api).await["active"], true);

    // Unknown or malformed tokens, and the wrong hint, from an authorized caller.
    assert_eq!(
        introspect(&server, &owner, "not-a-token").await,
        json!({"active": false})
    );
    let (id, secret) = id_secret(&owner);
    let reply = post_form(
        &server,
        "/introspect",
        Auth::Basic(id, secret),
        &[("token", &own), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(
        reply.body["active"], true,
        "the hint does not limit the search"
    );
    // A tampered token is inactive.
    let mut tampered = own.clone();
    tampered.pop();
    tampered.push(if own.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(
        introspect(&server, &owner, &tampered).await["active"],
        false
    );
    // Callers must authenticate.
    let reply = post_form(&server, "/introspect", Auth::None, &[("token", &own)]).await;
    assert_invalid_client(&reply, "required");
    let reply = post_form(
        &server,
        "/introspect",
        Auth::Basic(id, "chs_wrong"),
        &[("token", &own)],
    )
    .await;
    assert_invalid_client(&reply, "failed");
    let reply = post_form(&server, "/introspect", Auth::Basic(id, secret), &[]).await;
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // Revocation: another client's token is refused and stays valid.
    let (other_id, other_secret) = id_secret(&other);
    let reply = post_form(
        &server,
        "/revoke",
        Auth::Basic(other_id, other_secret),
        &[("token", &own)],
    )
    .await;
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(introspect(&server, &owner, &own).await["active"], true);
    // Its own token: 200, then inactive everywhere.
    let reply = post_form(
        &server,
        "/revoke",
        Auth::Basic(id, secret),
        &[("token", &own), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.cache_control.as_deref(), Some("no-store"));
    assert_eq!(
        introspect(&server, &owner, &own).await,
        json!({"active": false})
    );
    // Revoking again, an unknown token, or with an unknown hint: still 200.
    for (token, hint) in [
        (own.as_str(), "access_token"),
        ("unknown", "refresh_token"),
        ("unknown", "made_up"),
    ] {
        let reply = post_form(
            &server,
            "/revoke",
            Auth::Basic(id, secret),
            &[("token", token), ("token_type_hint", hint)],
        )
        .await;
        assert_eq!(reply.status, 200, "{token} {hint}");
    }
    let reply = post_form(
        &server,
        "/revoke",
        Auth::Basic(id, "chs_wrong"),
        &[("token", &for_api)],
    )
    .await;
    assert_invalid_client(&reply, "failed");
    assert_eq!(
        introspect(&server, &rs, &for_api).await["active"],
        true,
        "untouched"
    );
    server
}

// A new secret via RFC 7592 and via the admin API; the previous one works
// for the overlap, the one before it no longer.
async fn secret_rotation(server: TestServer) -> TestServer {
    let client = server.register(&cc_client("read")).await;
    let id = client["client_id"].as_str().unwrap();
    let first = client["client_secret"].as_str().unwrap().to_owned();

    let response = server
        .http
        .post(format!(
            "{}/rotate-secret",
            client["registration_client_uri"].as_str().unwrap()
        ))
        .bearer_auth(client["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let rotated: Value = response.json().await.unwrap();
    let second = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    assert!(rotated["client_secret_expires_at"].as_i64().unwrap() > charter_service::now());
    let with = |secret: String| {
        let server = &server;
        async move {
            post_form(
                server,
                "/token",
                Auth::Basic(id, &secret),
                &[("grant_type", "client_credentials")],
            )
            .await
            .status
        }
    };
    assert_eq!(with(second.clone()).await, 200, "the new secret works");
    assert_eq!(
        with(first.clone()).await,
        200,
        "the old one during the overlap"
    );
    // A wrong registration access token rotates nothing.
    let response = server
        .http
        .post(format!(
            "{}/rotate-secret",
            client["registration_client_uri"].as_str().unwrap()
        ))
        .bearer_auth("chr_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let (status, rotated) = server
        .admin_post(
            &format!("/admin/v1/clients/{id}/rotate-secret"),
            json!({"reason": "quarterly"}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let third = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(with(third).await, 200);
    assert_eq!(
        with(second.clone()).await,
        200,
        "the previous secret overlaps"
    );
    assert_eq!(with(first).await, 401, "two rotations ago: gone");

    // The overlap ends: the previous secret stops working.
    set_time(
        &server,
        &client,
        "previous_secret_expires_at",
        Some(charter_service::now() - 1),
    )
    .await;
    assert_eq!(with(second).await, 401);

    // Keys and public clients have no secret to rotate.
    let public = server
        .register(&json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}))
        .await;
    let public_id = public["client_id"].as_str().unwrap();
    let (status, _) = server
        .admin_post(
            &format!("/admin/v1/clients/{public_id}/rotate-secret"),
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(status, 400);
    server
}

// The reaper: expire at the end of life, delete after the retention, expire
// clients never used; each step audited. And the reports.
async fn reaper_and_reports(server: TestServer) -> TestServer {
    let used = server.register(&cc_client("read")).await;
    let ending = server.register(&cc_client("read")).await;
    let idle = server.register(&cc_client("read")).await;
    let now = charter_service::now();
    access_token(&server, &used).await;

    // last_used_at arrives with the next flush (every second here).
    let used_id = used["client_id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let report = server
            .admin_get("/admin/v1/reports/clients?status=active")
            .await;
        let row = report["clients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["client_id"] == used_id)
            .cloned()
            .unwrap();
        if row["last_used_at"].as_i64().is_some() {
            assert!(row["last_used_at"].as_i64().unwrap() >= now);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "last_used_at never flushed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // Reports: expiring within N days, unused for N days, counts.
    set_time(&server, &ending, "expires_at", Some(now + 2 * 86_400)).await;
    let report = server
        .admin_get("/admin/v1/reports/clients?expiring_within_days=3")
        .await;
    let ids: Vec<&Value> = report["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["client_id"])
        .collect();
    assert_eq!(ids, [&ending["client_id"]]);
    server
        .backdate_client(idle["client_id"].as_str().unwrap(), 40 * 86_400)
        .await;
    let report = server
        .admin_get("/admin/v1/reports/clients?unused_for_days=30")
        .await;
    let ids: Vec<&Value> = report["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["client_id"])
        .collect();
    assert_eq!(ids, [&idle["client_id"]]);
    let counts = server.admin_get("/admin/v1/reports/counts").await;
    assert!(
        counts["counts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["organization"] == "default"
                && c["registration_path"] == "iat"
                && c["status"] == "active"
                && c["count"] == 3),
        "{counts}"
    );
    let response = server
        .http
        .get(server.url("/admin/v1/reports/clients?status=sleeping"))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // The sweep: the ending client reaches its end, the idle one is expired
    // for never being used, the used one stays.
    set_time(&server, &ending, "expires_at", Some(now - 5)).await;
    let (status, swept) = server
        .admin_post("/admin/v1/lifecycle/sweep", json!({}))
        .await;
    assert_eq!(status, 200, "{swept}");
    assert_eq!(swept["expired"], json!([ending["client_id"]]));
    assert_eq!(swept["expired_unused"], json!([idle["client_id"]]));
    assert_eq!(swept["deleted"], json!([]));
    let read = server.read_client(&ending).await;
    assert_eq!(read["status"], "expired", "the owner sees why");
    assert_invalid_client(&token_for(&server, &ending, &[]).await, "register again");
    assert_eq!(token_for(&server, &used, &[]).await.status, 200);

    // After the retention period, expired clients are deleted.
    set_time(&server, &ending, "expires_at", Some(now - 8 * 86_400)).await;
    let (_, swept) = server
        .admin_post("/admin/v1/lifecycle/sweep", json!({}))
        .await;
    assert_eq!(swept["deleted"], json!([ending["client_id"]]));
    assert_invalid_client(&token_for(&server, &ending, &[]).await, "failed");

    // Each step is in the audit log.
    let audit = server
        .admin_get(&format!(
            "/admin/v1/audit?client_id={}",
            ending["client_id"].as_str().unwrap()
        ))
        .await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"]["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"client.expire") && actions.contains(&"client.reap"),
        "{actions:?}"
    );
    server
}

// A source that keeps failing gets 429 instead of 401, but a request whose
// credentials verify is never refused for its address: many clients share
// one behind a proxy or NAT.
async fn failures_block_only_failures(server: TestServer) -> TestServer {
    let client = server.register(&cc_client("read")).await;
    let id = client["client_id"].as_str().unwrap();
    let mut statuses = Vec::new();
    for _ in 0..70 {
        let reply = post_form(
            &server,
            "/token",
            Auth::Basic(id, "chs_guess"),
            &[("grant_type", "client_credentials")],
        )
        .await;
        statuses.push(reply.status);
    }
    assert_eq!(statuses[0], 401);
    assert_eq!(*statuses.last().unwrap(), 429, "{statuses:?}");
    assert_eq!(token_for(&server, &client, &[]).await.status, 200);
    server
}

on_both_backends!(options = super::options();
    failures_block_only_failures,
    secret_authentication,
    private_key_jwt,
    governance_at_point_of_use,
    introspection_and_revocation,
    secret_rotation,
    reaper_and_reports,
);
