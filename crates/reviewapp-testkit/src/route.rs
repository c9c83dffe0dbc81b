//! Request paths (`/api/v1/...`, `/apis/{group}/{version}/...`) and query strings.

use crate::resource::ResourceKey;

/// What a resource path addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The group, version and plural addressed.
    pub res: ResourceKey,
    /// The namespace from `/namespaces/{ns}/`, `None` for a cluster-wide path.
    pub namespace: Option<String>,
    /// The object name; `None` for the collection.
    pub name: Option<String>,
    /// A subresource (`status`).
    pub subresource: Option<String>,
}

/// Parses a resource path; `None` when it is not one.
pub fn parse_path(path: &str) -> Option<Target> {
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false))
        .collect();
    let (group, version, rest) = match segments.as_slice() {
        [api, version, rest @ ..] if api == "api" => ("", version.as_str(), rest),
        [apis, group, version, rest @ ..] if apis == "apis" => {
            (group.as_str(), version.as_str(), rest)
        }
        _ => return None,
    };
    let target = |namespace: Option<&String>,
                  plural: &String,
                  name: Option<&String>,
                  sub: Option<&String>| {
        Some(Target {
            res: ResourceKey::new(group, version, plural),
            namespace: namespace.cloned(),
            name: name.cloned(),
            subresource: sub.cloned(),
        })
    };
    match rest {
        // The namespace object itself and its subresources.
        [namespaces, name, sub]
            if namespaces == "namespaces" && group.is_empty() && is_namespace_sub(sub) =>
        {
            target(None, namespaces, Some(name), Some(sub))
        }
        [namespaces, ns, plural, tail @ ..] if namespaces == "namespaces" && tail.len() <= 2 => {
            target(Some(ns), plural, tail.first(), tail.get(1))
        }
        [plural, tail @ ..] if tail.len() <= 2 => target(None, plural, tail.first(), tail.get(1)),
        _ => None,
    }
}

fn is_namespace_sub(sub: &str) -> bool {
    matches!(sub, "status" | "finalize")
}

/// A parsed query string.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses `a=b&c=d` (a leading `&`, as kube sends, is fine).
    pub fn parse(raw: &str) -> Self {
        let pairs = raw
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) => (percent_decode(k, true), percent_decode(v, true)),
                None => (percent_decode(pair, true), String::new()),
            })
            .collect();
        Self { pairs }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `key` is `true` (or `1`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

/// Decodes `%XX` escapes (and `+` as a space in query strings); invalid escapes stay as is.
pub fn percent_decode(input: &str, plus_is_space: bool) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes.get(i) {
            Some(b'%') => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            Some(b'+') if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            Some(b) => {
                out.push(*b);
                i += 1;
            }
            None => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parts = (String, Option<String>, Option<String>, Option<String>);

    fn t(path: &str) -> Option<Parts> {
        parse_path(path).map(|t| (t.res.to_string(), t.namespace, t.name, t.subresource))
    }

    #[test]
    fn paths() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            t("/api/v1/namespaces/ns/configmaps/a"),
            Some(("configmaps".into(), s("ns"), s("a"), None))
        );
        assert_eq!(
            t("/api/v1/namespaces/ns"),
            Some(("namespaces".into(), None, s("ns"), None))
        );
        assert_eq!(
            t("/api/v1/namespaces"),
            Some(("namespaces".into(), None, None, None))
        );
        assert_eq!(
            t("/api/v1/namespaces/ns/status"),
            Some(("namespaces".into(), None, s("ns"), s("status")))
        );
        assert_eq!(
            t("/apis/batch/v1/namespaces/b/jobs/j/status"),
            Some(("jobs.batch".into(), s("b"), s("j"), s("status")))
        );
        assert_eq!(
            t("/apis/reviewtron.k8s.revelry.co/v1/reviewapps/x"),
            Some((
                "reviewapps.reviewtron.k8s.revelry.co".into(),
                None,
                s("x"),
                None
            ))
        );
        assert_eq!(
            t("/apis/apps/v1/deployments"),
            Some(("deployments.apps".into(), None, None, None))
        );
        assert_eq!(t("/version"), None);
        assert_eq!(t("/apis/apps/v1"), None);
        assert_eq!(t("/api/v1/namespaces/a/b/c/d/e"), None);
    }

    #[test]
    fn queries() {
        let q = Query::parse("&watch=true&labelSelector=app%3Dx%2Ctier+in+%28a%2Cb%29&force=1");
        assert!(q.flag("watch"));
        assert!(q.flag("force"));
        assert_eq!(q.get("labelSelector"), Some("app=x,tier in (a,b)"));
        assert_eq!(q.get("missing"), None);
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
    }
}
