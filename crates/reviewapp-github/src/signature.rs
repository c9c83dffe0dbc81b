//! The webhook signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`, keyed
//! with the webhook secret and compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a delivery is not authentic. The messages never include the secret or the signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Hub-Signature-256` header.
    #[error("missing X-Hub-Signature-256")]
    Missing,
    /// The header is not `sha256=` and 64 hexadecimal digits.
    #[error("malformed X-Hub-Signature-256")]
    Malformed,
    /// The signature does not match the body.
    #[error("X-Hub-Signature-256 does not match the body")]
    Mismatch,
}

/// Checks `header` (the value of `X-Hub-Signature-256`) against `body` signed with `secret`.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&[u8]>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex = header
        .strip_prefix(b"sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = decode_hex(hex).ok_or(SignatureError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The header value GitHub would send for `body` (for tests, the fake API and benchmarks).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// 32 bytes from 64 hexadecimal digits (either case).
fn decode_hex(hex: &[u8]) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        let value = digit(pair[0])? * 16 + digit(pair[1])?;
        out[i] = u8::try_from(value).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn githubs_documented_example() {
        // From GitHub's "Validating webhook deliveries": secret "It's a Secret to Everybody",
        // payload "Hello, World!".
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(
            sign(b"It's a Secret to Everybody", b"Hello, World!"),
            header
        );
        assert_eq!(
            verify(
                b"It's a Secret to Everybody",
                b"Hello, World!",
                Some(header.as_bytes())
            ),
            Ok(())
        );
        let upper = header.to_uppercase().replace("SHA256=", "sha256=");
        assert_eq!(
            verify(
                b"It's a Secret to Everybody",
                b"Hello, World!",
                Some(upper.as_bytes())
            ),
            Ok(())
        );
    }

    #[test]
    fn rejects_missing_malformed_and_wrong() {
        let body = b"{}";
        let good = sign(b"s", body);
        assert_eq!(verify(b"s", body, None), Err(SignatureError::Missing));
        for bad in [
            "",
            "sha1=abc",
            "sha256=",
            "sha256=zz",
            &good[..good.len() - 1],
        ] {
            assert_eq!(
                verify(b"s", body, Some(bad.as_bytes())),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            verify(b"other", body, Some(good.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"s", b"{ }", Some(good.as_bytes())),
            Err(SignatureError::Mismatch)
        );
    }
}
