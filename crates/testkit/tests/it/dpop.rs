//! DPoP (RFC 9449) over HTTP: proofs at the token endpoint for every grant,
//! server nonces, each way a proof can be wrong, DPoP-bound refresh tokens
//! of public clients, `dpop_jkt`, `dpop_bound_access_tokens`, a profile that
//! requires DPoP, and DPoP-bound tokens at the userinfo endpoint.
//!
//! Proofs are made here with the `p256` crate and the thumbprints computed
//! here (RFC 7638), independently of Charter's own JOSE code.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use charter_testkit::browser::{code_client_metadata, pkce, redirect_params, Browser};
use charter_testkit::{b64, json, now, on_both_backends, random, Options, TestServer};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

const PASSWORD: &str = "correct horse battery staple";
const REDIRECT: &str = "http://127.0.0.1:61234/cb";

/// RFC 9449 §4.2 `ath`: base64url SHA-256 of the access token.
fn ath(token: &str) -> String {
    b64(&Sha256::digest(token.as_bytes()))
}

/// An ES256 key a client proves possession of.
struct DpopKey {
    key: SigningKey,
}

impl DpopKey {
    fn new() -> Self {
        // 32 random bytes as the scalar; one outside the curve order is
        // astronomically unlikely.
        let seed = Sha256::digest(format!("{}{}", random(), random()).as_bytes());
        Self {
            key: SigningKey::from_slice(&seed).expect("P-256 scalar"),
        }
    }

    /// The public JWK (RFC 7518 §6.2.1).
    fn jwk(&self) -> Value {
        let point = self.key.verifying_key().to_encoded_point(false);
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": b64(point.x().expect("x")),
            "y": b64(point.y().expect("y")),
        })
    }

    /// The private JWK, with `d`.
    fn private_jwk(&self) -> Value {
        let mut jwk = self.jwk();
        jwk["d"] = json!(b64(&self.key.to_bytes()));
        jwk
    }

    /// RFC 7638 §3.2: SHA-256 over the required members in lexicographic
    /// order, without whitespace.
    fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().expect("x"),
            jwk["y"].as_str().expect("y")
        );
        b64(&Sha256::digest(canonical.as_bytes()))
    }

    /// The header of a well-formed proof (RFC 9449 §4.2).
    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()})
    }

    /// A compact JWS of `header` and `claims` signed with this key.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature: Signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", b64(&signature.to_bytes()))
    }

    /// A well-formed proof with `claims`.
    fn sign_claims(&self, claims: &Value) -> String {
        self.sign(&self.header(), claims)
    }

    /// A fresh, valid proof for `htm` `htu` with an optional nonce.
    fn proof(&self, htm: &str, htu: &str, nonce: Option<&str>) -> String {
        self.sign_claims(&claims(htm, htu, nonce))
    }

    /// A fresh, valid proof for a protected resource: with `ath`.
    fn resource_proof(&self, htm: &str, htu: &str, nonce: Option<&str>, token: &str) -> String {
        let mut claims = claims(htm, htu, nonce);
        claims["ath"] = json!(ath(token));
        self.sign_claims(&claims)
    }
}

/// Proof claims (RFC 9449 §4.2): a fresh `jti`, `iat` now.
fn claims(htm: &str, htu: &str, nonce: Option<&str>) -> Value {
    let mut claims = json!({"jti": random(), "htm": htm, "htu": htu, "iat": now()});
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    claims
}

/// Decodes a JWT's payload without verifying it.
fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

/// One HTTP answer with what DPoP tests look at.
struct Reply {
    status: u16,
    body: Value,
    /// Every `DPoP-Nonce` header value.
    nonces: Vec<String>,
    challenge: Option<String>,
}

impl Reply {
    async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let nonces = response
            .headers()
            .get_all("dpop-nonce")
            .iter()
            .map(|v| v.to_str().expect("ASCII nonce").to_owned())
            .collect();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.json().await.unwrap_or(Value::Null);
        Self {
            status,
            body,
            nonces,
            challenge,
        }
    }

    fn error(&self) -> (u16, Option<&str>) {
        (self.status, self.body["error"].as_str())
    }

    /// The one `DPoP-Nonce` header (RFC 9449 §8.1).
    fn nonce(&self) -> String {
        assert_eq!(
            self.nonces.len(),
            1,
            "exactly one DPoP-Nonce header: {:?}",
            self.nonces
        );
        let nonce = self.nonces[0].clone();
        assert!(nonce.len() >= 16, "an unpredictable nonce: {nonce:?}");
        nonce
    }

    fn description(&self) -> &str {
        self.body["error_description"].as_str().unwrap_or_default()
    }
}

/// How a token request authenticates its client.
#[derive(Clone, Copy)]
enum Client<'a> {
    /// `client_secret_basic`.
    Secret(&'a Value),
    /// A public client: `client_id` in the body.
    Public(&'a str),
}

/// POST /token with `form` and these `DPoP` header values.
async fn token(
    server: &TestServer,
    client: Client<'_>,
    form: &[(&str, &str)],
    proofs: &[&str],
) -> Reply {
    let mut fields: Vec<(&str, &str)> = form.to_vec();
    let mut request = server.http.post(server.url("/token"));
    match client {
        Client::Secret(c) => {
            request = request.basic_auth(
                c["client_id"].as_str().expect("client_id"),
                c["client_secret"].as_str(),
            );
        }
        Client::Public(id) => fields.push(("client_id", id)),
    }
    for proof in proofs {
        request = request.header("DPoP", *proof);
    }
    Reply::read(request.form(&fields).send().await.expect("token request")).await
}

async fn client_credentials(server: &TestServer, client: &Value, proofs: &[&str]) -> Reply {
    token(
        server,
        Client::Secret(client),
        &[("grant_type", "client_credentials")],
        proofs,
    )
    .await
}

/// GET /userinfo with `authorization` and these `DPoP` header values.
async fn userinfo(server: &TestServer, authorization: &str, proofs: &[&str]) -> Reply {
    let mut request = server
        .http
        .get(server.url("/userinfo"))
        .header("Authorization", authorization);
    for proof in proofs {
        request = request.header("DPoP", *proof);
    }
    Reply::read(request.send().await.expect("userinfo request")).await
}

fn cc_client() -> Value {
    json!({"grant_types": ["client_credentials"], "scope": "read", "client_name": "svc"})
}

/// The server's current nonce, from a first proof without one.
async fn fetch_nonce(server: &TestServer, client: &Value, key: &DpopKey) -> String {
    let first = client_credentials(
        server,
        client,
        &[&key.proof("POST", &server.url("/token"), None)],
    )
    .await;
    assert_eq!(
        first.error(),
        (400, Some("use_dpop_nonce")),
        "{}",
        first.body
    );
    first.nonce()
}

fn assert_invalid_proof(reply: &Reply, case: &str) {
    assert_eq!(
        reply.error(),
        (400, Some("invalid_dpop_proof")),
        "{case}: {}",
        reply.body
    );
}

/// Signs alice in and consents as needed; returns the code and the PKCE
/// verifier for an authorization request with `extra` parameters.
async fn authorize(
    server: &TestServer,
    browser: &mut Browser,
    client_id: &str,
    extra: &[(&str, &str)],
) -> (String, String) {
    let (verifier, challenge) = pkce();
    let state = random();
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile"),
        ("state", state.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    params.extend_from_slice(extra);
    let mut page = browser.get(&server.authorize_url(&params)).await;
    for _ in 0..3 {
        if page.status != 200 {
            break;
        }
        let form = page
            .form()
            .unwrap_or_else(|| panic!("no form in {}", page.body));
        page = if form.action.ends_with("/authorize/login") {
            browser.login(&page, "alice", PASSWORD).await
        } else {
            browser.consent(&page, "allow").await
        };
    }
    assert_eq!(page.status, 303, "{}", page.body);
    let params = redirect_params(page.location().expect("Location"));
    assert_eq!(params.get("state"), Some(&state), "{params:?}");
    let code = params
        .get("code")
        .unwrap_or_else(|| panic!("no code: {params:?}"))
        .clone();
    (code, verifier)
}

fn code_form<'a>(code: &'a str, verifier: &'a str) -> [(&'a str, &'a str); 4] {
    [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ]
}

/// A public client's DPoP-bound tokens through the code flow: the token
/// response.
async fn dpop_code_tokens(
    server: &TestServer,
    browser: &mut Browser,
    client_id: &str,
    key: &DpopKey,
    nonce: Option<&str>,
) -> Value {
    let (code, verifier) = authorize(server, browser, client_id, &[]).await;
    let reply = token(
        server,
        Client::Public(client_id),
        &code_form(&code, &verifier),
        &[&key.proof("POST", &server.url("/token"), nonce)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["token_type"], "DPoP");
    reply.body
}

// DPOP-10, DPOP-11, DPOP-17, DPOP-18: client_credentials with a proof, the
// nonce round trip, cnf.jkt in the token and in introspection.
async fn client_credentials_bound_to_the_key(server: TestServer) -> TestServer {
    let metadata = server
        .get_json(&server.url("/.well-known/openid-configuration"))
        .await;
    let algs = metadata["dpop_signing_alg_values_supported"]
        .as_array()
        .unwrap_or_else(|| panic!("dpop_signing_alg_values_supported: {metadata}"));
    assert!(algs.contains(&json!("ES256")), "{algs:?}");
    assert!(
        !algs.iter().any(|a| a == "none" || a == "HS256"),
        "{algs:?}"
    );

    let client = server.register(&cc_client()).await;
    let key = DpopKey::new();
    let htu = server.url("/token");

    // RFC 9449 §8: a proof without the nonce the server requires.
    let first = client_credentials(&server, &client, &[&key.proof("POST", &htu, None)]).await;
    assert_eq!(
        first.error(),
        (400, Some("use_dpop_nonce")),
        "{}",
        first.body
    );
    let nonce = first.nonce();

    let reply =
        client_credentials(&server, &client, &[&key.proof("POST", &htu, Some(&nonce))]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["token_type"], "DPoP");
    // §8.2: the next nonce travels with the answer.
    reply.nonce();
    let access_token = reply.body["access_token"].as_str().expect("access_token");
    let claims = jwt_claims(access_token);
    assert_eq!(claims["cnf"]["jkt"], key.thumbprint(), "{claims}");

    // §6.2: introspection shows the binding; it checks no proof itself.
    let answer = server
        .http
        .post(server.url("/introspect"))
        .basic_auth(
            client["client_id"].as_str().expect("client_id"),
            client["client_secret"].as_str(),
        )
        .form(&[("token", access_token)])
        .send()
        .await
        .expect("introspection");
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.expect("JSON");
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["cnf"]["jkt"], key.thumbprint(), "{answer}");
    assert_eq!(answer["token_type"], "DPoP", "{answer}");

    // Without a proof the same client still gets a Bearer token.
    let bearer = client_credentials(&server, &client, &[]).await;
    assert_eq!(bearer.status, 200, "{}", bearer.body);
    assert_eq!(bearer.body["token_type"], "Bearer");
    let claims = jwt_claims(bearer.body["access_token"].as_str().expect("token"));
    assert!(claims.get("cnf").is_none(), "{claims}");
    server
}

// DPOP-01..DPOP-10: each defect of a proof at the token endpoint.
async fn proof_failures_at_the_token_endpoint(server: TestServer) -> TestServer {
    let client = server.register(&cc_client()).await;
    let key = DpopKey::new();
    let other = DpopKey::new();
    let htu = server.url("/token");
    let nonce = fetch_nonce(&server, &client, &key).await;
    let nonce = Some(nonce.as_str());
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = claims("POST", &htu, nonce);
        change(&mut claims);
        claims
    };

    let other_host = htu.replacen("127.0.0.1", "localhost", 1);
    let cases: Vec<(&str, String)> = vec![
        ("htm GET", key.proof("GET", &htu, nonce)),
        ("htm lowercase", key.proof("post", &htu, nonce)),
        (
            "htu other path",
            key.proof("POST", &server.url("/introspect"), nonce),
        ),
        ("htu other host", key.proof("POST", &other_host, nonce)),
        (
            "htu https",
            key.proof("POST", &htu.replacen("http:", "https:", 1), nonce),
        ),
        (
            "stale iat",
            key.sign_claims(&with(&|c| c["iat"] = json!(now() - 600))),
        ),
        (
            "future iat",
            key.sign_claims(&with(&|c| c["iat"] = json!(now() + 600))),
        ),
        (
            "iat a string",
            key.sign_claims(&with(&|c| c["iat"] = json!(now().to_string()))),
        ),
        (
            "no jti",
            key.sign_claims(&with(&|c| {
                c.as_object_mut().expect("object").remove("jti");
            })),
        ),
        (
            "no htm",
            key.sign_claims(&with(&|c| {
                c.as_object_mut().expect("object").remove("htm");
            })),
        ),
        (
            "no htu",
            key.sign_claims(&with(&|c| {
                c.as_object_mut().expect("object").remove("htu");
            })),
        ),
        (
            "no iat",
            key.sign_claims(&with(&|c| {
                c.as_object_mut().expect("object").remove("iat");
            })),
        ),
        (
            "typ jwt",
            key.sign(
                &json!({"typ": "jwt", "alg": "ES256", "jwk": key.jwk()}),
                &with(&|_| {}),
            ),
        ),
        (
            "no typ",
            key.sign(&json!({"alg": "ES256", "jwk": key.jwk()}), &with(&|_| {})),
        ),
        (
            "no jwk",
            key.sign(&json!({"typ": "dpop+jwt", "alg": "ES256"}), &with(&|_| {})),
        ),
        (
            "jwk with d",
            key.sign(
                &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.private_jwk()}),
                &with(&|_| {}),
            ),
        ),
        (
            "signed by another key",
            other.sign(&key.header(), &with(&|_| {})),
        ),
        ("garbage", "not-a-jwt".to_owned()),
        ("two parts", {
            let proof = key.sign_claims(&with(&|_| {}));
            proof.rsplit_once('.').expect("three parts").0.to_owned()
        }),
    ];
    for (case, proof) in &cases {
        let reply = client_credentials(&server, &client, &[proof]).await;
        assert_invalid_proof(&reply, case);
        // Refused for the defect the case is about.
        let mentions = match *case {
            "jwk with d" => "private",
            "signed by another key" => "signature",
            "garbage" | "two parts" => "JWS",
            _ => case
                .split(' ')
                .find(|w| ["htm", "htu", "iat", "jti", "typ", "jwk"].contains(w))
                .expect("a claim or header member in the case name"),
        };
        assert!(
            reply.description().contains(mentions),
            "{case}: {:?} should mention {mentions:?}",
            reply.description()
        );
    }

    // alg none: no signature at all; HS256: a MAC keyed with something the
    // attacker knows. Both are outside the asymmetric allowlist.
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk()})
            .to_string()
            .as_bytes()),
        b64(with(&|_| {}).to_string().as_bytes())
    );
    let reply = client_credentials(&server, &client, &[&unsigned]).await;
    assert_invalid_proof(&reply, "alg none");
    assert!(reply.description().contains("alg"), "{}", reply.body);
    let header = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": key.jwk()});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(with(&|_| {}).to_string().as_bytes())
    );
    let mac = hmac_sha256(key.jwk().to_string().as_bytes(), input.as_bytes());
    let reply = client_credentials(&server, &client, &[&format!("{input}.{}", b64(&mac))]).await;
    assert_invalid_proof(&reply, "alg HS256");
    assert!(reply.description().contains("alg"), "{}", reply.body);

    // DPOP-01: two DPoP headers, each a valid proof.
    let reply = client_credentials(
        &server,
        &client,
        &[
            &key.proof("POST", &htu, nonce),
            &key.proof("POST", &htu, nonce),
        ],
    )
    .await;
    assert_invalid_proof(&reply, "two DPoP headers");

    // DPOP-09: a proof is single-use.
    let once = key.proof("POST", &htu, nonce);
    let reply = client_credentials(&server, &client, &[&once]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = client_credentials(&server, &client, &[&once]).await;
    assert_invalid_proof(&reply, "replayed jti");
    // The same jti in a new proof is a replay too.
    let mut reused = claims("POST", &htu, nonce);
    reused["jti"] = jwt_claims(&once)["jti"].clone();
    let reply = client_credentials(&server, &client, &[&key.sign_claims(&reused)]).await;
    assert_invalid_proof(&reply, "replayed jti in a new proof");

    // DPOP-10: a nonce the server did not issue, or an empty one.
    for bad in ["0.AAAAAAAAAAAAAAAAAAAAAAAA", "made-up", ""] {
        let reply =
            client_credentials(&server, &client, &[&key.proof("POST", &htu, Some(bad))]).await;
        assert_eq!(
            reply.error(),
            (400, Some("use_dpop_nonce")),
            "nonce {bad:?}: {}",
            reply.body
        );
        // A fresh nonce that works.
        let fresh = reply.nonce();
        let reply =
            client_credentials(&server, &client, &[&key.proof("POST", &htu, Some(&fresh))]).await;
        assert_eq!(reply.status, 200, "fresh nonce: {}", reply.body);
    }

    // DPOP-07 (SHOULD): htu compared after normalisation; the query is
    // ignored.
    let port_host = htu.trim_start_matches("http://");
    for variant in [
        format!("HTTP://{port_host}"),
        format!("{htu}?x=1"),
        format!("{htu}#frag"),
        htu.replacen("/token", "/./token", 1),
    ] {
        let reply =
            client_credentials(&server, &client, &[&key.proof("POST", &variant, nonce)]).await;
        assert_eq!(reply.status, 200, "htu {variant}: {}", reply.body);
        assert_eq!(reply.body["token_type"], "DPoP");
    }
    // An iat a little in the past is within the window.
    let recent = key.sign_claims(&with(&|c| c["iat"] = json!(now() - 20)));
    let reply = client_credentials(&server, &client, &[&recent]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    server
}

/// RFC 2104 HMAC-SHA-256, for a forged HS256 proof.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

fn require_dpop_options() -> Options {
    Options {
        extra_toml: r#"
[policy]
version = "t-dpop"
default_profile = "open"

[policy.profiles.open]

[policy.profiles.strict]
require_dpop = true
"#
        .into(),
        ..Default::default()
    }
}

/// A client registered with an initial access token for `profile`.
async fn register_under(server: &TestServer, profile: &str, body: &Value) -> Value {
    let iat = server.mint_iat(&json!({ "profile": profile })).await;
    let response = server.register_with(Some(&iat), body).await;
    let status = response.status();
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(status, 201, "registration failed: {body}");
    body
}

// DPOP-13 and the profile's require_dpop: no token without a proof, for
// client_credentials and for the authorization code.
async fn dpop_required(server: TestServer) -> TestServer {
    server.create_user("alice", PASSWORD).await;
    let key = DpopKey::new();
    let htu = server.url("/token");

    let mut bound = cc_client();
    bound["dpop_bound_access_tokens"] = json!(true);
    let registered = register_under(&server, "open", &bound).await;
    assert_eq!(registered["dpop_bound_access_tokens"], true, "{registered}");
    let strict = register_under(&server, "strict", &cc_client()).await;
    let open = register_under(&server, "open", &cc_client()).await;

    let nonce = fetch_nonce(&server, &open, &key).await;
    for (case, client) in [
        ("dpop_bound_access_tokens", &registered),
        ("require_dpop", &strict),
    ] {
        let reply = client_credentials(&server, client, &[]).await;
        assert_invalid_proof(&reply, case);
        let reply =
            client_credentials(&server, client, &[&key.proof("POST", &htu, Some(&nonce))]).await;
        assert_eq!(reply.status, 200, "{case}: {}", reply.body);
        assert_eq!(reply.body["token_type"], "DPoP", "{case}");
    }
    let reply = client_credentials(&server, &open, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["token_type"], "Bearer");

    // The same at the code exchange and the refresh, for public clients
    // and for confidential ones, whose refresh tokens are bound by their
    // authentication rather than the key (RFC 9449 §5).
    let code_client = |extra: Value| {
        let mut body = code_client_metadata(extra);
        body["scope"] = json!("openid profile");
        body
    };
    let bound = json!({"dpop_bound_access_tokens": true});
    let secret = json!({"token_endpoint_auth_method": "client_secret_basic"});
    let secret_bound = json!({
        "token_endpoint_auth_method": "client_secret_basic",
        "dpop_bound_access_tokens": true,
    });
    let clients = [
        ("public, dpop_bound_access_tokens", "open", bound),
        ("public, require_dpop", "strict", json!({})),
        (
            "confidential, dpop_bound_access_tokens",
            "open",
            secret_bound,
        ),
        ("confidential, require_dpop", "strict", secret),
    ];
    let mut browser = Browser::new();
    for (case, profile, extra) in clients {
        let client = register_under(&server, profile, &code_client(extra)).await;
        let client_id = client["client_id"].as_str().expect("client_id");
        let auth = if client.get("client_secret").is_some() {
            Client::Secret(&client)
        } else {
            Client::Public(client_id)
        };
        let (code, verifier) = authorize(&server, &mut browser, client_id, &[]).await;
        let form = code_form(&code, &verifier);
        let reply = token(&server, auth, &form, &[]).await;
        assert_invalid_proof(&reply, &format!("{case}: code exchange without a proof"));
        assert!(reply.body.get("access_token").is_none(), "{}", reply.body);
        // Refused before the code was spent: with a proof it still works.
        let reply = token(
            &server,
            auth,
            &form,
            &[&key.proof("POST", &htu, Some(&nonce))],
        )
        .await;
        assert_eq!(reply.status, 200, "{case}: {}", reply.body);
        assert_eq!(reply.body["token_type"], "DPoP", "{case}");
        let refresh = reply.body["refresh_token"].as_str().expect("refresh_token");
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
        let reply = token(&server, auth, &form, &[]).await;
        assert_invalid_proof(&reply, &format!("{case}: refresh without a proof"));
        let reply = token(
            &server,
            auth,
            &form,
            &[&key.proof("POST", &htu, Some(&nonce))],
        )
        .await;
        assert_eq!(reply.status, 200, "{case}: {}", reply.body);
        assert_eq!(reply.body["token_type"], "DPoP", "{case}");
    }
    server
}

// DPOP-12, DPOP-14: a public client's code exchange with a proof binds the
// refresh token to the key; dpop_jkt binds the code to a key.
async fn code_flow_binds_refresh_tokens(server: TestServer) -> TestServer {
    let user = server.create_user("alice", PASSWORD).await;
    let client = server.register_code_client(json!({})).await;
    let client_id = client["client_id"].as_str().expect("client_id");
    let key = DpopKey::new();
    let other = DpopKey::new();
    let htu = server.url("/token");
    let mut browser = Browser::new();

    // The nonce round trip does not spend the code.
    let (code, verifier) = authorize(&server, &mut browser, client_id, &[]).await;
    let form = code_form(&code, &verifier);
    let first = token(
        &server,
        Client::Public(client_id),
        &form,
        &[&key.proof("POST", &htu, None)],
    )
    .await;
    assert_eq!(
        first.error(),
        (400, Some("use_dpop_nonce")),
        "{}",
        first.body
    );
    let nonce = first.nonce();
    let nonce = Some(nonce.as_str());
    let reply = token(
        &server,
        Client::Public(client_id),
        &form,
        &[&key.proof("POST", &htu, nonce)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["token_type"], "DPoP");
    reply.nonce();
    let access = jwt_claims(reply.body["access_token"].as_str().expect("access_token"));
    assert_eq!(access["sub"], user.as_str());
    assert_eq!(access["cnf"]["jkt"], key.thumbprint(), "{access}");
    assert!(reply.body["id_token"].is_string(), "{}", reply.body);
    let refresh = reply.body["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned();

    let refresh_with = |refresh_token: String, proof: Option<String>| {
        let server = &server;
        async move {
            let form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
            ];
            let proofs: Vec<&str> = proof.iter().map(String::as_str).collect();
            token(server, Client::Public(client_id), &form, &proofs).await
        }
    };

    // Without a proof, or with another key's: refused, and the refresh
    // token is not spent.
    let reply = refresh_with(refresh.clone(), None).await;
    assert_invalid_proof(&reply, "refresh without a proof");
    let reply = refresh_with(refresh.clone(), Some(other.proof("POST", &htu, nonce))).await;
    assert_invalid_proof(&reply, "refresh with another key");
    // With the key: a new refresh token, still bound.
    let reply = refresh_with(refresh.clone(), Some(key.proof("POST", &htu, nonce))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["token_type"], "DPoP");
    let access = jwt_claims(reply.body["access_token"].as_str().expect("access_token"));
    assert_eq!(access["cnf"]["jkt"], key.thumbprint(), "{access}");
    let rotated = reply.body["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned();
    assert_ne!(rotated, refresh);
    let reply = refresh_with(rotated.clone(), None).await;
    assert_invalid_proof(&reply, "rotated refresh token without a proof");
    let reply = refresh_with(rotated.clone(), Some(other.proof("POST", &htu, nonce))).await;
    assert_invalid_proof(&reply, "rotated refresh token with another key");
    let reply = refresh_with(rotated, Some(key.proof("POST", &htu, nonce))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // DPOP-14: dpop_jkt names the key; a proof by another key, or none, is
    // refused; the named key succeeds.
    let jkt = key.thumbprint();
    for (case, proofs) in [
        ("another key", vec![other.proof("POST", &htu, nonce)]),
        ("no proof", vec![]),
    ] {
        let (code, verifier) =
            authorize(&server, &mut browser, client_id, &[("dpop_jkt", &jkt)]).await;
        let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let reply = token(
            &server,
            Client::Public(client_id),
            &code_form(&code, &verifier),
            &proofs,
        )
        .await;
        assert_invalid_proof(&reply, &format!("dpop_jkt with {case}"));
        assert!(reply.body.get("access_token").is_none(), "{}", reply.body);
    }
    let (code, verifier) = authorize(&server, &mut browser, client_id, &[("dpop_jkt", &jkt)]).await;
    let reply = token(
        &server,
        Client::Public(client_id),
        &code_form(&code, &verifier),
        &[&key.proof("POST", &htu, nonce)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        jwt_claims(reply.body["access_token"].as_str().expect("token"))["cnf"]["jkt"],
        jkt
    );
    server
}

// DPOP-19: a DPoP-bound token at the userinfo endpoint.
async fn userinfo_with_dpop_bound_token(server: TestServer) -> TestServer {
    let user = server.create_user("alice", PASSWORD).await;
    let client = server.register_code_client(json!({})).await;
    let client_id = client["client_id"].as_str().expect("client_id");
    let key = DpopKey::new();
    let other = DpopKey::new();
    let mut browser = Browser::new();
    let token_htu = server.url("/token");
    let nonce = {
        let (code, verifier) = authorize(&server, &mut browser, client_id, &[]).await;
        let first = token(
            &server,
            Client::Public(client_id),
            &code_form(&code, &verifier),
            &[&key.proof("POST", &token_htu, None)],
        )
        .await;
        assert_eq!(first.error(), (400, Some("use_dpop_nonce")));
        first.nonce()
    };
    let tokens = dpop_code_tokens(&server, &mut browser, client_id, &key, Some(&nonce)).await;
    let access_token = tokens["access_token"].as_str().expect("access_token");
    let dpop_auth = format!("DPoP {access_token}");
    let htu = server.url("/userinfo");
    assert_eq!(htu, format!("{}/userinfo", server.issuer));

    // The resource's own nonce round (RFC 9449 §9): 401 with the challenge.
    let first = userinfo(
        &server,
        &dpop_auth,
        &[&key.resource_proof("GET", &htu, None, access_token)],
    )
    .await;
    assert_eq!(first.status, 401, "{}", first.body);
    let challenge = first.challenge.clone().unwrap_or_default();
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    assert!(
        challenge.contains("error=\"use_dpop_nonce\""),
        "{challenge}"
    );
    let nonce = first.nonce();
    let nonce = Some(nonce.as_str());

    let reply = userinfo(
        &server,
        &dpop_auth,
        &[&key.resource_proof("GET", &htu, nonce, access_token)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["sub"], user.as_str());
    assert_eq!(reply.body["preferred_username"], "alice");

    let expect_401 = |reply: &Reply, error: &str, case: &str| {
        assert_eq!(reply.status, 401, "{case}: {}", reply.body);
        let challenge = reply.challenge.as_deref().unwrap_or_default();
        assert!(
            challenge.contains(&format!("error=\"{error}\"")),
            "{case}: {challenge:?}"
        );
    };
    let check = |mut claims: Value, change: &dyn Fn(&mut Value)| {
        change(&mut claims);
        claims
    };
    let base = || {
        let mut claims = claims("GET", &htu, nonce);
        claims["ath"] = json!(ath(access_token));
        claims
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "missing ath",
            key.sign_claims(&claims("GET", &htu, nonce)),
            "invalid_dpop_proof",
        ),
        (
            "wrong ath",
            key.sign_claims(&check(base(), &|c| c["ath"] = json!(ath("another token")))),
            "invalid_dpop_proof",
        ),
        (
            "htu of the token endpoint",
            key.resource_proof("GET", &token_htu, nonce, access_token),
            "invalid_dpop_proof",
        ),
        (
            "htm POST",
            key.resource_proof("POST", &htu, nonce, access_token),
            "invalid_dpop_proof",
        ),
        (
            "stale iat",
            key.sign_claims(&check(base(), &|c| c["iat"] = json!(now() - 600))),
            "invalid_dpop_proof",
        ),
        (
            "another key",
            other.resource_proof("GET", &htu, nonce, access_token),
            "invalid_token",
        ),
    ];
    for (case, proof, error) in &cases {
        let reply = userinfo(&server, &dpop_auth, &[proof]).await;
        expect_401(&reply, error, case);
    }
    // A proof is single-use here too.
    let once = key.resource_proof("GET", &htu, nonce, access_token);
    let reply = userinfo(&server, &dpop_auth, &[&once]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = userinfo(&server, &dpop_auth, &[&once]).await;
    expect_401(&reply, "invalid_dpop_proof", "replayed proof");
    // The DPoP scheme without a proof; the Bearer scheme for a bound token.
    let reply = userinfo(&server, &dpop_auth, &[]).await;
    expect_401(&reply, "invalid_dpop_proof", "no proof");
    let reply = userinfo(&server, &format!("Bearer {access_token}"), &[]).await;
    assert_eq!(reply.status, 401, "Bearer scheme: {}", reply.body);
    let reply = userinfo(
        &server,
        &format!("Bearer {access_token}"),
        &[&key.resource_proof("GET", &htu, nonce, access_token)],
    )
    .await;
    assert_eq!(
        reply.status, 401,
        "Bearer scheme with a proof: {}",
        reply.body
    );
    // Two proofs.
    let reply = userinfo(
        &server,
        &dpop_auth,
        &[
            &key.resource_proof("GET", &htu, nonce, access_token),
            &key.resource_proof("GET", &htu, nonce, access_token),
        ],
    )
    .await;
    expect_401(&reply, "invalid_dpop_proof", "two proofs");
    server
}

fn no_nonce_options() -> Options {
    Options {
        extra_toml: "[dpop]\nrequire_nonce = false\n".into(),
        ..Default::default()
    }
}

// DPOP-10 is a MAY: with require_nonce = false a first proof is enough.
async fn nonce_not_required(server: TestServer) -> TestServer {
    server.create_user("alice", PASSWORD).await;
    let key = DpopKey::new();
    let client = server.register(&cc_client()).await;
    let reply = client_credentials(
        &server,
        &client,
        &[&key.proof("POST", &server.url("/token"), None)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["token_type"], "DPoP");
    let claims = jwt_claims(reply.body["access_token"].as_str().expect("token"));
    assert_eq!(claims["cnf"]["jkt"], key.thumbprint());

    let code_client = server.register_code_client(json!({})).await;
    let client_id = code_client["client_id"].as_str().expect("client_id");
    let mut browser = Browser::new();
    let tokens = dpop_code_tokens(&server, &mut browser, client_id, &key, None).await;
    let access_token = tokens["access_token"].as_str().expect("access_token");
    let reply = userinfo(
        &server,
        &format!("DPoP {access_token}"),
        &[&key.resource_proof("GET", &server.url("/userinfo"), None, access_token)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Other checks still apply.
    let reply = client_credentials(
        &server,
        &client,
        &[&key.proof("GET", &server.url("/token"), None)],
    )
    .await;
    assert_invalid_proof(&reply, "htm GET without nonces");
    server
}

on_both_backends!(
    client_credentials_bound_to_the_key,
    proof_failures_at_the_token_endpoint,
    code_flow_binds_refresh_tokens,
    userinfo_with_dpop_bound_token,
);
on_both_backends!(options = super::require_dpop_options(); dpop_required);
on_both_backends!(options = super::no_nonce_options(); nonce_not_required);
