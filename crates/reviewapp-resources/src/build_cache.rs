//! The registry build cache's flags (`build.cache`): BuildKit exports and imports a registry
//! cache (`mode=max`) at a per-app reference next to the image and also imports from
//! `build.cache.importFrom`; kaniko caches layers in a per-app repository. Every reference is
//! made of the configured registry (checked at start-up to be a registry prefix) and the app's
//! sanitised name, or is an `importFrom` entry (checked to be an image reference): nothing else
//! reaches the flags.

use reviewapp_api::OperatorConfig;
use reviewapp_api::names::AppNames;

/// The tag of an app's BuildKit cache, next to its image tags.
pub const BUILDKIT_CACHE_TAG: &str = "buildcache";

/// Where builds of the app are cached: `<registry>/<app>:buildcache` for BuildKit.
pub fn buildkit_cache_ref(config: &OperatorConfig, names: &AppNames) -> String {
    format!("{}/{}:{BUILDKIT_CACHE_TAG}", registry(config), names.app)
}

/// Where kaniko caches the app's layers: the repository `<registry>/<app>/cache` (kaniko's own
/// default next to the destination).
pub fn kaniko_cache_repo(config: &OperatorConfig, names: &AppNames) -> String {
    format!("{}/{}/cache", registry(config), names.app)
}

fn registry(config: &OperatorConfig) -> &str {
    config.registry.trim().trim_end_matches('/')
}

/// `buildctl build` arguments for the cache: none when it is disabled; else one
/// `--export-cache` to the app's reference (`mode=max`: every stage's layers;
/// `ignore-error=true`: a cache that cannot be pushed does not fail the build) and one
/// `--import-cache` from it and from each `importFrom` entry.
pub(crate) fn buildkit_args(config: &OperatorConfig, names: &AppNames) -> Vec<String> {
    let cache = &config.build.cache;
    if !cache.enabled {
        return Vec::new();
    }
    let insecure = if config.builder.insecure_registry {
        ",registry.insecure=true"
    } else {
        ""
    };
    let own = buildkit_cache_ref(config, names);
    let mut args = vec![
        "--export-cache".to_string(),
        format!("type=registry,ref={own},mode=max,ignore-error=true{insecure}"),
        "--import-cache".to_string(),
        format!("type=registry,ref={own}{insecure}"),
    ];
    for reference in &cache.import_from {
        args.push("--import-cache".to_string());
        args.push(format!("type=registry,ref={reference}{insecure}"));
    }
    args
}

/// Kaniko executor arguments for the cache: none when it is disabled; else `--cache=true` and
/// `--cache-repo` (the app's repository).
pub(crate) fn kaniko_args(config: &OperatorConfig, names: &AppNames) -> Vec<String> {
    if !config.build.cache.enabled {
        return Vec::new();
    }
    vec![
        "--cache=true".to_string(),
        format!("--cache-repo={}", kaniko_cache_repo(config, names)),
    ]
}
