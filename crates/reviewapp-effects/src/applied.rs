//! The applied-manifest memory: per child, a hash of the manifest last applied successfully and
//! the resourceVersions around that apply, so that an apply whose desired state already holds
//! is skipped.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use reviewapp_resources::ChildRef;
use serde_json::Value;

use crate::Lookup;

/// What was last applied to one child.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Applied {
    /// Hash of the manifest JSON.
    hash: u64,
    /// resourceVersion the server returned for the apply.
    returned: Option<String>,
    /// resourceVersion the live index reported just before the apply (a watch cache that has
    /// not seen our own write yet still reports it).
    seen: Option<String>,
    /// The watch cache has shown the object at `returned` since the apply.
    confirmed: bool,
    /// When the apply happened.
    at: Instant,
}

/// How long an object we created may stay absent from the watch cache before "absent" is taken
/// as "deleted behind our back" rather than "the watch has not caught up yet".
const CACHE_LAG: Duration = Duration::from_secs(30);

/// Per-child memory of successful applies. Shared by every app's handler; only the handler of
/// a child's app touches its entry, so a plain mutex suffices.
#[derive(Debug, Default)]
pub(crate) struct AppliedMemory {
    entries: Mutex<HashMap<ChildRef, Applied>>,
}

/// Hash of a manifest (its compact JSON): the first 8 bytes of its SHA-256, stable across
/// processes and builds (it is also written into [`crate::APPLIED_HASH_ANNOTATION`]).
pub(crate) fn manifest_hash(object: &Value) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(object.to_string().as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The annotation value for a hash.
pub(crate) fn hash_label(hash: u64) -> String {
    format!("{hash:016x}")
}

pub(crate) fn live_version(lookup: &Lookup) -> Option<String> {
    match lookup {
        Lookup::Present { resource_version } => Some(resource_version.clone()),
        Lookup::Absent | Lookup::Unknown => None,
    }
}

impl AppliedMemory {
    /// Does applying a manifest with `hash` to `child` change nothing? True when the same
    /// manifest was applied last and the object is still what that apply left: present with
    /// the returned (or the pre-apply) resourceVersion, or of a kind nobody watches.
    pub(crate) fn holds(
        &self,
        child: &ChildRef,
        hash: u64,
        lookup: &Lookup,
        live_hash: Option<&str>,
    ) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(applied) = entries.get_mut(child) else {
            // Nothing remembered (say, after a restart): adopt an object whose annotation says
            // it was applied from this very manifest, and remember it as ours at its version.
            if let Lookup::Present { resource_version } = lookup
                && live_hash == Some(hash_label(hash).as_str())
            {
                entries.insert(
                    child.clone(),
                    Applied {
                        hash,
                        returned: Some(resource_version.clone()),
                        seen: None,
                        confirmed: true,
                        at: Instant::now(),
                    },
                );
                return true;
            }
            return false;
        };
        if applied.hash != hash {
            return false;
        }
        match lookup {
            Lookup::Present { resource_version } => {
                if applied.returned.as_deref() == Some(resource_version.as_str()) {
                    applied.confirmed = true;
                    return true;
                }
                // The cache still shows the object as it was just before our apply.
                !applied.confirmed && applied.seen.as_deref() == Some(resource_version.as_str())
            }
            // We created it and the cache has not caught up yet. Once the cache has shown it
            // (or after a generous lag), absent means deleted behind our back: re-apply.
            Lookup::Absent => {
                applied.seen.is_none() && !applied.confirmed && applied.at.elapsed() < CACHE_LAG
            }
            Lookup::Unknown => true,
        }
    }

    /// Records a successful apply.
    pub(crate) fn remember(
        &self,
        child: &ChildRef,
        hash: u64,
        returned: Option<String>,
        seen: Option<String>,
    ) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.insert(
            child.clone(),
            Applied {
                hash,
                returned,
                seen,
                confirmed: false,
                at: Instant::now(),
            },
        );
    }

    /// Whether an apply of `child` is remembered.
    pub(crate) fn contains(&self, child: &ChildRef) -> bool {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(child)
    }

    /// Forgets `child` (deleted, or an apply of it failed).
    pub(crate) fn forget(&self, child: &ChildRef) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.remove(child);
    }

    /// Number of remembered children.
    pub(crate) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use reviewapp_resources::ChildKind;
    use serde_json::json;

    use super::*;

    fn present(rv: &str) -> Lookup {
        Lookup::Present {
            resource_version: rv.into(),
        }
    }

    #[test]
    fn skip_rule() {
        let memory = AppliedMemory::default();
        let child = ChildRef::new(ChildKind::Service, "ns", "app");
        let hash = manifest_hash(&json!({"a": 1}));
        let other = manifest_hash(&json!({"a": 2}));
        // Nothing remembered: always apply.
        for lookup in [present("1"), Lookup::Absent, Lookup::Unknown] {
            assert!(!memory.holds(&child, hash, &lookup, None));
        }
        memory.remember(&child, hash, Some("7".into()), Some("5".into()));
        assert!(
            memory.holds(&child, hash, &present("5"), None),
            "cache lagging"
        );
        assert!(memory.holds(&child, hash, &Lookup::Unknown, None));
        assert!(memory.holds(&child, hash, &present("7"), None));
        assert!(
            !memory.holds(&child, hash, &present("5"), None),
            "once confirmed, an older version is not ours"
        );
        assert!(
            !memory.holds(&child, hash, &present("8"), None),
            "changed by someone"
        );
        assert!(
            !memory.holds(&child, hash, &Lookup::Absent, None),
            "existed before, now absent: drift"
        );
        assert!(
            !memory.holds(&child, other, &present("7"), None),
            "manifest changed"
        );
        // Created by us: absent until the cache catches up, then present, then deleted.
        let created = ChildRef::new(ChildKind::Deployment, "ns", "new");
        memory.remember(&created, hash, Some("9".into()), None);
        assert!(
            memory.holds(&created, hash, &Lookup::Absent, None),
            "the cache has not seen our create yet"
        );
        assert!(memory.holds(&created, hash, &present("9"), None));
        assert!(
            !memory.holds(&created, hash, &Lookup::Absent, None),
            "seen, then deleted behind our back"
        );
        memory.forget(&child);
        memory.forget(&created);
        assert!(!memory.holds(&child, hash, &present("7"), None));
        assert_eq!(memory.len(), 0);
    }

    #[test]
    fn first_apply_of_an_absent_object_remembers_no_previous_version() {
        let memory = AppliedMemory::default();
        let child = ChildRef::new(ChildKind::Service, "ns", "app");
        memory.remember(&child, 1, Some("3".into()), live_version(&Lookup::Absent));
        assert!(memory.holds(&child, 1, &present("3"), None));
        assert!(!memory.holds(&child, 1, &present(""), None));
    }
}
