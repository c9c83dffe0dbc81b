//! The wildcard TLS Secret that is copied next to every app, held by its own watch (one object,
//! selected by name). Copies then need no read per app and tick, and a renewed certificate
//! reaches every app at once instead of on the next tick.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::{Stream, StreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use reviewapp_effects::SecretLookup;

/// One watched Secret.
pub struct SourceSecret {
    namespace: String,
    name: String,
    synced: AtomicBool,
    secret: RwLock<Option<Arc<Secret>>>,
    /// Seen during a relist, swapped in at its end.
    relist: RwLock<Option<Option<Arc<Secret>>>>,
}

/// What a copy takes from the Secret.
type Content<'a> = (&'a Option<String>, &'a Option<BTreeMap<String, ByteString>>);

/// `type` and `data`: a change of anything else (labels, a resync) is not a renewal.
fn content(secret: Option<&Arc<Secret>>) -> Option<Content<'_>> {
    secret.map(|s| (&s.type_, &s.data))
}

/// The Secret as kept: without `managedFields`, which nothing reads.
fn kept(mut secret: Secret) -> Arc<Secret> {
    secret.metadata.managed_fields = None;
    Arc::new(secret)
}

impl SourceSecret {
    /// A cache of `namespace`/`name`, empty and not synced.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            synced: AtomicBool::new(false),
            secret: RwLock::new(None),
            relist: RwLock::new(None),
        }
    }

    /// Whether the first list has completed.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// What the cache knows of `namespace`/`name`: [`SecretLookup::Unknown`] for any other
    /// Secret, or before the first list.
    pub fn lookup(&self, namespace: &str, name: &str) -> SecretLookup {
        if namespace != self.namespace || name != self.name || !self.synced() {
            return SecretLookup::Unknown;
        }
        match self
            .secret
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            Some(secret) => SecretLookup::Found(secret.clone()),
            None => SecretLookup::Absent,
        }
    }

    /// Applies one watch event; true when the copied content (`type`, `data`, or existence)
    /// changed after the first list, i.e. every copy is now stale.
    pub fn apply(&self, event: Event<Secret>) -> bool {
        let replace = |new: Option<Arc<Secret>>| {
            let mut current = self.secret.write().unwrap_or_else(|e| e.into_inner());
            let changed = content(current.as_ref()) != content(new.as_ref());
            *current = new;
            changed && self.synced()
        };
        match event {
            Event::Apply(secret) if self.is_it(&secret) => replace(Some(kept(secret))),
            Event::Delete(secret) if self.is_it(&secret) => replace(None),
            Event::Apply(_) | Event::Delete(_) => false,
            Event::Init => {
                *self.relist.write().unwrap_or_else(|e| e.into_inner()) = Some(None);
                false
            }
            Event::InitApply(secret) => {
                if self.is_it(&secret)
                    && let Some(seen) = self
                        .relist
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .as_mut()
                {
                    *seen = Some(kept(secret));
                }
                false
            }
            Event::InitDone => {
                let seen = self
                    .relist
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .flatten();
                let changed = replace(seen);
                self.synced.store(true, Ordering::Release);
                changed
            }
        }
    }

    fn is_it(&self, secret: &Secret) -> bool {
        secret.metadata.name.as_deref() == Some(self.name.as_str())
            && secret.metadata.namespace.as_deref() == Some(self.namespace.as_str())
    }

    /// The watch of this one Secret (a field selector on its name), retried with backoff.
    pub fn watch(&self, client: kube::Client) -> impl Stream<Item = Event<Secret>> + Send + use<> {
        let api: Api<Secret> = Api::namespaced(client, &self.namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={}", self.name));
        watcher::watcher(api, config)
            .default_backoff()
            .filter_map(|event| async move {
                match event {
                    Ok(event) => Some(event),
                    Err(err) => {
                        tracing::warn!(error = %err, "TLS source Secret watch error; retrying");
                        None
                    }
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use kube::api::ObjectMeta;

    use super::*;

    fn secret(name: &str, cert: &str, rv: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(BTreeMap::from([(
                "tls.crt".to_string(),
                ByteString(cert.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        }
    }

    fn cert_of(lookup: SecretLookup) -> Option<Vec<u8>> {
        match lookup {
            SecretLookup::Found(s) => s.data.as_ref()?.get("tls.crt").map(|b| b.0.clone()),
            _ => None,
        }
    }

    #[test]
    fn unknown_until_listed_then_found_or_absent() {
        let cache = SourceSecret::new("default", "tls");
        assert_eq!(cache.lookup("default", "tls"), SecretLookup::Unknown);
        assert!(!cache.apply(Event::Init));
        assert!(!cache.apply(Event::InitApply(secret("tls", "a", "1"))));
        assert_eq!(cache.lookup("default", "tls"), SecretLookup::Unknown);
        assert!(
            !cache.apply(Event::InitDone),
            "the first list is no renewal"
        );
        assert_eq!(cert_of(cache.lookup("default", "tls")), Some(b"a".to_vec()));
        // Another Secret is never answered from this cache.
        assert_eq!(cache.lookup("default", "other"), SecretLookup::Unknown);
        assert_eq!(cache.lookup("elsewhere", "tls"), SecretLookup::Unknown);

        let empty = SourceSecret::new("default", "tls");
        empty.apply(Event::Init);
        empty.apply(Event::InitDone);
        assert_eq!(empty.lookup("default", "tls"), SecretLookup::Absent);
    }

    #[test]
    fn a_renewal_or_a_deletion_is_a_change_a_resync_is_not() {
        let cache = SourceSecret::new("default", "tls");
        cache.apply(Event::Init);
        cache.apply(Event::InitApply(secret("tls", "a", "1")));
        cache.apply(Event::InitDone);
        assert!(
            !cache.apply(Event::Apply(secret("tls", "a", "2"))),
            "same data"
        );
        assert!(
            cache.apply(Event::Apply(secret("tls", "b", "3"))),
            "renewed"
        );
        assert_eq!(cert_of(cache.lookup("default", "tls")), Some(b"b".to_vec()));
        assert!(!cache.apply(Event::Apply(secret("other", "c", "4"))));
        assert!(cache.apply(Event::Delete(secret("tls", "b", "5"))));
        assert_eq!(cache.lookup("default", "tls"), SecretLookup::Absent);
        // A relist that finds it again (created while the watch was away) is a change.
        cache.apply(Event::Init);
        cache.apply(Event::InitApply(secret("tls", "c", "6")));
        assert_eq!(cache.lookup("default", "tls"), SecretLookup::Absent);
        assert!(cache.apply(Event::InitDone));
        assert_eq!(cert_of(cache.lookup("default", "tls")), Some(b"c".to_vec()));
    }
}
