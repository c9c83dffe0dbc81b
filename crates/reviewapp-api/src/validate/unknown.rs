//! The `spec.config` keys the operator does not know: kept, reported, not used.

use crate::spec::{ReviewConfig, Unknown};

/// The path of every key of `config` the operator does not know, field by field.
pub(super) fn ignored_keys(config: &ReviewConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut add = |path: &str, unknown: &Unknown| {
        out.extend(unknown.keys().map(|key| format!("{path}.{key}")));
    };
    const CONFIG: &str = "spec.config";
    add(CONFIG, &config.unknown);
    if let Some(migrate) = &config.migrate {
        add(&format!("{CONFIG}.migrate"), &migrate.unknown);
    }
    if let Some(database) = &config.database {
        add(&format!("{CONFIG}.database"), &database.unknown);
        if let Some(copy) = &database.copy_from {
            let path = format!("{CONFIG}.database.copyFrom");
            add(&path, &copy.unknown);
            for (name, value) in [
                ("database_url", &copy.database_url),
                ("host", &copy.host),
                ("database", &copy.database),
                ("user", &copy.user),
                ("password", &copy.password),
            ] {
                let Some(value) = value else { continue };
                add(&format!("{path}.{name}"), &value.unknown);
                if let Some(secret_ref) = &value.secret_ref {
                    add(&format!("{path}.{name}.secretRef"), &secret_ref.unknown);
                }
            }
        }
    }
    if let Some(env) = &config.env {
        add(&format!("{CONFIG}.env"), &env.unknown);
        for (i, value) in env.values.iter().flatten().enumerate() {
            add(&format!("{CONFIG}.env.values[{i}]"), &value.unknown);
        }
    }
    out
}
