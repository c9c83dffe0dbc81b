//! Why a build failed, from its log: the [`FailureLog`] the daemon observed, whether it is
//! needed ([`wants_failure_log`]), and the pure sanitiser the daemon runs on the raw log before
//! anything of it reaches a status or an Event ([`sanitise`]). See `docs/operations.md`
//! ("Reading a failed build").
//!
//! Log text is data: it is decoded leniently, ANSI escape sequences and control characters are
//! removed, values of the build's Secrets and anything that looks like a credential are
//! replaced by [`REDACTED`], and what is left is cut to the last [`TAIL_LINES`] lines and
//! [`TAIL_BYTES`] bytes.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use k8s_openapi::ByteString;
use regex::Regex;
use reviewapp_api::{BuildStatus, ReviewAppStatus};

use crate::BuildObservation;

/// At most this many lines of a failed build's log are kept.
pub const TAIL_LINES: usize = 20;
/// At most this many bytes of a failed build's log are kept (after sanitising).
pub const TAIL_BYTES: usize = 2048;
/// What replaces a Secret value or a credential.
pub const REDACTED: &str = "[redacted]";

/// What the daemon could learn from the log of a failed build Job's pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureLog {
    /// The failing container and the sanitised tail of its log.
    Tail {
        /// The container that terminated with a non-zero exit code (`fetch`, `unpack`, `build`).
        container: String,
        /// Its exit code.
        exit_code: i32,
        /// The last lines of its log, as [`sanitise`] returns them (possibly empty).
        text: String,
    },
    /// The log could not be read; `why` says what stood in the way (no pod, no failed
    /// container, a refused request). Never quotes a server's message.
    Unavailable {
        /// A short reason, e.g. `the build pod is gone`.
        why: String,
    },
}

/// Whether a build observation calls for the failing container's log: the Job failed and the
/// status does not record that yet (its `buildStatus` is still `building`, or absent). Once the
/// failure is on record the log is never read again for that Job.
pub fn wants_failure_log(status: Option<&ReviewAppStatus>, build: &BuildObservation) -> bool {
    matches!(build, BuildObservation::Failed { .. })
        && matches!(
            status.and_then(|s| s.build_status),
            None | Some(BuildStatus::Building)
        )
}

/// The strings of a Secret's `data` that must never appear in a log excerpt: every value as
/// stored (base64) and decoded, and, for a docker `config.json`, every string in it (the
/// `auth`, `password`, `identitytoken` of each registry) and the password in each decoded
/// `auth` (`user:password`). Values shorter than 4 bytes are left out (they would redact
/// ordinary words); longest first.
pub fn secret_values(data: &BTreeMap<String, ByteString>) -> Vec<String> {
    let mut values = Vec::new();
    for ByteString(bytes) in data.values() {
        let text = String::from_utf8_lossy(bytes).into_owned();
        if let Ok(serde_json::Value::String(encoded)) =
            serde_json::to_value(ByteString(bytes.clone()))
        {
            values.push(encoded);
        }
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) {
            docker_config_values(&json, &mut values);
        }
        values.extend(
            text.lines()
                .map(str::trim)
                .filter(|line| line.len() >= 16)
                .map(str::to_string),
        );
        values.push(text.trim().to_string());
    }
    values.retain(|v| v.len() >= 4);
    values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    values.dedup();
    values
}

/// Every string in a JSON document, and the password of every base64 `user:password` in it.
fn docker_config_values(json: &serde_json::Value, out: &mut Vec<String>) {
    match json {
        serde_json::Value::String(s) => {
            out.push(s.clone());
            if let Ok(ByteString(decoded)) =
                serde_json::from_value::<ByteString>(serde_json::Value::String(s.clone()))
                && let Ok(decoded) = String::from_utf8(decoded)
                && let Some((_, password)) = decoded.split_once(':')
            {
                out.push(decoded.clone());
                out.push(password.to_string());
            }
        }
        serde_json::Value::Array(items) => {
            items.iter().for_each(|v| docker_config_values(v, out));
        }
        serde_json::Value::Object(map) => map.values().for_each(|v| docker_config_values(v, out)),
        _ => {}
    }
}

/// The raw bytes of a log (possibly cut anywhere, `complete` when nothing was cut off at its
/// end), made safe to show: decoded leniently, escape sequences and control characters
/// removed (a lone carriage return ends a line), `secrets` and credential patterns replaced
/// by [`REDACTED`], then cut to the last [`TAIL_LINES`] lines and [`TAIL_BYTES`] bytes (at a
/// line start when one fits). A last line the reader cut off is dropped, so no prefix of a
/// secret can remain. Costs memory proportional to `raw`, whatever it holds.
pub fn sanitise(raw: &[u8], complete: bool, secrets: &[String]) -> String {
    let mut text = strip_controls(&String::from_utf8_lossy(raw));
    if !complete && let Some(end) = text.rfind('\n') {
        text.truncate(end);
    }
    let text = redact(&text, secrets);
    tail(text.trim_end_matches('\n'), TAIL_LINES, TAIL_BYTES)
}

/// `text` without ANSI escape sequences (CSI `ESC [ ... final`, OSC `ESC ] ... BEL | ESC \`,
/// and other escapes), other control characters (tabs become spaces, a carriage return a
/// line break) and bidirectional overrides.
fn strip_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            '\u{9b}' => skip_csi(&mut chars),
            '\n' => out.push('\n'),
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\t' => out.push(' '),
            c if c.is_control() || is_bidi_control(c) => {}
            c => out.push(c),
        }
    }
    out
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Skips what follows an `ESC`: a CSI or OSC sequence, or one more character.
fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        Some('[') => skip_csi(chars),
        Some(']' | 'P' | '_' | '^' | 'X') => {
            // Until BEL or ST (`ESC \`).
            while let Some(c) = chars.next() {
                if c == '\u{7}' || c == '\u{9c}' {
                    break;
                }
                if c == '\u{1b}' {
                    chars.next();
                    break;
                }
            }
        }
        // `ESC ( B` and friends: intermediate bytes, then one final byte.
        Some(' '..='/') => {
            for c in chars.by_ref() {
                if !(' '..='/').contains(&c) {
                    break;
                }
            }
        }
        _ => {}
    }
}

/// Skips a CSI sequence's parameters and its final byte (`@`..`~`).
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if ('@'..='~').contains(&c) {
            break;
        }
    }
}

/// Credential-looking text: `(keep, secret[, keep])` capture groups, the second one replaced.
#[allow(clippy::expect_used)]
static CREDENTIALS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        // Authorization headers.
        r"(?i)(authorization:\s*(?:bearer|basic|token)?\s*)(\S+)",
        // key=value, key: value, "key": "value" for secret-sounding keys.
        r#"(?i)((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key|client[_-]?secret|auth|credentials?)["']?\s*[=:]\s*["']?)([^\s"',;]+)"#,
        // user:password@ in URLs.
        r"(?i)([a-z][a-z0-9+.-]*://[^/\s:@]+:)([^/\s@]+)(@)",
        // GitHub tokens.
        r"()\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})",
        // AWS access key ids.
        r"()\b((?:AKIA|ASIA)[0-9A-Z]{16})\b",
        // JSON Web Tokens.
        r"()\b(eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})",
        // PEM private keys (the header line; the body is base64 lines of the Secret).
        r"()(-----BEGIN [A-Z ]*PRIVATE KEY-----.*)",
    ]
    .iter()
    // The patterns are literals, each compiled by the tests below.
    .map(|pattern| Regex::new(pattern).expect("credential patterns compile"))
    .collect()
});

/// `text` with every `secrets` value (longest first) and every credential pattern replaced by
/// [`REDACTED`].
fn redact(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), REDACTED);
        }
    }
    for pattern in CREDENTIALS.iter() {
        text = pattern
            .replace_all(&text, |caps: &regex::Captures<'_>| {
                let keep = caps.get(1).map_or("", |m| m.as_str());
                let secret = caps.get(2).map_or("", |m| m.as_str());
                let after = caps.get(3).map_or("", |m| m.as_str());
                if secret.starts_with(REDACTED) {
                    format!("{keep}{secret}{after}")
                } else {
                    format!("{keep}{REDACTED}{after}")
                }
            })
            .into_owned();
    }
    text
}

/// The last `lines` lines of `text`, then its last `max_bytes` bytes: from the first line
/// start that fits, or (one line longer than that) from a character boundary.
pub fn tail(text: &str, lines: usize, max_bytes: usize) -> String {
    let mut start = text.len();
    for _ in 0..lines {
        match text[..start].rfind('\n') {
            Some(newline) => start = newline,
            None => {
                start = 0;
                break;
            }
        }
    }
    let mut kept = text[start..].trim_start_matches('\n');
    if kept.len() > max_bytes {
        let cut = kept.len() - max_bytes;
        kept = match kept[cut..].find('\n') {
            Some(newline) => &kept[cut + newline + 1..],
            None => {
                let mut at = cut;
                while !kept.is_char_boundary(at) {
                    at += 1;
                }
                &kept[at..]
            }
        };
    }
    kept.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(raw: &str) -> String {
        sanitise(raw.as_bytes(), true, &[])
    }

    #[test]
    fn every_credential_pattern_compiles() {
        assert_eq!(CREDENTIALS.len(), 7);
    }

    #[test]
    fn escapes_and_control_characters_are_stripped() {
        assert_eq!(
            clean("\u{1b}[31merror\u{1b}[0m: bad\u{7}\u{0}\tthing"),
            "error: bad thing"
        );
        assert_eq!(
            clean("\u{1b}]0;title\u{7}a\u{1b}]8;;http://x\u{1b}\\link\u{1b}(Bb"),
            "alinkb"
        );
        assert_eq!(
            clean("progress 10%\rprogress 100%\r\ndone"),
            "progress 10%\nprogress 100%\ndone"
        );
        assert_eq!(clean("a\u{202e}b\u{2066}c\u{9b}2Jd\u{85}e"), "abcde");
        assert_eq!(clean("unterminated \u{1b}["), "unterminated ");
        let out = clean("\u{1b}[2J\u{1b}[H\u{8}\u{7f}x");
        assert_eq!(out, "x");
        assert!(out.chars().all(|c| !c.is_control()));
    }

    #[test]
    fn invalid_utf8_is_decoded_leniently() {
        assert_eq!(
            sanitise(b"ok \xff\xfe end", true, &[]),
            "ok \u{fffd}\u{fffd} end"
        );
    }

    #[test]
    fn secrets_and_credential_patterns_are_redacted() {
        let secrets = vec!["s3cr3t-push-password".to_string()];
        let log = "login with s3cr3t-push-password\n\
                   Authorization: Bearer abc.def\n\
                   password=hunter22 user=bob\n\
                   \"auth\": \"dXNlcjpwYXNz\"\n\
                   pulling https://bob:pa55@registry.example/x\n\
                   token ghp_0123456789abcdefghijABCDEFGHIJ012345\n\
                   key AKIAABCDEFGHIJKLMNOP\n\
                   jwt eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.c2lnbmF0dXJlMTIz\n\
                   -----BEGIN RSA PRIVATE KEY----- xyz";
        let out = sanitise(log.as_bytes(), true, &secrets);
        for leaked in [
            "s3cr3t-push-password",
            "abc.def",
            "hunter22",
            "dXNlcjpwYXNz",
            "pa55",
            "ghp_0123",
            "AKIAABCD",
            "eyJhbGciOiJIUzI1",
            "BEGIN RSA",
        ] {
            assert!(!out.contains(leaked), "{leaked} in {out}");
        }
        assert!(out.contains("login with [redacted]"), "{out}");
        assert!(out.contains("password=[redacted] user=bob"), "{out}");
        assert!(
            out.contains("https://bob:[redacted]@registry.example/x"),
            "{out}"
        );
    }

    #[test]
    fn secret_values_of_a_docker_config() {
        let config =
            r#"{"auths":{"registry.example":{"auth":"Ym9iOnBhNTV3MHJk","password":"pa55w0rd"}}}"#;
        let data = BTreeMap::from([(
            "config.json".to_string(),
            ByteString(config.as_bytes().to_vec()),
        )]);
        let values = secret_values(&data);
        for expected in ["Ym9iOnBhNTV3MHJk", "bob:pa55w0rd", "pa55w0rd", config] {
            assert!(
                values.iter().any(|v| v == expected),
                "{expected}: {values:?}"
            );
        }
        assert!(values.windows(2).all(|w| w[0].len() >= w[1].len()));
        let out = sanitise(b"denied for bob:pa55w0rd (Ym9iOnBhNTV3MHJk)", true, &values);
        assert_eq!(out, "denied for [redacted] ([redacted])");
        let short = BTreeMap::from([("k".to_string(), ByteString(b"ab".to_vec()))]);
        assert!(secret_values(&short).iter().all(|v| v.len() >= 4));
    }

    #[test]
    fn the_tail_is_bounded_by_lines_and_bytes() {
        let log: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        let out = clean(&log);
        assert_eq!(out.lines().count(), TAIL_LINES);
        assert!(
            out.starts_with("line 81\n") && out.ends_with("line 100"),
            "{out}"
        );
        let long: String = (0..30)
            .map(|i| format!("{i:03}{}\n", "x".repeat(200)))
            .collect();
        let out = clean(&long);
        assert!(out.len() <= TAIL_BYTES, "{}", out.len());
        assert!(out.starts_with("0"), "from a line start: {out}");
        assert!(out.ends_with('x'));
        let one_line = "é".repeat(5000);
        let out = clean(&one_line);
        assert!(out.len() <= TAIL_BYTES && !out.is_empty());
    }

    #[test]
    fn a_cut_off_last_line_is_dropped() {
        let secrets = vec!["abcdefghij".to_string()];
        assert_eq!(sanitise(b"first\nsecond abcde", false, &secrets), "first");
        assert_eq!(
            sanitise(b"first\nsecond abcde", true, &secrets),
            "first\nsecond abcde"
        );
    }

    #[test]
    fn wants_the_log_only_for_an_unrecorded_failure() {
        let failed = BuildObservation::Failed {
            reason: "BackoffLimitExceeded".into(),
            message: String::new(),
        };
        let building = ReviewAppStatus {
            build_status: Some(BuildStatus::Building),
            ..ReviewAppStatus::default()
        };
        let recorded = ReviewAppStatus {
            build_status: Some(BuildStatus::Error),
            ..ReviewAppStatus::default()
        };
        assert!(wants_failure_log(Some(&building), &failed));
        assert!(wants_failure_log(None, &failed));
        assert!(!wants_failure_log(Some(&recorded), &failed));
        for other in [
            BuildObservation::Running,
            BuildObservation::Succeeded,
            BuildObservation::Missing,
        ] {
            assert!(!wants_failure_log(Some(&building), &other));
        }
    }
}
