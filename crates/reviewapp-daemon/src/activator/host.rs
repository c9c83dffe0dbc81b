//! The `Host` a request names, and the host an app's `status.url` names, both reduced to one
//! comparable form: lower case, no port, no trailing dot.

/// Why a request's `Host` names no host at all (answered `400`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The request has no `Host` header (HTTP/1.0, or a broken client).
    #[error("the request has no Host header")]
    Missing,
    /// The `Host` header is not a DNS name with an optional port.
    #[error("the Host header is not a host name")]
    Invalid,
}

/// Longest DNS name (RFC 1035), trailing dot excluded.
const MAX_NAME: usize = 253;

/// The host a request's `Host` header value names: `Review-App.Example.COM.:8443` →
/// `review-app.example.com`. Only DNS names are accepted (letters, digits, `-`, `.`, and `_`
/// as some clusters use it); an IP literal or anything else is [`HostError::Invalid`]. A
/// review app is always reached by name, so nothing valid is lost.
pub fn request_host(header: Option<&[u8]>) -> Result<String, HostError> {
    let raw = header.ok_or(HostError::Missing)?;
    let raw = std::str::from_utf8(raw).map_err(|_| HostError::Invalid)?;
    let name = match raw.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return Err(HostError::Invalid),
        None => raw,
    };
    normalise(name).ok_or(HostError::Invalid)
}

/// The host of an app's `status.url` (`https://pr-12.review.example.com` →
/// `pr-12.review.example.com`), in [`request_host`]'s form; `None` when it names none.
pub fn url_host(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    normalise(parsed.host_str()?)
}

/// Lower case, without one trailing dot; `None` unless a DNS name of valid characters.
fn normalise(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && name.split('.').all(|label| !label.is_empty());
    valid.then(|| name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn host(value: &str) -> Result<String, HostError> {
        request_host(Some(value.as_bytes()))
    }

    #[test]
    fn port_case_and_trailing_dot_are_ignored() {
        for value in [
            "pr-1.review.example.com",
            "PR-1.Review.Example.COM",
            "pr-1.review.example.com.",
            "pr-1.review.example.com:8443",
            "Pr-1.review.example.com.:80",
        ] {
            assert_eq!(host(value).unwrap(), "pr-1.review.example.com", "{value}");
        }
    }

    #[test]
    fn a_missing_host_is_missing() {
        assert_eq!(request_host(None), Err(HostError::Missing));
    }

    #[test]
    fn garbage_is_invalid() {
        for value in [
            "",
            ":80",
            ".",
            "a..b",
            ".a",
            "a:",
            "a:80:80",
            "a:x",
            "[::1]:80",
            "a b",
            "a/b",
            "a@b",
            "<script>",
            "exa\u{e9}mple.com",
        ] {
            assert_eq!(host(value), Err(HostError::Invalid), "{value:?}");
        }
        assert_eq!(
            request_host(Some(&[0xff, 0xfe])),
            Err(HostError::Invalid),
            "not UTF-8"
        );
        assert_eq!(host(&"a".repeat(254)), Err(HostError::Invalid), "too long");
        assert!(host(&"a".repeat(253)).is_ok());
    }

    #[test]
    fn the_url_host_matches_the_request_host() {
        for url in [
            "https://pr-1.review.example.com",
            "https://PR-1.review.example.com/",
            "http://pr-1.review.example.com:8080/path?q=1",
            "https://pr-1.review.example.com./",
        ] {
            assert_eq!(
                url_host(url).as_deref(),
                Some("pr-1.review.example.com"),
                "{url}"
            );
        }
        assert_eq!(url_host("not a url"), None);
        assert_eq!(url_host("mailto:a@b"), None);
        assert_eq!(url_host("http://[::1]/"), None);
    }
}
