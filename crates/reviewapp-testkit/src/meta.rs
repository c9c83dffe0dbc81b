//! Small readers and writers of `metadata` fields on JSON objects, timestamps and uids.

use serde_json::{Map, Value};

/// Metadata fields that name an object.
const IDENTITY_METADATA: &[&str] = &["name", "namespace", "generateName"];

/// Metadata fields the server sets: a create sets them anew, whatever the body says.
pub(crate) const SERVER_SET_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
];

/// Metadata fields clients write.
const CLIENT_METADATA: &[&str] = &["labels", "annotations", "ownerReferences", "finalizers"];

/// The metadata fields the server owns (identity and server-set): kept from the stored object
/// on every update and never counted as owned fields.
pub(crate) fn system_metadata() -> impl Iterator<Item = &'static str> {
    IDENTITY_METADATA.iter().chain(SERVER_SET_METADATA).copied()
}

/// Whether `field` is one of [`system_metadata`].
pub(crate) fn is_system_metadata(field: &str) -> bool {
    system_metadata().any(|f| f == field)
}

/// Whether `field` is a field of `ObjectMeta` (anything else in a custom resource's
/// `metadata` is unknown, and pruned).
pub(crate) fn is_object_meta(field: &str) -> bool {
    is_system_metadata(field) || CLIENT_METADATA.contains(&field)
}

/// The `metadata` map of `object`, if any.
pub(crate) fn meta(object: &Value) -> Option<&Map<String, Value>> {
    object.get("metadata").and_then(Value::as_object)
}

/// The `metadata` map of `object`, created when absent. `None` only when `object` is not a map.
pub(crate) fn meta_mut(object: &mut Value) -> Option<&mut Map<String, Value>> {
    let map = object.as_object_mut()?;
    let entry = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut()
}

/// A string field of `metadata`.
pub(crate) fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    meta(object)?.get(field)?.as_str()
}

/// `metadata.name`, or "".
pub(crate) fn name(object: &Value) -> &str {
    meta_str(object, "name").unwrap_or_default()
}

/// `metadata.namespace`, or "".
pub(crate) fn namespace(object: &Value) -> &str {
    meta_str(object, "namespace").unwrap_or_default()
}

/// `metadata.uid`, or "".
pub(crate) fn uid(object: &Value) -> &str {
    meta_str(object, "uid").unwrap_or_default()
}

/// `apiVersion`, or "".
pub(crate) fn api_version(object: &Value) -> &str {
    object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `kind`, or "".
pub(crate) fn kind(object: &Value) -> &str {
    object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `metadata.resourceVersion`, or "".
pub(crate) fn resource_version(object: &Value) -> &str {
    meta_str(object, "resourceVersion").unwrap_or_default()
}

/// Whether `metadata.deletionTimestamp` is set.
pub(crate) fn is_deleting(object: &Value) -> bool {
    meta(object).is_some_and(|m| m.get("deletionTimestamp").is_some_and(|v| !v.is_null()))
}

/// `metadata.finalizers` (strings only).
pub(crate) fn finalizers(object: &Value) -> Vec<String> {
    meta(object)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `metadata.labels` as string pairs (non-string values are skipped).
pub(crate) fn labels(object: &Value) -> Vec<(&str, &str)> {
    meta(object)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether one of `metadata.ownerReferences` has this uid.
pub(crate) fn is_owned_by(object: &Value, owner_uid: &str) -> bool {
    meta(object)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("uid").and_then(Value::as_str) == Some(owner_uid))
        })
}

/// Removes the metadata fields Go's `omitempty` would drop when empty (the real server never
/// returns `finalizers: []` or `labels: {}`).
pub(crate) fn normalize(object: &mut Value) {
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    for field in [
        "finalizers",
        "labels",
        "annotations",
        "ownerReferences",
        "managedFields",
    ] {
        let empty = match meta.get(field) {
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(o)) => o.is_empty(),
            Some(Value::Null) => true,
            _ => false,
        };
        if empty {
            meta.remove(field);
        }
    }
}

/// The current time as RFC 3339 with whole seconds, as the server writes `metav1.Time`.
pub(crate) fn now() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now.to_string())
}

/// splitmix64: a tiny deterministic generator step.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A version-4-shaped uid from a generator state.
pub(crate) fn new_uid(state: &mut u64) -> String {
    let a = splitmix64(state);
    let b = splitmix64(state);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// Five lowercase alphanumerics for `generateName`.
pub(crate) fn name_suffix(state: &mut u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = splitmix64(state);
    let mut out = String::with_capacity(5);
    for _ in 0..5 {
        let index = usize::try_from(n % ALPHABET.len() as u64).unwrap_or(0);
        out.push(char::from(ALPHABET.get(index).copied().unwrap_or(b'x')));
        n /= ALPHABET.len() as u64;
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn normalize_drops_empty_lists_and_maps() {
        let mut o = json!({"metadata": {"name": "a", "finalizers": [], "labels": {}, "annotations": {"x": "y"}}});
        normalize(&mut o);
        assert_eq!(
            o,
            json!({"metadata": {"name": "a", "annotations": {"x": "y"}}})
        );
    }

    #[test]
    fn uids_and_names_look_right() {
        let mut state = 7;
        let uid = new_uid(&mut state);
        assert_eq!(uid.len(), 36);
        assert_ne!(uid, new_uid(&mut state));
        assert_eq!(name_suffix(&mut state).len(), 5);
        assert!(now().ends_with('Z'));
        assert!(!now().contains('.'));
    }
}
