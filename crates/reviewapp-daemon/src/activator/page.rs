//! What the activator answers: the waking page (`503`, `Retry-After`, a small HTML page that
//! reloads itself, no external assets), `404` for a host that is no review app, `400` for a
//! request without a usable `Host`. No answer quotes anything from the request.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Seconds a client waits before it asks again (`Retry-After`, and the page's own reload).
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// The waking page. It reloads itself with a `<meta http-equiv="refresh">` (no script needed)
/// every [`RETRY_AFTER_SECONDS`]: once the app is awake and its Ingress switched back, the
/// reload reaches the app.
pub const WAKING_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Waking up this review app</title>
<style>
body{font-family:system-ui,sans-serif;display:flex;min-height:90vh;align-items:center;justify-content:center;color:#333;background:#fafafa}
main{text-align:center;max-width:32em;padding:1em}
.dot{display:inline-block;width:.6em;height:.6em;margin:0 .2em;border-radius:50%;background:#888;animation:p 1.2s infinite ease-in-out}
.dot:nth-child(2){animation-delay:.2s}.dot:nth-child(3){animation-delay:.4s}
@keyframes p{0%,80%,100%{opacity:.2}40%{opacity:1}}
</style>
</head>
<body>
<main>
<h1>Waking up this review app</h1>
<p><span class="dot"></span><span class="dot"></span><span class="dot"></span></p>
<p>It was asleep because nobody used it for a while. It is starting now; this page reloads
by itself and shows the app as soon as it is ready (usually within a minute).</p>
</main>
</body>
</html>
"#;

/// What a request gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The app is (being) woken: `503` with the waking page.
    Waking,
    /// The activator's view of the apps has not loaded yet: `503`, try again shortly.
    Starting,
    /// The Host is no review app: `404`.
    NotFound,
    /// The request has no usable Host: `400`.
    BadRequest,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let (status, body, html) = match self {
            Answer::Waking => (StatusCode::SERVICE_UNAVAILABLE, WAKING_PAGE, true),
            Answer::Starting => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The review app activator is starting; try again in a few seconds.\n",
                false,
            ),
            Answer::NotFound => (
                StatusCode::NOT_FOUND,
                "No review app is served here.\n",
                false,
            ),
            Answer::BadRequest => (
                StatusCode::BAD_REQUEST,
                "The request names no valid host.\n",
                false,
            ),
        };
        let content_type = if html {
            "text/html; charset=utf-8"
        } else {
            "text/plain; charset=utf-8"
        };
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waking_page_is_a_503_that_retries_by_itself() {
        let response = Answer::Waking.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let headers = response.headers();
        assert_eq!(headers[header::RETRY_AFTER], "5");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .is_ok_and(|t| t.starts_with("text/html"))
        );
        let refresh = format!(r#"http-equiv="refresh" content="{RETRY_AFTER_SECONDS}""#);
        assert!(WAKING_PAGE.contains(&refresh));
    }

    #[test]
    fn the_waking_page_loads_nothing_from_elsewhere() {
        for external in ["http:", "https:", "//", "src=", "href=", "<script", "url("] {
            assert!(!WAKING_PAGE.contains(external), "{external}");
        }
    }

    #[test]
    fn other_answers_have_their_status() {
        let status = |answer: Answer| answer.into_response().status();
        assert_eq!(status(Answer::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(status(Answer::BadRequest), StatusCode::BAD_REQUEST);
        assert_eq!(status(Answer::Starting), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            Answer::NotFound
                .into_response()
                .headers()
                .get(header::RETRY_AFTER)
                .is_none()
        );
    }
}
