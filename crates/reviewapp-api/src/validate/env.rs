//! `spec.config.envSecret` and `spec.config.env`: the app's environment.

use k8s_openapi::api::core::v1::EnvVar;
use serde_json::Value;

use super::{EnvSpec, Errors, truncate};
use crate::names::is_dns_subdomain;
use crate::spec::{Env, EnvValue, ReviewConfig};

/// `envSecret` and `env`; `envSecret` is not repeated among `env.secrets`.
pub(super) fn environment(config: &ReviewConfig, errors: &mut Errors) -> (Option<String>, EnvSpec) {
    let env_secret = match config.env_secret.as_deref() {
        Some(name) if !is_dns_subdomain(name) => errors.add(
            "spec.config.envSecret",
            format!("{:?} is not a valid Secret name", truncate(name)),
        ),
        other => other.map(str::to_string),
    };
    let mut env = config
        .env
        .as_ref()
        .map(|env| env_spec(env, errors))
        .unwrap_or_default();
    if let Some(name) = &env_secret {
        env.secrets.retain(|secret| secret != name);
    }
    (env_secret, env)
}

fn env_spec(env: &Env, errors: &mut Errors) -> EnvSpec {
    let config_maps = source_names(&env.config_maps, "spec.config.env.configMaps", errors);
    let secrets = source_names(&env.secrets, "spec.config.env.secrets", errors);
    let values = env
        .values
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, item)| env_value(item, &format!("spec.config.env.values[{i}]"), errors))
        .collect();
    EnvSpec {
        config_maps,
        secrets,
        values,
    }
}

/// ConfigMap or Secret names for `envFrom`: valid names, each once, in order.
fn source_names(list: &Option<Vec<String>>, field: &str, errors: &mut Errors) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, name) in list.iter().flatten().enumerate() {
        if !is_dns_subdomain(name) {
            errors.add::<()>(
                &format!("{field}[{i}]"),
                format!("{:?} is not a valid name", truncate(name)),
            );
        } else if !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

/// One `env.values` entry: a scalar `value` (as a string) or a `valueFrom`, not both.
fn env_value(item: &EnvValue, field: &str, errors: &mut Errors) -> Option<EnvVar> {
    // The API server's (relaxed) rule: printable ASCII other than '='.
    if item.name.is_empty()
        || item.name.contains('=')
        || !item.name.chars().all(|c| c == ' ' || c.is_ascii_graphic())
    {
        return errors.add(
            &format!("{field}.name"),
            "must be a non-empty name of printable ASCII characters without '='",
        );
    }
    let value = match &item.value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Some(v.to_string()),
        Some(Value::Array(_) | Value::Object(_)) => {
            return errors.add(
                &format!("{field}.value"),
                "must be a string, number or boolean, not a list or map",
            );
        }
    };
    let value_from = item.value_from.clone();
    match (value, value_from) {
        (Some(_), Some(_)) => errors.add(field, "give either value or valueFrom, not both"),
        (value, None) => Some(EnvVar {
            name: item.name.clone(),
            value: Some(value.unwrap_or_default()),
            value_from: None,
        }),
        (None, value_from) => Some(EnvVar {
            name: item.name.clone(),
            value: None,
            value_from,
        }),
    }
}
