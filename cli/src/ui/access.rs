//! Who may ask, and what every answer says about itself.
//!
//! With a token (given, or made for a non-loopback address), a request must carry it: as
//! `Authorization: Bearer TOKEN`, as the cookie this server sets, or as `?token=TOKEN` —
//! which sets that cookie (HttpOnly, SameSite=Strict), so the address printed at start
//! opens in a browser and the pages' own links work after it. Anything else gets 401.
//!
//! Every answer carries a Content-Security-Policy that allows no script at all, styles
//! only from this server's stylesheet, no frames, and forms that post only here; and
//! `nosniff`, `no-referrer`, `no-store`: what a page shows is what a model said, and it
//! must neither run nor leak.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::App;

/// The cookie that carries the token after `?token=` once.
const COOKIE: &str = "reasonkit_audit_token";

const POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
                      form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Checks the token, then adds the security headers to whatever the page answers.
pub async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let mut set_cookie = false;
    if let Some(token) = &app.token {
        let headers = request.headers();
        let query = request.uri().query().unwrap_or_default();
        let by_query = query_token(query).is_some_and(|t| crate::serve::same_token(&t, token));
        let allowed = by_query
            || bearer(headers).is_some_and(|t| crate::serve::same_token(t, token))
            || cookie(headers).is_some_and(|t| crate::serve::same_token(t, token));
        if !allowed {
            let mut answer = (
                StatusCode::UNAUTHORIZED,
                "this audit trail needs its token: open the address the server printed, \
                 or send Authorization: Bearer TOKEN\n",
            )
                .into_response();
            secure(answer.headers_mut());
            return answer;
        }
        set_cookie = by_query;
    }
    let mut answer = next.run(request).await;
    let cookie = app.token.as_deref().filter(|_| set_cookie).and_then(|t| {
        HeaderValue::from_str(&format!("{COOKIE}={t}; HttpOnly; SameSite=Strict; Path=/")).ok()
    });
    if let Some(cookie) = cookie {
        answer.headers_mut().append(header::SET_COOKIE, cookie);
    }
    secure(answer.headers_mut());
    answer
}

fn secure(headers: &mut HeaderMap) {
    // A page that set its own policy (the report's download) keeps it.
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(POLICY),
        );
    }
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

fn query_token(query: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find_map(|(k, v)| (k == "token").then_some(v))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_found_where_a_client_puts_it() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; reasonkit_audit_token=xyz"),
        );
        assert_eq!(bearer(&headers), Some("abc"));
        assert_eq!(cookie(&headers), Some("xyz"));
        assert_eq!(query_token("a=1&token=t%2Bk").as_deref(), Some("t+k"));
    }
}
