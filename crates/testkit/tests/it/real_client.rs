//! Interoperability at the point of use: an independent OAuth client
//! library (`openidconnect`, on `oauth2`) obtains `client_credentials`
//! access tokens (RFC 6749 §4.4) with each client authentication method,
//! and introspects them (RFC 7662); an independent JWT library
//! (`jsonwebtoken`) signs the `private_key_jwt` assertions (RFC 7523) and
//! verifies the issued access tokens as a resource server would (RFC 9068
//! §4) against the published JWK Set. Charter's own JOSE code is used only
//! to generate the client's key pair.

use charter_jose::{Algorithm as KeyAlgorithm, SigningKey};
use charter_testkit::{json, on_both_backends, TestServer};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use openidconnect::core::{
    CoreClient, CoreErrorResponseType, CoreJsonWebKeySet, CoreProviderMetadata,
    CoreTokenIntrospectionResponse, CoreTokenResponse, CoreTokenType,
};
use openidconnect::{
    AccessToken, AuthType, ClientId, ClientSecret, EndpointNotSet, EndpointSet, HttpClientError,
    IntrospectionUrl, IssuerUrl, OAuth2TokenResponse, RequestTokenError, StandardErrorResponse,
    TokenIntrospectionResponse, TokenUrl,
};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The server's default `tokens.access_token_lifetime`.
const DEFAULT_LIFETIME_SECS: u64 = 600;

/// A client with the token and introspection endpoints set.
type TokenClient =
    CoreClient<EndpointNotSet, EndpointNotSet, EndpointSet, EndpointNotSet, EndpointSet>;
type TokenError = RequestTokenError<
    HttpClientError<openidconnect::reqwest::Error>,
    StandardErrorResponse<CoreErrorResponseType>,
>;

/// The library's HTTP client, with redirects disabled as its docs require.
fn http_client() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client")
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// What a client learns from the provider's metadata (OIDC Discovery §4).
struct Provider {
    issuer: String,
    token_endpoint: String,
    introspection_endpoint: String,
    revocation_endpoint: String,
    jwks_uri: String,
    metadata: Value,
}

impl Provider {
    fn supports(&self, member: &str, value: &str) -> bool {
        self.metadata[member]
            .as_array()
            .is_some_and(|values| values.iter().any(|v| v == value))
    }

    /// A library client for `client_id`, configured from the metadata alone.
    fn client(&self, client_id: &str, secret: Option<&str>, auth: AuthType) -> TokenClient {
        let client = CoreClient::new(
            ClientId::new(client_id.to_owned()),
            IssuerUrl::new(self.issuer.clone()).expect("issuer URL"),
            CoreJsonWebKeySet::default(),
        )
        .set_auth_type(auth)
        .set_token_uri(TokenUrl::new(self.token_endpoint.clone()).expect("token URL"))
        .set_introspection_url(
            IntrospectionUrl::new(self.introspection_endpoint.clone()).expect("introspection URL"),
        );
        match secret {
            Some(secret) => client.set_client_secret(ClientSecret::new(secret.to_owned())),
            None => client,
        }
    }
}

/// Discovery from the issuer identifier: the OpenID Provider metadata, read
/// as plain JSON (see `library_discovers_the_provider` for why not with
/// the library's `CoreProviderMetadata`).
async fn discover(server: &TestServer) -> Provider {
    let issuer = IssuerUrl::new(server.issuer.clone()).expect("issuer URL");
    let url = issuer
        .join(".well-known/openid-configuration")
        .expect("metadata URL");
    // The issuer has no path: joining must give the document under the host root.
    assert_eq!(
        url.as_str(),
        server.url("/.well-known/openid-configuration")
    );
    let response = http_client()
        .get(url.as_str())
        .send()
        .await
        .expect("metadata request");
    assert_eq!(response.status().as_u16(), 200, "{url}");
    let metadata: Value = response.json().await.expect("metadata JSON");
    assert_eq!(
        metadata["issuer"],
        server.issuer.as_str(),
        "OIDC Discovery §4.3: the issuer is the one discovery started from"
    );
    let endpoint = |member: &str| {
        metadata[member]
            .as_str()
            .unwrap_or_else(|| panic!("{member} in {metadata}"))
            .to_owned()
    };
    assert!(metadata["grant_types_supported"]
        .as_array()
        .is_some_and(|g| g.iter().any(|g| g == "client_credentials")));
    Provider {
        issuer: endpoint("issuer"),
        token_endpoint: endpoint("token_endpoint"),
        introspection_endpoint: endpoint("introspection_endpoint"),
        revocation_endpoint: endpoint("revocation_endpoint"),
        jwks_uri: endpoint("jwks_uri"),
        metadata,
    }
}

/// The published JWK Set, parsed by jsonwebtoken.
async fn fetch_jwks(provider: &Provider) -> JwkSet {
    let response = http_client()
        .get(&provider.jwks_uri)
        .send()
        .await
        .expect("JWKS request");
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.expect("JWKS body");
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("jsonwebtoken rejects the JWKS ({e}): {text}"))
}

/// RFC 9068 §4 as a resource server does it, with jsonwebtoken: the key
/// the header's `kid` names in the published JWK Set, `typ` at+jwt, `iss`,
/// `aud`, `exp`; then the claims RFC 9068 §2.2 requires. Returns the claims.
async fn verify_access_token(
    provider: &Provider,
    token: &CoreTokenResponse,
    client_id: &str,
) -> Value {
    assert_eq!(*token.token_type(), CoreTokenType::Bearer);
    let expires_in = token
        .expires_in()
        .expect("expires_in (RFC 6749 §5.1 RECOMMENDED)")
        .as_secs();
    assert_eq!(expires_in, DEFAULT_LIFETIME_SECS);
    let jwt = token.access_token().secret();

    let header = jsonwebtoken::decode_header(jwt).expect("a JWS compact serialization");
    assert_eq!(
        header.typ.as_deref(),
        Some("at+jwt"),
        "RFC 9068 §2.1: typ at+jwt"
    );
    assert_eq!(header.alg, Algorithm::ES256, "the default signing_alg");
    let kid = header.kid.expect("kid in the header");
    let jwks = fetch_jwks(provider).await;
    let jwk = jwks
        .find(&kid)
        .unwrap_or_else(|| panic!("kid {kid} is not in the published JWK Set"));
    let key = DecodingKey::from_jwk(jwk).expect("a usable public key");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.leeway = 0;
    validation.set_issuer(&[&provider.issuer]);
    validation.set_audience(&[&provider.issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .unwrap_or_else(|e| panic!("jsonwebtoken does not verify the access token: {e}"))
        .claims;

    assert_eq!(claims["iss"], provider.issuer.as_str());
    assert_eq!(
        claims["aud"],
        provider.issuer.as_str(),
        "without a resource the audience is the issuer"
    );
    assert_eq!(claims["sub"], client_id, "RFC 9068 §2.2: sub is the client");
    assert_eq!(claims["client_id"], client_id);
    let iat = claims["iat"].as_i64().expect("iat");
    let exp = claims["exp"].as_i64().expect("exp");
    assert_eq!(exp - iat, expires_in as i64, "exp - iat = expires_in");
    assert!((iat - unix_now()).abs() <= 5, "iat {iat} is now");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));

    // The same token with one signature character changed does not verify.
    let (signed, signature) = jwt.rsplit_once('.').expect("three parts");
    let mut altered: Vec<char> = signature.chars().collect();
    altered[10] = if altered[10] == 'A' { 'B' } else { 'A' };
    let forged = format!("{signed}.{}", altered.into_iter().collect::<String>());
    assert!(jsonwebtoken::decode::<Value>(&forged, &key, &validation).is_err());
    // Nor under a key that did not make it.
    let stranger = SigningKey::generate(KeyAlgorithm::Es256).expect("key pair");
    let stranger: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(stranger.public_jwk()).expect("a JWK");
    let stranger = DecodingKey::from_jwk(&stranger).expect("a usable public key");
    assert!(jsonwebtoken::decode::<Value>(jwt, &stranger, &validation).is_err());
    claims
}

/// The library's own introspection call and response type (RFC 7662 §2.2).
async fn introspect(
    client: &TokenClient,
    token: &str,
    extra: &[(&str, String)],
) -> CoreTokenIntrospectionResponse {
    let token = AccessToken::new(token.to_owned());
    let mut request = client.introspect(&token);
    for (name, value) in extra {
        request = request.add_extra_param(*name, value.clone());
    }
    request
        .request_async(&http_client())
        .await
        .unwrap_or_else(|e| panic!("the library's introspection failed: {e:?}"))
}

fn assert_active(answer: &CoreTokenIntrospectionResponse, claims: &Value, client_id: &str) {
    assert!(answer.active(), "{answer:?}");
    assert_eq!(answer.client_id().map(|c| c.as_str()), Some(client_id));
    assert_eq!(answer.sub(), Some(client_id));
    assert_eq!(answer.iss(), claims["iss"].as_str());
    assert_eq!(
        answer
            .aud()
            .map(|a| a.iter().map(String::as_str).collect::<Vec<_>>()),
        Some(vec![claims["iss"].as_str().expect("iss")])
    );
    assert_eq!(answer.jti(), claims["jti"].as_str());
    assert_eq!(answer.exp().map(|t| t.timestamp()), claims["exp"].as_i64());
    assert_eq!(answer.iat().map(|t| t.timestamp()), claims["iat"].as_i64());
    assert_eq!(answer.token_type(), Some(&CoreTokenType::Bearer));
}

fn expect_invalid_client(result: Result<CoreTokenResponse, TokenError>, what: &str) {
    match result {
        Err(RequestTokenError::ServerResponse(error)) => {
            assert_eq!(
                *error.error(),
                CoreErrorResponseType::InvalidClient,
                "{what}: {error:?}"
            );
            assert!(error.error_description().is_some(), "{what}: {error:?}");
        }
        other => panic!("{what}: expected invalid_client, got {other:?}"),
    }
}

/// Revokes with a plain form POST: the library refuses revocation
/// endpoints that are not https (RFC 7009 §2), as this test server's is.
async fn revoke(
    server: &TestServer,
    provider: &Provider,
    client_id: &str,
    secret: &str,
    token: &str,
) {
    let response = server
        .http
        .post(&provider.revocation_endpoint)
        .basic_auth(client_id, Some(secret))
        .form(&[("token", token), ("token_type_hint", "access_token")])
        .send()
        .await
        .expect("revocation request");
    assert_eq!(response.status(), 200);
}

static JTI: AtomicU64 = AtomicU64::new(0);

/// A client assertion (RFC 7523 §3) built and signed by jsonwebtoken.
fn assertion(key: &EncodingKey, kid: &str, client_id: &str, aud: &str) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    let now = unix_now();
    let claims = json!({
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "iat": now,
        "exp": now + 60,
        "jti": format!("{client_id}-{now}-{}", JTI.fetch_add(1, Ordering::Relaxed)),
    });
    jsonwebtoken::encode(&header, &claims, key).expect("jsonwebtoken signs")
}

fn assertion_params(assertion: String) -> [(&'static str, String); 2] {
    [
        ("client_assertion_type", JWT_BEARER.to_owned()),
        ("client_assertion", assertion),
    ]
}

async fn secret_client(server: &TestServer, method: &str) -> (String, String) {
    let registered = server
        .register(&json!({
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": method,
        }))
        .await;
    assert_eq!(registered["token_endpoint_auth_method"], method);
    (
        registered["client_id"]
            .as_str()
            .expect("client_id")
            .to_owned(),
        registered["client_secret"]
            .as_str()
            .expect("client_secret")
            .to_owned(),
    )
}

// RFC 6749 §2.3.1 + §4.4: the library's client_secret_basic.
async fn library_client_secret_basic(server: TestServer) -> TestServer {
    let provider = discover(&server).await;
    assert!(provider.supports(
        "token_endpoint_auth_methods_supported",
        "client_secret_basic"
    ));
    let (client_id, secret) = secret_client(&server, "client_secret_basic").await;
    let client = provider.client(&client_id, Some(&secret), AuthType::BasicAuth);

    let token = client
        .exchange_client_credentials()
        .request_async(&http_client())
        .await
        .unwrap_or_else(|e| panic!("the library gets a token: {e:?}"));
    assert!(token.refresh_token().is_none(), "RFC 6749 §4.4.3");
    assert!(
        token.scopes().is_none(),
        "no scope registered, none granted"
    );
    let claims = verify_access_token(&provider, &token, &client_id).await;
    assert!(claims.get("scope").is_none(), "{claims}");

    // The library introspects it with the same credentials.
    let answer = introspect(&client, token.access_token().secret(), &[]).await;
    assert_active(&answer, &claims, &client_id);

    // Each token is a new one.
    let second = client
        .exchange_client_credentials()
        .request_async(&http_client())
        .await
        .expect("a second token");
    assert_ne!(
        second.access_token().secret(),
        token.access_token().secret()
    );
    let second_claims = verify_access_token(&provider, &second, &client_id).await;
    assert_ne!(second_claims["jti"], claims["jti"]);

    // Revoked, the first is inactive and the second is not.
    revoke(
        &server,
        &provider,
        &client_id,
        &secret,
        token.access_token().secret(),
    )
    .await;
    let answer = introspect(&client, token.access_token().secret(), &[]).await;
    assert!(!answer.active(), "{answer:?}");
    assert!(
        answer.client_id().is_none(),
        "RFC 7662 §2.2: nothing more about an inactive token"
    );
    let answer = introspect(&client, second.access_token().secret(), &[]).await;
    assert_active(&answer, &second_claims, &client_id);

    // A wrong secret is invalid_client, which the library parses as such.
    let wrong = provider.client(&client_id, Some("not-the-secret"), AuthType::BasicAuth);
    expect_invalid_client(
        wrong
            .exchange_client_credentials()
            .request_async(&http_client())
            .await,
        "wrong secret",
    );
    // The method the client did not register is refused too.
    let post = provider.client(&client_id, Some(&secret), AuthType::RequestBody);
    expect_invalid_client(
        post.exchange_client_credentials()
            .request_async(&http_client())
            .await,
        "client_secret_post for a client_secret_basic client",
    );
    server
}

// RFC 6749 §2.3.1: the library's client_secret_post.
async fn library_client_secret_post(server: TestServer) -> TestServer {
    let provider = discover(&server).await;
    assert!(provider.supports(
        "token_endpoint_auth_methods_supported",
        "client_secret_post"
    ));
    let (client_id, secret) = secret_client(&server, "client_secret_post").await;
    let client = provider.client(&client_id, Some(&secret), AuthType::RequestBody);
    let token = client
        .exchange_client_credentials()
        .request_async(&http_client())
        .await
        .unwrap_or_else(|e| panic!("the library gets a token: {e:?}"));
    let claims = verify_access_token(&provider, &token, &client_id).await;
    let answer = introspect(&client, token.access_token().secret(), &[]).await;
    assert_active(&answer, &claims, &client_id);
    server
}

// RFC 7523 §2.2 + §3: the library sends the request, jsonwebtoken signs
// the assertion with a key the client registered in its `jwks`.
async fn library_private_key_jwt(server: TestServer) -> TestServer {
    let provider = discover(&server).await;
    assert!(provider.supports("token_endpoint_auth_methods_supported", "private_key_jwt"));
    assert!(provider.supports("token_endpoint_auth_signing_alg_values_supported", "ES256"));
    let key_pair = SigningKey::generate(KeyAlgorithm::Es256).expect("client key pair");
    let public = key_pair.public_jwk();
    let kid = public["kid"].as_str().expect("kid").to_owned();
    let private = EncodingKey::from_ec_der(&key_pair.to_pkcs8().expect("PKCS#8"));
    let registered = server
        .register(&json!({
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "ES256",
            "jwks": {"keys": [public]},
        }))
        .await;
    assert!(registered.get("client_secret").is_none(), "{registered}");
    let client_id = registered["client_id"]
        .as_str()
        .expect("client_id")
        .to_owned();
    let client = provider.client(&client_id, None, AuthType::RequestBody);
    let exchange = |assertion: String| {
        let client = &client;
        async move {
            let mut request = client.exchange_client_credentials();
            for (name, value) in assertion_params(assertion) {
                request = request.add_extra_param(name, value);
            }
            request.request_async(&http_client()).await
        }
    };

    let first = assertion(&private, &kid, &client_id, &provider.issuer);
    let token = exchange(first.clone())
        .await
        .unwrap_or_else(|e| panic!("the library gets a token with private_key_jwt: {e:?}"));
    let claims = verify_access_token(&provider, &token, &client_id).await;

    // Introspection authenticated the same way, with a fresh assertion.
    let fresh = assertion_params(assertion(&private, &kid, &client_id, &provider.issuer));
    let answer = introspect(&client, token.access_token().secret(), &fresh).await;
    assert_active(&answer, &claims, &client_id);

    // An assertion is single-use (RFC 7523 §3 item 7).
    expect_invalid_client(exchange(first).await, "replayed assertion");
    // The audience is the issuer identifier, not the token endpoint URL.
    let to_endpoint = assertion(&private, &kid, &client_id, &provider.token_endpoint);
    expect_invalid_client(exchange(to_endpoint).await, "aud = token endpoint");
    // A key the client did not register does not authenticate it.
    let stranger = SigningKey::generate(KeyAlgorithm::Es256).expect("key pair");
    let stranger_key = EncodingKey::from_ec_der(&stranger.to_pkcs8().expect("PKCS#8"));
    let forged = assertion(&stranger_key, &kid, &client_id, &provider.issuer);
    expect_invalid_client(exchange(forged).await, "unregistered key");
    // The client still gets tokens after the refusals.
    let again = exchange(assertion(&private, &kid, &client_id, &provider.issuer))
        .await
        .expect("a token after refused attempts");
    verify_access_token(&provider, &again, &client_id).await;
    server
}

on_both_backends!(
    library_client_secret_basic,
    library_client_secret_post,
    library_private_key_jwt
);

/// OIDC Discovery 1.0 §4 through the library itself: `CoreProviderMetadata`
/// accepts the document only with every member OIDC Discovery §3 marks
/// REQUIRED, `authorization_endpoint` among them.
#[tokio::test]
async fn library_discovers_the_provider() {
    charter_testkit::run(
        charter_testkit::Backend::Sqlite,
        Default::default(),
        |server| async move {
            let issuer = IssuerUrl::new(server.issuer.clone()).expect("issuer URL");
            let metadata = CoreProviderMetadata::discover_async(issuer, &http_client())
                .await
                .unwrap_or_else(|e| panic!("the library's discovery fails: {e:?}"));
            assert_eq!(
                metadata.token_endpoint().map(|u| u.as_str().to_owned()),
                Some(server.url("/token"))
            );
            assert_eq!(
                metadata.authorization_endpoint().as_str(),
                server.url("/authorize")
            );
            assert_eq!(
                metadata.userinfo_endpoint().map(|u| u.as_str().to_owned()),
                Some(server.url("/userinfo"))
            );
            server
        },
    )
    .await;
}
