//! Black-box interoperability: an independent client library
//! (`openidconnect`) registers clients and parses every client information
//! response (RFC 7591 §3.2, RFC 7592 §3) with its own types, never Charter's.

use charter_testkit::{on_both_backends, TestServer};
use openidconnect::core::{
    CoreApplicationType, CoreClientAuthMethod, CoreClientMetadata, CoreClientRegistrationRequest,
    CoreClientRegistrationResponse, CoreGrantType, CoreRegisterErrorResponseType, CoreResponseType,
};
use openidconnect::registration::ClientRegistrationError;
use openidconnect::{
    AccessToken, ClientContactEmail, ClientName, RedirectUrl, RegistrationUrl, ResponseTypes,
};
use serde_json::Value;

const REDIRECT: &str = "https://app.example.com/cb";

/// The library's HTTP client, with redirects disabled as its docs require.
fn http_client() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client")
}

fn registration_url(server: &TestServer) -> RegistrationUrl {
    RegistrationUrl::new(server.url("/register")).expect("registration URL")
}

/// A web client using the code flow with refresh tokens.
fn request(server: &TestServer, redirect: &str) -> CoreClientRegistrationRequest {
    CoreClientRegistrationRequest::new(
        vec![RedirectUrl::new(redirect.to_owned()).expect("redirect URL")],
        Default::default(),
    )
    .set_client_name(Some(ClientName::new("Black box".to_owned()).into()))
    .set_contacts(Some(vec![ClientContactEmail::new(
        "ops@example.com".to_owned(),
    )]))
    .set_grant_types(Some(vec![
        CoreGrantType::AuthorizationCode,
        CoreGrantType::RefreshToken,
    ]))
    .set_response_types(Some(vec![ResponseTypes::new(vec![CoreResponseType::Code])]))
    .set_initial_access_token(Some(AccessToken::new(server.iat.clone())))
}

async fn register(server: &TestServer) -> CoreClientRegistrationResponse {
    request(server, REDIRECT)
        .register_async(&registration_url(server), &http_client())
        .await
        .expect("the library registers a client")
}

/// The metadata part of a client information response, as the library's
/// own metadata type (server-assigned members are ignored by it).
fn metadata_of(response: &CoreClientRegistrationResponse) -> CoreClientMetadata {
    let json = serde_json::to_value(response).expect("serialize response");
    serde_json::from_value(json).expect("the response's metadata parses as CoreClientMetadata")
}

fn client_name(response: &CoreClientRegistrationResponse) -> Option<String> {
    response
        .client_name()
        .and_then(|name| name.get(None))
        .map(|name| name.as_str().to_owned())
}

/// Sends a configuration-endpoint request and, on success, parses the body
/// with the library's response type.
async fn call(
    request: openidconnect::reqwest::RequestBuilder,
) -> (u16, Option<CoreClientRegistrationResponse>) {
    let response = request
        .send()
        .await
        .expect("configuration endpoint request");
    let status = response.status().as_u16();
    let body = response.text().await.expect("response body");
    if status != 200 {
        return (status, None);
    }
    let parsed = serde_json::from_str(&body).unwrap_or_else(|e| {
        panic!("CoreClientRegistrationResponse rejects the body ({e}): {body}")
    });
    (status, Some(parsed))
}

// RFC 7591 §3.1-§3.2.1 through the library's own registration call.
async fn library_registers(server: TestServer) -> TestServer {
    let client = register(&server).await;

    assert!(!client.client_id().as_str().is_empty());
    assert!(client
        .client_secret()
        .is_some_and(|s| !s.secret().is_empty()));
    assert!(client.client_id_issued_at().is_some());
    assert!(client.client_secret_expires_at().is_some());
    assert!(client
        .registration_access_token()
        .is_some_and(|t| !t.secret().is_empty()));
    let uri = client
        .registration_client_uri()
        .expect("registration_client_uri");
    assert!(
        uri.as_str().starts_with(&server.url("/register/")),
        "{}",
        uri.as_str()
    );
    assert!(uri.as_str().ends_with(client.client_id().as_str()));

    let redirects: Vec<&str> = client.redirect_uris().iter().map(|u| u.as_str()).collect();
    assert_eq!(redirects, [REDIRECT]);
    assert_eq!(client_name(&client).as_deref(), Some("Black box"));
    assert_eq!(
        client
            .contacts()
            .map(|c| c.iter().map(|e| e.as_str()).collect::<Vec<_>>()),
        Some(vec!["ops@example.com"])
    );
    assert_eq!(
        client.grant_types(),
        Some(&vec![
            CoreGrantType::AuthorizationCode,
            CoreGrantType::RefreshToken
        ])
    );
    assert_eq!(
        client.response_types(),
        Some(&vec![ResponseTypes::new(vec![CoreResponseType::Code])])
    );
    assert_eq!(
        client.token_endpoint_auth_method(),
        Some(&CoreClientAuthMethod::ClientSecretBasic)
    );
    assert_eq!(client.application_type(), Some(&CoreApplicationType::Web));

    // Two registrations never share credentials.
    let other = register(&server).await;
    assert_ne!(other.client_id(), client.client_id());
    assert_ne!(
        other.client_secret().map(|s| s.secret()),
        client.client_secret().map(|s| s.secret())
    );
    server
}

// RFC 7592 §2.1-§2.3: read, replace and delete, every answer parsed by the
// library's response type.
async fn library_parses_management(server: TestServer) -> TestServer {
    let registered = register(&server).await;
    let uri = registered
        .registration_client_uri()
        .expect("registration_client_uri")
        .as_str()
        .to_owned();
    let rat = registered
        .registration_access_token()
        .expect("registration_access_token")
        .secret()
        .clone();
    let http = http_client();

    // Read.
    let (status, read) = call(http.get(&uri).bearer_auth(&rat)).await;
    assert_eq!(status, 200);
    let read = read.expect("read body");
    assert_eq!(read.client_id(), registered.client_id());
    assert_eq!(read.client_id_issued_at(), registered.client_id_issued_at());
    assert_eq!(
        read.client_secret_expires_at(),
        registered.client_secret_expires_at()
    );
    assert_eq!(
        read.registration_client_uri().map(|u| u.as_str()),
        Some(uri.as_str())
    );
    assert_eq!(metadata_of(&read), metadata_of(&registered));

    // Replace: the library's metadata with a new name, plus client_id and
    // none of the server-assigned members (RFC 7592 §2.2).
    let replacement =
        metadata_of(&read).set_client_name(Some(ClientName::new("Renamed".to_owned()).into()));
    let mut body = serde_json::to_value(&replacement).expect("serialize metadata");
    let Value::Object(members) = &mut body else {
        panic!("metadata serializes to an object: {body}");
    };
    for member in [
        "registration_access_token",
        "registration_client_uri",
        "client_secret_expires_at",
        "client_id_issued_at",
    ] {
        assert!(!members.contains_key(member), "{member} in {body}");
    }
    members.insert(
        "client_id".into(),
        registered.client_id().as_str().to_owned().into(),
    );

    let (status, updated) = call(http.put(&uri).bearer_auth(&rat).json(&body)).await;
    assert_eq!(status, 200, "PUT {body}");
    let updated = updated.expect("update body");
    assert_eq!(updated.client_id(), registered.client_id());
    assert_eq!(client_name(&updated).as_deref(), Some("Renamed"));
    assert_eq!(metadata_of(&updated), replacement);
    let new_rat = updated
        .registration_access_token()
        .expect("a rotated registration_access_token")
        .secret()
        .clone();
    assert_ne!(new_rat, rat);

    // The old token is dead; the new one reads the replacement.
    let (status, _) = call(http.get(&uri).bearer_auth(&rat)).await;
    assert_eq!(
        status, 401,
        "the replaced registration access token still works"
    );
    let (status, reread) = call(http.get(&uri).bearer_auth(&new_rat)).await;
    assert_eq!(status, 200);
    let reread = reread.expect("read body");
    assert_eq!(metadata_of(&reread), replacement);
    assert_eq!(client_name(&reread).as_deref(), Some("Renamed"));

    // Delete; afterwards the token opens nothing.
    let response = http
        .delete(&uri)
        .bearer_auth(&new_rat)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status().as_u16(), 204);
    let (status, _) = call(http.get(&uri).bearer_auth(&new_rat)).await;
    assert_eq!(status, 401);
    server
}

// RFC 7591 §3.2.2 through the library: the error type is parsed and typed.
async fn library_sees_registration_error(server: TestServer) -> TestServer {
    let before = server.client_count().await;
    let refused = request(&server, "https://app.example.com/cb#x")
        .register_async(&registration_url(&server), &http_client())
        .await;
    match refused {
        Err(ClientRegistrationError::ServerResponse(error)) => {
            assert_eq!(
                *error.error(),
                CoreRegisterErrorResponseType::InvalidRedirectUri,
                "{error:?}"
            );
            assert!(error.error_description().is_some(), "{error:?}");
        }
        other => panic!("expected invalid_redirect_uri, got {other:?}"),
    }

    // Without the initial access token the server refuses with 401, which
    // the library reports as an unexpected response, not a registration.
    let anonymous = request(&server, REDIRECT)
        .set_initial_access_token(None)
        .register_async(&registration_url(&server), &http_client())
        .await;
    match anonymous {
        Err(ClientRegistrationError::Response(status, _, _)) => {
            assert_eq!(status.as_u16(), 401)
        }
        other => panic!("expected a 401 response, got {other:?}"),
    }
    assert_eq!(server.client_count().await, before);
    server
}

on_both_backends!(
    library_registers,
    library_parses_management,
    library_sees_registration_error
);
