//! `build.cache`: the registry build cache, and the checks that keep every cache reference the
//! build Job receives a plain image reference (no spaces, commas or `=` that would add options
//! to BuildKit's `type=registry,ref=...` or kaniko's flags). See `docs/configuration.md`.

use serde::{Deserialize, Serialize};

use super::{BuilderKind, ConfigError, OperatorConfig};

/// `build.cache`: where builds export and import their layer cache.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct BuildCacheConfig {
    /// Export and import a registry cache per app, next to its image
    /// (`<registry>/<app>:buildcache` for BuildKit, the repository `<registry>/<app>/cache` for
    /// kaniko).
    pub enabled: bool,
    /// More cache references every BuildKit build imports from (never exports to), e.g. the
    /// default branch's cache, so that a pull request's first build reuses its layers.
    pub import_from: Vec<String>,
}

impl OperatorConfig {
    /// Rejects a cache no build could use: enabled without a `registry` (or with one that is
    /// not a registry prefix), `importFrom` entries that are not image references, and
    /// `importFrom` with kaniko (which reads and writes one cache repository only).
    pub(super) fn check_build_cache(&self) -> Result<(), ConfigError> {
        let cache = &self.build.cache;
        if cache.enabled && !is_registry_prefix(&self.registry) {
            return Err(ConfigError::Invalid {
                key: "build.cache.enabled",
                reason: "needs `registry` set to a registry prefix (host[:port][/path]), where the cache is pushed".into(),
            });
        }
        if let Some(bad) = cache.import_from.iter().find(|r| !is_image_reference(r)) {
            return Err(ConfigError::Invalid {
                key: "build.cache.importFrom",
                reason: format!("{bad:?} is not an image reference (host[:port]/path[:tag])"),
            });
        }
        if cache.enabled
            && !cache.import_from.is_empty()
            && self.builder.kind == BuilderKind::Kaniko
        {
            return Err(ConfigError::Invalid {
                key: "build.cache.importFrom",
                reason: "kaniko reads and writes one cache repository per app and cannot import \
                         others; use builder.kind: buildkit, or leave importFrom empty"
                    .into(),
            });
        }
        Ok(())
    }
}

/// One path component of a repository: lowercase letters and digits, separated by `.`, `_`,
/// `__` or runs of `-`.
fn is_path_component(s: &str) -> bool {
    let bytes = s.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
        return false;
    }
    let mut previous_separator: Option<u8> = None;
    for b in bytes {
        if alnum(b) {
            previous_separator = None;
            continue;
        }
        let ok = matches!(
            (previous_separator, *b),
            (None, b'.' | b'_' | b'-') | (Some(b'_'), b'_') | (Some(b'-'), b'-')
        );
        if !ok {
            return false;
        }
        previous_separator = Some(*b);
    }
    true
}

/// A registry host, optionally with a port: DNS-like labels (letters, digits, `-`) joined by
/// `.`, or `localhost`.
fn is_host(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (s, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    port_ok && !host.is_empty() && host.split('.').all(label_ok)
}

/// `host[:port]` followed by zero or more `/component`s: where images and caches are pushed.
pub fn is_registry_prefix(s: &str) -> bool {
    let s = s.trim_end_matches('/');
    let mut parts = s.split('/');
    parts.next().is_some_and(is_host) && parts.all(is_path_component) && s.len() <= 255
}

/// An image reference: `[host[:port]/]path[:tag][@sha256:digest]`, the grammar registries
/// accept (lowercase repository, tag of letters, digits, `_`, `.`, `-` up to 128).
pub fn is_image_reference(s: &str) -> bool {
    if s.is_empty() || s.len() > 512 {
        return false;
    }
    let (rest, digest) = match s.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (s, None),
    };
    let digest_ok = digest.is_none_or(|d| {
        d.strip_prefix("sha256:")
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    // A tag follows the last ':' after the last '/'.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    let tag_ok = tag.is_none_or(|t| {
        !t.is_empty()
            && t.len() <= 128
            && !t.starts_with(['.', '-'])
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    });
    let mut components: Vec<&str> = name.split('/').collect();
    let first_is_host = components.len() > 1
        && components
            .first()
            .is_some_and(|c| c.contains(['.', ':']) || *c == "localhost");
    let host_ok = !first_is_host || components.first().is_some_and(|c| is_host(c));
    if first_is_host {
        components.remove(0);
    }
    digest_ok
        && tag_ok
        && host_ok
        && !components.is_empty()
        && components.iter().all(|c| is_path_component(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        for good in [
            "registry.example/review/main:buildcache",
            "localhost:5000/app:cache",
            "ghcr.io/org/app",
            "app",
            "registry.example/a/b__c/d-e:v1.2_3",
            "registry.example/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(is_image_reference(good), "{good}");
        }
        for bad in [
            "",
            "registry.example/app:cache,mode=max",
            "registry.example/app:cache ref=x",
            "Registry.example/App:cache",
            "registry.example/app:",
            "registry.example//app",
            "registry.example/app:-tag",
            "type=registry,ref=x",
            "registry.example/app@sha256:xyz",
            "registry.example:port/app",
        ] {
            assert!(!is_image_reference(bad), "{bad}");
        }
    }

    #[test]
    fn registry_prefixes() {
        for good in [
            "registry.example/review",
            "localhost:5000",
            "harbor.example.com/",
            "ghcr.io/org",
        ] {
            assert!(is_registry_prefix(good), "{good}");
        }
        for bad in [
            "",
            "registry.example/review,push=false",
            "registry example",
            "reg/Upper",
        ] {
            assert!(!is_registry_prefix(bad), "{bad}");
        }
    }
}
