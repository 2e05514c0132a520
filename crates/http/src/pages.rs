//! The end-user pages: sign-in, consent and errors. Plain HTML with
//! labelled fields and no script, readable by screen readers and usable
//! without a mouse; every value from a client or a user is escaped.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use charter_service::{ConsentPage, LoginPage, Page};

/// HTML-escapes text for element content and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;line-height:1.5;margin:0;background:#f6f7f9;color:#1b1f24}\
main{max-width:32rem;margin:3rem auto;padding:2rem;background:#fff;border:1px solid #d0d7de;border-radius:8px}\
h1{font-size:1.5rem;margin-top:0}label{display:block;font-weight:600;margin-top:1rem}\
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem;border:1px solid #8c959f;border-radius:4px}\
button{margin-top:1.5rem;margin-right:.5rem;padding:.6rem 1.2rem;font-size:1rem;border-radius:4px;border:1px solid #1f2328;cursor:pointer}\
button.primary{background:#1f6feb;color:#fff;border-color:#1f6feb}\
.error,.warning{padding:.75rem;border-radius:4px;margin:1rem 0}.error{background:#ffebe9;border:1px solid #cf222e}\
.warning{background:#fff8c5;border:1px solid #9a6700}dt{font-weight:600;margin-top:.5rem}dd{margin-left:0}\
:focus{outline:3px solid #0969da;outline-offset:2px}";

fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{} – Charter</title><style>{STYLE}</style></head>\
<body><main>{body}</main></body></html>\n",
        escape(title)
    )
}

fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
        escape(value)
    )
}

fn login(page: &LoginPage, action: &str) -> String {
    let error = page
        .error
        .as_deref()
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .or_else(|| {
            page.notice
                .as_deref()
                .map(|n| format!("<p class=\"warning\" role=\"status\">{}</p>", escape(n)))
        })
        .unwrap_or_default();
    let body = format!(
        "<h1>Sign in</h1><p>to continue to <strong>{client}</strong></p>{error}\
<form method=\"post\" action=\"{action}\">{interaction}{csrf}\
<label for=\"username\">Username</label>\
<input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" required value=\"{username}\"{autofocus_user}>\
<label for=\"password\">Password</label>\
<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required{autofocus_password}>\
<button type=\"submit\" class=\"primary\">Sign in</button></form>",
        client = escape(&page.client_name),
        action = escape(action),
        interaction = hidden("interaction", &page.interaction),
        csrf = hidden("csrf", &page.csrf),
        username = escape(page.username.as_deref().unwrap_or_default()),
        autofocus_user = if page.username.is_none() { " autofocus" } else { "" },
        autofocus_password = if page.username.is_some() { " autofocus" } else { "" },
    );
    document("Sign in", &body)
}

fn link(label: &str, uri: &Option<String>) -> String {
    uri.as_deref()
        .map(|u| {
            format!(
                "<li><a href=\"{}\" rel=\"noopener noreferrer\">{}</a></li>",
                escape(u),
                escape(label)
            )
        })
        .unwrap_or_default()
}

fn consent(page: &ConsentPage, action: &str) -> String {
    let list = |items: &[String]| {
        items
            .iter()
            .map(|i| format!("<li><code>{}</code></li>", escape(i)))
            .collect::<String>()
    };
    let warning = if page.loopback_only {
        "<p class=\"warning\" role=\"note\"><strong>Check that you started this.</strong> \
This application receives its answer on your own computer (a loopback address), so it \
could be any program running there. Allow only if you just started signing in to it yourself.</p>"
    } else {
        ""
    };
    let links = [
        link("Application website", &page.client_uri),
        link("Privacy policy", &page.policy_uri),
        link("Terms of service", &page.tos_uri),
    ]
    .concat();
    let links = if links.is_empty() {
        String::new()
    } else {
        format!("<ul>{links}</ul>")
    };
    let body = format!(
        "<h1>Allow access?</h1>\
<p>You are signed in as <strong>{user}</strong>. <strong>{client}</strong> asks to act for you.</p>{warning}\
<dl><dt>Application</dt><dd>{client} (<code>{client_id}</code>)</dd>\
<dt>Organization</dt><dd>{organization}</dd>\
<dt>Registered</dt><dd>{registration}</dd>\
<dt>You will be sent back to</dt><dd><strong>{host}</strong></dd>\
<dt>Access requested (scopes)</dt><dd><ul>{scopes}</ul></dd>\
<dt>For use at (resources)</dt><dd><ul>{resources}</ul></dd></dl>{links}\
<form method=\"post\" action=\"{action}\">{interaction}{csrf}\
<button type=\"submit\" name=\"decision\" value=\"allow\" class=\"primary\">Allow</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
        user = escape(&page.user),
        client = escape(&page.client_name),
        client_id = escape(&page.client_id),
        organization = escape(&page.organization),
        registration = escape(&page.registration),
        host = escape(&page.redirect_host),
        scopes = list(&page.scopes),
        resources = list(&page.resources),
        action = escape(action),
        interaction = hidden("interaction", &page.interaction),
        csrf = hidden("csrf", &page.csrf),
    );
    document("Allow access", &body)
}

/// Renders a page with the headers every end-user page has: not cached,
/// not framed (clickjacking), no referrer, nothing loaded from elsewhere.
pub fn render(page: &Page, login_action: &str, consent_action: &str) -> Response {
    let (status, html) = match page {
        Page::Error {
            status,
            title,
            message,
        } => (
            StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST),
            document(
                title,
                &format!("<h1>{}</h1><p>{}</p>", escape(title), escape(message)),
            ),
        ),
        Page::Login(page) => (
            // Not 401: that status needs a WWW-Authenticate challenge
            // (RFC 9110 §15.5.2), and a form is not an HTTP scheme.
            if page.error.is_some() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            },
            login(page, login_action),
        ),
        Page::Consent(page) => (StatusCode::OK, consent(page, consent_action)),
    };
    html_response(status, html)
}

pub fn html_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src https:; frame-ancestors 'none'; base-uri 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_values_are_escaped() {
        assert_eq!(
            escape("<script>\"x\"&'y'</script>"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;"
        );
        let page = LoginPage {
            interaction: "i".into(),
            csrf: "c\"><b>".into(),
            client_name: "<img src=x onerror=alert(1)>".into(),
            error: None,
            notice: None,
            username: None,
        };
        let html = login(&page, "/authorize/login");
        assert!(!html.contains("<img"));
        assert!(html.contains("value=\"c&quot;&gt;&lt;b&gt;\""));
    }
}
