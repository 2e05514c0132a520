//! A minimal browser for tests of the authorization endpoint: a cookie jar,
//! no automatic redirects, and just enough HTML reading to find a form's
//! action and hidden fields and post it back like a user would.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use crate::TestServer;

/// One response as a browser sees it.
#[derive(Debug, Clone)]
pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }

    /// The first `<form>` on the page: its action and every named input
    /// (hidden fields with their values).
    pub fn form(&self) -> Option<Form> {
        let start = self.body.find("<form")?;
        let end = self.body[start..].find("</form>")? + start;
        let html = &self.body[start..end];
        let action = attribute(html, "action")?;
        let mut fields = Vec::new();
        let mut rest = html;
        while let Some(at) = rest.find("<input") {
            let tag_end = rest[at..].find('>')? + at;
            let tag = &rest[at..tag_end];
            if let Some(name) = attribute(tag, "name") {
                if attribute(tag, "type").as_deref() == Some("hidden") {
                    fields.push((name, attribute(tag, "value").unwrap_or_default()));
                }
            }
            rest = &rest[tag_end..];
        }
        Some(Form { action, fields })
    }
}

/// A form to post back.
#[derive(Debug, Clone)]
pub struct Form {
    pub action: String,
    pub fields: Vec<(String, String)>,
}

impl Form {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// A PKCE pair (RFC 7636): a fresh verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let mut bytes = [0u8; 32];
    for (i, b) in charter_service::credentials::random_id()
        .expect("random")
        .bytes()
        .chain(
            charter_service::credentials::random_id()
                .expect("random")
                .bytes(),
        )
        .enumerate()
        .take(32)
    {
        bytes[i] = b;
    }
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// A cookie-keeping client that does not follow redirects.
pub struct Browser {
    http: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("HTTP client"),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies
                    .insert(name.trim().to_owned(), value.to_owned());
            }
        }
    }

    async fn read(&mut self, response: reqwest::Response) -> Page {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        self.keep_cookies(&headers);
        let body = response.text().await.unwrap_or_default();
        Page {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let response = self
            .http
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("GET");
        self.read(response).await
    }

    pub async fn post(&mut self, url: &str, fields: &[(String, String)]) -> Page {
        let response = self
            .http
            .post(url)
            .header("cookie", self.cookie_header())
            .form(fields)
            .send()
            .await
            .expect("POST");
        self.read(response).await
    }

    /// Posts `form` with its hidden fields plus `extra`.
    pub async fn submit(&mut self, form: &Form, extra: &[(&str, &str)]) -> Page {
        let mut fields = form.fields.clone();
        fields.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        self.post(&form.action, &fields).await
    }

    /// Signs in on a login page and returns the next page.
    pub async fn login(&mut self, page: &Page, username: &str, password: &str) -> Page {
        let form = page
            .form()
            .unwrap_or_else(|| panic!("no login form in {}", page.body));
        assert!(form.action.ends_with("/authorize/login"), "{}", form.action);
        self.submit(&form, &[("username", username), ("password", password)])
            .await
    }

    /// Answers a consent page with `allow` or `deny`.
    pub async fn consent(&mut self, page: &Page, decision: &str) -> Page {
        let form = page
            .form()
            .unwrap_or_else(|| panic!("no consent form in {}", page.body));
        assert!(
            form.action.ends_with("/authorize/consent"),
            "{}",
            form.action
        );
        self.submit(&form, &[("decision", decision)]).await
    }
}

/// The query parameters of a redirect's `Location`.
pub fn redirect_params(location: &str) -> BTreeMap<String, String> {
    let query = location
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or_default())
        .unwrap_or_default();
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Metadata of a client for the authorization code flow, `overrides`
/// merged over defaults: a public native client with a loopback redirect
/// URI, scopes `openid profile email`.
pub fn code_client_metadata(overrides: Value) -> Value {
    let mut body = json!({
        "redirect_uris": ["http://127.0.0.1/cb"],
        "application_type": "native",
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": "openid profile email",
        "client_name": "Test agent",
    });
    if let (Some(map), Some(extra)) = (body.as_object_mut(), overrides.as_object()) {
        for (k, v) in extra {
            map.insert(k.clone(), v.clone());
        }
    }
    body
}

impl TestServer {
    /// Creates an end user through the admin API; returns its id.
    pub async fn create_user(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .admin_post(
                "/admin/v1/users",
                json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(status, 201, "creating a user failed: {body}");
        body["id"].as_str().expect("user id").to_owned()
    }

    /// Registers a client for the authorization code flow (see
    /// [`code_client_metadata`]).
    pub async fn register_code_client(&self, overrides: Value) -> Value {
        self.register(&code_client_metadata(overrides)).await
    }

    /// The authorization endpoint URL for `params`.
    pub fn authorize_url(&self, params: &[(&str, &str)]) -> String {
        let query: String = params
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        format!("{}?{query}", self.url("/authorize"))
    }
}

/// Percent-encodes a query component.
pub fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
