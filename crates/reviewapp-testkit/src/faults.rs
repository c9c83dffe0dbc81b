//! Fault injection: the next n matching requests fail with a given code, or a deterministic
//! pseudo-random share of non-watch requests fails with 500, 429 or 409.

use std::time::Duration;

use crate::handle::RequestRecord;
use crate::meta::splitmix64;

/// A predicate on requests (the record's `status` is 0: not answered yet).
pub(crate) type Predicate = Box<dyn Fn(&RequestRecord) -> bool + Send>;

/// Which requests a [`crate::Handle::fail_next`] rule applies to; `None` fields match anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestMatcher {
    /// HTTP method (`GET`, `POST`, `PUT`, `PATCH`, `DELETE`), case-insensitive.
    pub method: Option<String>,
    /// A substring of the request path (no query string).
    pub path_contains: Option<String>,
    /// Watch requests only (`true`) or non-watch requests only (`false`).
    pub watch: Option<bool>,
}

impl RequestMatcher {
    /// Matches every request.
    pub fn any() -> Self {
        Self::default()
    }

    /// Matches requests with this method.
    pub fn method(method: &str) -> Self {
        Self {
            method: Some(method.to_string()),
            ..Self::default()
        }
    }

    /// Also requires `fragment` in the path.
    #[must_use]
    pub fn path_contains(mut self, fragment: &str) -> Self {
        self.path_contains = Some(fragment.to_string());
        self
    }

    /// Also requires the request to be (or not be) a watch.
    #[must_use]
    pub fn watch(mut self, watch: bool) -> Self {
        self.watch = Some(watch);
        self
    }

    /// Whether a request matches.
    pub fn matches(&self, method: &str, path: &str, watch: bool) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_contains
                .as_deref()
                .is_none_or(|f| path.contains(f))
            && self.watch.is_none_or(|w| w == watch)
    }
}

/// Which requests a rule or the ratio applies to.
pub(crate) enum Selection {
    Fields(RequestMatcher),
    Predicate(Predicate),
}

impl Selection {
    fn matches(&self, request: &RequestRecord) -> bool {
        match self {
            Selection::Fields(m) => m.matches(&request.method, &request.path, request.watch),
            Selection::Predicate(p) => p(request),
        }
    }
}

struct Rule {
    selection: Selection,
    remaining: u64,
    code: u16,
}

/// The fault configuration of one emulator.
pub(crate) struct Faults {
    rules: Vec<Rule>,
    ratio: f64,
    ratio_scope: Option<Predicate>,
    rng: u64,
    pub(crate) latency: Duration,
}

impl Faults {
    /// No faults.
    pub(crate) fn new() -> Self {
        Self {
            rules: Vec::new(),
            ratio: 0.0,
            ratio_scope: None,
            rng: 0,
            latency: Duration::ZERO,
        }
    }

    /// Adds a rule failing the next `n` matching requests with `code`.
    pub(crate) fn fail_next(&mut self, selection: Selection, n: u64, code: u16) {
        if n > 0 {
            self.rules.push(Rule {
                selection,
                remaining: n,
                code,
            });
        }
    }

    /// Fails `ratio` of the non-watch requests `scope` selects (all when `None`), drawn from
    /// a generator seeded with `seed`.
    pub(crate) fn fail_ratio(&mut self, ratio: f64, seed: u64, scope: Option<Predicate>) {
        self.ratio = if ratio.is_finite() {
            ratio.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.rng = seed;
        self.ratio_scope = scope;
    }

    /// Removes every rule and the ratio (latency stays).
    pub(crate) fn clear(&mut self) {
        self.rules.clear();
        self.ratio = 0.0;
        self.ratio_scope = None;
    }

    /// The code this request must fail with, if any (consumes one use of a rule).
    pub(crate) fn check(&mut self, request: &RequestRecord) -> Option<u16> {
        if let Some(rule) = self
            .rules
            .iter_mut()
            .find(|r| r.remaining > 0 && r.selection.matches(request))
        {
            rule.remaining -= 1;
            let code = rule.code;
            self.rules.retain(|r| r.remaining > 0);
            return Some(code);
        }
        if request.watch
            || self.ratio <= 0.0
            || self.ratio_scope.as_ref().is_some_and(|p| !p(request))
        {
            return None;
        }
        let draw = splitmix64(&mut self.rng);
        #[allow(clippy::cast_precision_loss)]
        let unit = (draw >> 11) as f64 / (1u64 << 53) as f64;
        if unit >= self.ratio {
            return None;
        }
        Some(match splitmix64(&mut self.rng) % 3 {
            0 => 500,
            1 => 429,
            _ => 409,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str, watch: bool) -> RequestRecord {
        RequestRecord {
            method: method.into(),
            path: path.into(),
            query: String::new(),
            content_type: None,
            watch,
            status: 0,
            actor: None,
            received: std::time::Instant::now(),
        }
    }

    #[test]
    fn rules_are_consumed_in_order() {
        let mut f = Faults::new();
        let jobs = RequestMatcher::method("post").path_contains("/jobs");
        f.fail_next(Selection::Fields(jobs), 2, 500);
        f.fail_next(Selection::Fields(RequestMatcher::any().watch(true)), 1, 503);
        let post = req("POST", "/apis/batch/v1/namespaces/a/jobs", false);
        assert_eq!(f.check(&req("GET", "/api/v1/jobs", false)), None);
        assert_eq!(f.check(&post), Some(500));
        assert_eq!(f.check(&req("GET", "/api/v1/pods", true)), Some(503));
        assert_eq!(f.check(&req("GET", "/api/v1/pods", true)), None);
        assert_eq!(f.check(&post), Some(500));
        assert_eq!(f.check(&post), None);
        let actor = Selection::Predicate(Box::new(|r| r.actor.as_deref() == Some("op")));
        f.fail_next(actor, 1, 503);
        assert_eq!(f.check(&post), None);
        let mut mine = post.clone();
        mine.actor = Some("op".into());
        assert_eq!(f.check(&mine), Some(503));
    }

    #[test]
    fn ratio_is_deterministic_and_spares_watches() {
        let run = |seed| {
            let mut f = Faults::new();
            f.fail_ratio(0.3, seed, None);
            (0..1000)
                .map(|_| f.check(&req("GET", "/x", false)))
                .collect::<Vec<_>>()
        };
        let a = run(42);
        assert_eq!(a, run(42));
        assert_ne!(a, run(43));
        let failed = a.iter().filter(|c| c.is_some()).count();
        assert!((200..400).contains(&failed), "{failed}");
        for code in [500, 429, 409] {
            assert!(a.contains(&Some(code)));
        }
        let mut f = Faults::new();
        f.fail_ratio(1.0, 1, None);
        assert_eq!(f.check(&req("GET", "/x", true)), None);
        f.fail_ratio(1.0, 1, Some(Box::new(|r| r.method == "PUT")));
        assert_eq!(f.check(&req("GET", "/x", false)), None);
        assert!(f.check(&req("PUT", "/x", false)).is_some());
        f.fail_ratio(0.0, 1, None);
        assert_eq!(f.check(&req("GET", "/x", false)), None);
    }
}
