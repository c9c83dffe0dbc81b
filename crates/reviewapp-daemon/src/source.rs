//! The wildcard TLS Secret that is copied next to every app, held by a kube-runtime reflector
//! store of its own watch (one object, selected by name: [`watch::one_secret`]). Copies then
//! need no read per app and tick, and a renewed certificate reaches every app at once instead
//! of on the next tick ([`SourceSecret::apply`] tells when the copied content changed).
//!
//! [`watch::one_secret`]: crate::watch::one_secret

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::Stream;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::watcher::{self, Event};
use reviewapp_effects::SecretLookup;

use crate::index::{Listed, ListingWriter};

/// The store of one Secret.
#[derive(Clone)]
pub struct SourceSecret {
    namespace: String,
    name: String,
    store: Store<Secret>,
    listed: Listed,
}

/// What a copy takes from the Secret.
type Content<'a> = (&'a Option<String>, &'a Option<BTreeMap<String, ByteString>>);

/// `type` and `data`: a change of anything else (labels, a resync) is not a renewal.
fn content(secret: Option<&Arc<Secret>>) -> Option<Content<'_>> {
    secret.map(|s| (&s.type_, &s.data))
}

impl SourceSecret {
    /// An empty store of `namespace`/`name`, and its writer.
    pub fn new(namespace: &str, name: &str) -> (Self, ListingWriter<Secret>) {
        let writer = ListingWriter::new(Writer::default());
        let source = SourceSecret {
            namespace: namespace.to_string(),
            name: name.to_string(),
            store: writer.store(),
            listed: writer.listed(),
        };
        (source, writer)
    }

    fn current(&self) -> Option<Arc<Secret>> {
        self.store
            .get(&ObjectRef::new(&self.name).within(&self.namespace))
    }

    /// What the store knows of `namespace`/`name`: [`SecretLookup::Unknown`] for any other
    /// Secret, or before the first list.
    pub fn lookup(&self, namespace: &str, name: &str) -> SecretLookup {
        if namespace != self.namespace || name != self.name || !self.listed.get() {
            return SecretLookup::Unknown;
        }
        match self.current() {
            Some(secret) => SecretLookup::Found(secret),
            None => SecretLookup::Absent,
        }
    }

    /// Applies one watch event to the store (through its `writer`); true when the copied
    /// content (`type`, `data`, or existence) changed after the first list, i.e. every copy is
    /// now stale.
    pub fn apply(&self, writer: &mut ListingWriter<Secret>, event: &Event<Secret>) -> bool {
        let was_listed = self.listed.get();
        let before = self.current();
        writer.apply(event);
        let after = self.current();
        was_listed && content(before.as_ref()) != content(after.as_ref())
    }

    /// The watch that fills the store.
    pub fn watch(
        &self,
        client: kube::Client,
    ) -> impl Stream<Item = watcher::Result<Event<Secret>>> + Send + use<> {
        crate::watch::one_secret(client, &self.namespace, &self.name)
    }

    /// Waits until the first list has completed.
    pub async fn wait_until_ready(&self) {
        // An error means the writer is gone: its watch task ended, and with it the daemon.
        let _ = self.store.wait_until_ready().await;
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
        let (cache, mut writer) = SourceSecret::new("default", "tls");
        let mut apply = |event| cache.apply(&mut writer, &event);
        assert_eq!(cache.lookup("default", "tls"), SecretLookup::Unknown);
        assert!(!apply(Event::Init));
        assert!(!apply(Event::InitApply(secret("tls", "a", "1"))));
        assert_eq!(cache.lookup("default", "tls"), SecretLookup::Unknown);
        assert!(!apply(Event::InitDone), "the first list is no renewal");
        assert_eq!(cert_of(cache.lookup("default", "tls")), Some(b"a".to_vec()));
        // Another Secret is never answered from this cache.
        assert_eq!(cache.lookup("default", "other"), SecretLookup::Unknown);
        assert_eq!(cache.lookup("elsewhere", "tls"), SecretLookup::Unknown);

        let (empty, mut writer) = SourceSecret::new("default", "tls");
        empty.apply(&mut writer, &Event::Init);
        empty.apply(&mut writer, &Event::InitDone);
        assert_eq!(empty.lookup("default", "tls"), SecretLookup::Absent);
    }

    #[test]
    fn a_renewal_or_a_deletion_is_a_change_a_resync_is_not() {
        let (cache, mut writer) = SourceSecret::new("default", "tls");
        let mut apply = |event| cache.apply(&mut writer, &event);
        apply(Event::Init);
        apply(Event::InitApply(secret("tls", "a", "1")));
        apply(Event::InitDone);
        assert!(!apply(Event::Apply(secret("tls", "a", "2"))), "same data");
        assert!(apply(Event::Apply(secret("tls", "b", "3"))), "renewed");
        assert_eq!(cert_of(cache.lookup("default", "tls")), Some(b"b".to_vec()));
        assert!(!apply(Event::Apply(secret("other", "c", "4"))));
        assert!(apply(Event::Delete(secret("tls", "b", "5"))));
        assert_eq!(cache.lookup("default", "tls"), SecretLookup::Absent);
        // A relist that finds it again (created while the watch was away) is a change.
        apply(Event::Init);
        apply(Event::InitApply(secret("tls", "c", "6")));
        assert_eq!(cache.lookup("default", "tls"), SecretLookup::Absent);
        assert!(apply(Event::InitDone));
        assert_eq!(cert_of(cache.lookup("default", "tls")), Some(b"c".to_vec()));
    }
}
