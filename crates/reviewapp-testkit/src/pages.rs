//! List pagination (`limit` and `continue`), served like etcd serves it: the first page fixes a
//! snapshot, and every later page of that list comes from the same snapshot at the same
//! resourceVersion, whatever changed in between.

use std::collections::VecDeque;

use serde_json::Value;

use crate::resource::ResourceKey;
use crate::status::ApiError;

/// Unfinished lists kept at once; the oldest is forgotten first (its token then gets `410`).
const MAX_OPEN_LISTS: usize = 16;

/// One page of a list.
#[derive(Debug, PartialEq)]
pub(crate) struct Page {
    /// The objects of this page.
    pub items: Vec<Value>,
    /// The resourceVersion of the whole list (the first page's).
    pub resource_version: u64,
    /// The token for the next page, when there is one.
    pub continue_token: Option<String>,
    /// Objects after this page, when there is a next one.
    pub remaining: Option<usize>,
}

/// A list being read page by page.
struct Snapshot {
    id: u64,
    /// The resource and namespace listed: a token is only good for the same list.
    res: ResourceKey,
    namespace: Option<String>,
    resource_version: u64,
    items: Vec<Value>,
}

/// The unfinished lists.
#[derive(Default)]
pub(crate) struct Pages {
    next_id: u64,
    open: VecDeque<Snapshot>,
}

/// The `410 Expired` answer to a token whose list is gone, with the real server's message.
fn expired_token() -> ApiError {
    ApiError::new(
        410,
        "Expired",
        "The provided continue parameter is too old to display a consistent list result. \
         You can start a new list without the continue parameter.",
    )
}

fn invalid_token(token: &str) -> ApiError {
    ApiError::bad_request(format!("continue key is not valid: {token:?}"))
}

/// `limit` as given: absent, unparsable or zero means "everything".
pub(crate) fn parse_limit(raw: Option<&str>) -> Option<usize> {
    raw.and_then(|s| s.parse::<usize>().ok()).filter(|l| *l > 0)
}

impl Pages {
    /// The first page of a list of `items` taken at `resource_version`.
    pub(crate) fn first(
        &mut self,
        res: &ResourceKey,
        namespace: Option<&str>,
        items: Vec<Value>,
        resource_version: u64,
        limit: Option<usize>,
    ) -> Page {
        let Some(limit) = limit.filter(|l| *l < items.len()) else {
            return Page {
                items,
                resource_version,
                continue_token: None,
                remaining: None,
            };
        };
        self.next_id += 1;
        let snapshot = Snapshot {
            id: self.next_id,
            res: res.clone(),
            namespace: namespace.map(str::to_string),
            resource_version,
            items,
        };
        let page = snapshot.page(0, limit);
        self.keep(snapshot);
        page
    }

    /// The page after `token` for `res`.
    pub(crate) fn next(
        &mut self,
        res: &ResourceKey,
        namespace: Option<&str>,
        token: &str,
        limit: Option<usize>,
    ) -> Result<Page, ApiError> {
        let (id, offset) = token
            .split_once('-')
            .and_then(|(id, at)| Some((id.parse::<u64>().ok()?, at.parse::<usize>().ok()?)))
            .ok_or_else(|| invalid_token(token))?;
        let index = self
            .open
            .iter()
            .position(|s| s.id == id)
            .ok_or_else(expired_token)?;
        let snapshot = &self.open[index];
        if snapshot.res != *res
            || snapshot.namespace.as_deref() != namespace
            || offset == 0
            || offset >= snapshot.items.len()
        {
            return Err(invalid_token(token));
        }
        let page = snapshot.page(offset, limit.unwrap_or(usize::MAX));
        if page.continue_token.is_none() {
            // The list was read to its end: it is not kept any longer.
            self.open.remove(index);
        }
        Ok(page)
    }

    /// Forgets every unfinished list (compaction): their tokens get `410 Expired`.
    pub(crate) fn expire(&mut self) {
        self.open.clear();
    }

    fn keep(&mut self, snapshot: Snapshot) {
        self.open.push_back(snapshot);
        while self.open.len() > MAX_OPEN_LISTS {
            self.open.pop_front();
        }
    }
}

impl Snapshot {
    /// Up to `limit` objects from `offset`, and the token after them when any are left.
    fn page(&self, offset: usize, limit: usize) -> Page {
        let end = offset.saturating_add(limit).min(self.items.len());
        let items = self.items.get(offset..end).unwrap_or_default().to_vec();
        let left = self.items.len() - end;
        Page {
            items,
            resource_version: self.resource_version,
            continue_token: (left > 0).then(|| format!("{}-{end}", self.id)),
            remaining: (left > 0).then_some(left),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn res() -> ResourceKey {
        ResourceKey::new("batch", "v1", "jobs")
    }

    fn items(n: usize) -> Vec<Value> {
        (0..n).map(|i| json!({"i": i})).collect()
    }

    fn numbers(page: &Page) -> Vec<u64> {
        page.items.iter().filter_map(|v| v["i"].as_u64()).collect()
    }

    #[test]
    fn pages_cover_the_snapshot_in_order_at_its_resource_version() {
        let mut pages = Pages::default();
        let first = pages.first(&res(), None, items(5), 7, Some(2));
        assert_eq!(numbers(&first), [0, 1]);
        assert_eq!(first.remaining, Some(3));
        let token = first.continue_token.clone().unwrap();
        let second = pages.next(&res(), None, &token, Some(2)).unwrap();
        assert_eq!(numbers(&second), [2, 3]);
        assert_eq!(second.resource_version, 7);
        let third = pages
            .next(
                &res(),
                None,
                second.continue_token.as_deref().unwrap(),
                Some(2),
            )
            .unwrap();
        assert_eq!(numbers(&third), [4]);
        assert_eq!(third.continue_token, None);
        assert_eq!(third.remaining, None);
        // The finished list is forgotten.
        assert_eq!(
            pages.next(&res(), None, &token, Some(2)).unwrap_err().code,
            410
        );
    }

    #[test]
    fn no_limit_or_a_limit_above_the_count_is_one_page() {
        let mut pages = Pages::default();
        for limit in [None, Some(5), Some(9)] {
            let page = pages.first(&res(), None, items(5), 1, limit);
            assert_eq!(page.items.len(), 5);
            assert_eq!(page.continue_token, None);
        }
        assert!(pages.open.is_empty());
    }

    #[test]
    fn a_foreign_or_garbage_token_is_refused_and_a_replayed_one_is_served_again() {
        let mut pages = Pages::default();
        let first = pages.first(&res(), None, items(6), 1, Some(2));
        let token = first.continue_token.unwrap();
        let other = ResourceKey::new("", "v1", "configmaps");
        assert_eq!(
            pages.next(&other, None, &token, Some(2)).unwrap_err().code,
            400
        );
        assert_eq!(
            pages
                .next(&res(), Some("ns"), &token, Some(2))
                .unwrap_err()
                .code,
            400
        );
        for garbage in ["nonsense", "1-0", "1-6", "1-x", "x-2"] {
            assert_eq!(
                pages.next(&res(), None, garbage, None).unwrap_err().code,
                400,
                "{garbage}"
            );
        }
        let again = pages.next(&res(), None, &token, Some(2)).unwrap();
        assert_eq!(numbers(&again), [2, 3]);
        assert_eq!(
            numbers(&pages.next(&res(), None, &token, Some(2)).unwrap()),
            [2, 3]
        );
    }

    #[test]
    fn expiry_and_eviction_turn_tokens_into_410() {
        let mut pages = Pages::default();
        let token = pages
            .first(&res(), None, items(3), 1, Some(1))
            .continue_token
            .unwrap();
        pages.expire();
        assert_eq!(
            pages.next(&res(), None, &token, None).unwrap_err().code,
            410
        );

        let oldest = pages
            .first(&res(), None, items(3), 1, Some(1))
            .continue_token
            .unwrap();
        for _ in 0..MAX_OPEN_LISTS {
            pages.first(&res(), None, items(3), 1, Some(1));
        }
        assert_eq!(
            pages.next(&res(), None, &oldest, None).unwrap_err().code,
            410
        );
    }

    #[test]
    fn zero_or_garbage_limit_means_everything() {
        assert_eq!(parse_limit(None), None);
        assert_eq!(parse_limit(Some("0")), None);
        assert_eq!(parse_limit(Some("x")), None);
        assert_eq!(parse_limit(Some("500")), Some(500));
    }
}
