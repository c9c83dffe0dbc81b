//! The one controller the emulator runs: garbage collection. When an object is really removed,
//! every object with an `ownerReferences[].uid` pointing to it is deleted (honouring its own
//! finalizers), recursively; with `Orphan` the references are removed instead. Removing a
//! Namespace deletes everything in it. Runs synchronously, right after the removal.

use std::collections::VecDeque;

use serde_json::Value;

use crate::admission::FieldValidation;
use crate::fields::Scope;
use crate::meta;
use crate::resource::ResourceKey;
use crate::store::{Deleted, Ownership, Propagation, World, Write};

/// Manager name of the garbage collector's own writes.
const MANAGER: &str = "garbage-collector";

/// Upper bound on the objects one collection visits.
const MAX_STEPS: usize = 1_000_000;

/// Collects the dependents of `removed` (an object of `res` just removed from `world`).
pub(crate) fn collect(
    world: &mut World,
    res: &ResourceKey,
    removed: &Value,
    propagation: Propagation,
) {
    let mut queue = VecDeque::new();
    queue.push_back(Owner::of(res, removed, propagation));
    let mut steps = 0usize;
    while let Some(owner) = queue.pop_front() {
        let dependents = world.find(|r, o| {
            (!owner.uid.is_empty() && meta::is_owned_by(o, &owner.uid))
                || owner
                    .namespace
                    .as_deref()
                    .is_some_and(|ns| !r.is_namespaces() && meta::namespace(o) == ns)
        });
        for (dep_res, ns, name) in dependents {
            steps += 1;
            if steps > MAX_STEPS {
                tracing::warn!("garbage collection stopped after {MAX_STEPS} objects");
                return;
            }
            let in_namespace = owner.namespace.as_deref() == Some(ns.as_str());
            if owner.propagation == Propagation::Orphan && !in_namespace {
                orphan(world, &dep_res, &ns, &name, &owner.uid);
                continue;
            }
            if let Some(Deleted::Gone(gone)) = world.begin_delete_no_gc(&dep_res, &ns, &name) {
                queue.push_back(Owner::of(&dep_res, &gone, Propagation::Background));
            }
        }
    }
}

struct Owner {
    uid: String,
    /// Set when the owner is a Namespace: its contents go too.
    namespace: Option<String>,
    propagation: Propagation,
}

impl Owner {
    fn of(res: &ResourceKey, object: &Value, propagation: Propagation) -> Self {
        Self {
            uid: meta::uid(object).to_string(),
            namespace: res.is_namespaces().then(|| meta::name(object).to_string()),
            propagation,
        }
    }
}

/// Removes the owner references to `owner_uid` from one object.
fn orphan(world: &mut World, res: &ResourceKey, ns: &str, name: &str, owner_uid: &str) {
    let Some(mut object) = world.get(res, ns, name).cloned() else {
        return;
    };
    if let Some(refs) = meta::meta_mut(&mut object)
        .and_then(|m| m.get_mut("ownerReferences"))
        .and_then(Value::as_array_mut)
    {
        refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
    }
    if let Err(err) = world.update(
        res,
        ns,
        name,
        object,
        Write {
            scope: Scope::Main,
            ownership: Ownership::Update(MANAGER),
            dry_run: false,
            validation: FieldValidation::Ignore,
        },
    ) {
        tracing::warn!(%err, "could not orphan a dependent");
    }
}
