//! Settings of the GitHub component, with the operator's conventions: defaults, overridden by a
//! YAML file, overridden by `REVIEWAPP_GITHUB_*` environment variables. Credentials come only
//! from the environment (and the App's private key from a file), never from the YAML file.
//! Pure: the caller supplies the file text and an environment lookup. See `docs/github.md`.

use reviewapp_api::config::{parse_bool, parse_number};
use serde::{Deserialize, Serialize};

/// Everything the GitHub component needs to know besides its credentials.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct GithubConfig {
    /// Base URL of the GitHub REST API (`https://<host>/api/v3` for GitHub Enterprise Server).
    pub api_url: String,
    /// GitHub App id; `0` authenticates with `REVIEWAPP_GITHUB_TOKEN` instead.
    pub app_id: u64,
    /// PEM file of the GitHub App's private key (with `appId`).
    pub app_private_key_file: String,
    /// Path of the review configuration in each repository.
    pub config_path: String,
    /// Name of the GitHub environment of a pull request; `{pr}`, `{repo}` and `{owner}` are
    /// replaced.
    pub environment: String,
    /// A pull request with this label gets no review app (removing the label brings it back).
    pub opt_out_label: String,
    /// Build draft pull requests too (by default they wait for `ready_for_review`).
    pub build_drafts: bool,
    /// Build pull requests from forks (by default they are skipped).
    pub build_forks: bool,
    /// Seconds between re-reads of every managed pull request from the API; `0` turns it off.
    pub resync_interval_seconds: u64,
    /// Pull requests and ReviewApps handled at once.
    pub concurrency: usize,
}

impl Default for GithubConfig {
    fn default() -> Self {
        Self {
            api_url: "https://api.github.com".into(),
            app_id: 0,
            app_private_key_file: String::new(),
            config_path: ".review_bot.yml".into(),
            environment: "pr-{pr}".into(),
            opt_out_label: "no-review-app".into(),
            build_drafts: false,
            build_forks: false,
            resync_interval_seconds: 600,
            concurrency: 8,
        }
    }
}

/// A configuration file or variable that cannot be used. Never carries a secret's value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The YAML file does not parse or has unknown keys.
    #[error("config file: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// An environment variable has a value of the wrong type.
    #[error("{var}={value:?}: {reason}")]
    Env {
        /// Variable name.
        var: &'static str,
        /// The offending value (never set for a secret).
        value: String,
        /// What was expected.
        reason: &'static str,
    },
    /// The merged configuration, or the credentials, are not usable.
    #[error("{key}: {reason}")]
    Invalid {
        /// Key path or variable name.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

type Setter = fn(&mut GithubConfig, &'static str, String) -> Result<(), ConfigError>;

/// Every settings variable, the key it sets, and how (the credentials are in
/// [`SECRET_VARS`]). The single source of truth for the table in `docs/github.md`.
pub const ENV_VARS: &[(&str, &str, Setter)] = &[
    ("REVIEWAPP_GITHUB_API_URL", "apiUrl", |c, _, v| {
        c.api_url = v;
        Ok(())
    }),
    ("REVIEWAPP_GITHUB_APP_ID", "appId", |c, var, v| {
        c.app_id = number(var, v)?;
        Ok(())
    }),
    (
        "REVIEWAPP_GITHUB_APP_PRIVATE_KEY_FILE",
        "appPrivateKeyFile",
        |c, _, v| {
            c.app_private_key_file = v;
            Ok(())
        },
    ),
    ("REVIEWAPP_GITHUB_CONFIG_PATH", "configPath", |c, _, v| {
        c.config_path = v;
        Ok(())
    }),
    ("REVIEWAPP_GITHUB_ENVIRONMENT", "environment", |c, _, v| {
        c.environment = v;
        Ok(())
    }),
    (
        "REVIEWAPP_GITHUB_OPT_OUT_LABEL",
        "optOutLabel",
        |c, _, v| {
            c.opt_out_label = v;
            Ok(())
        },
    ),
    (
        "REVIEWAPP_GITHUB_BUILD_DRAFTS",
        "buildDrafts",
        |c, var, v| {
            c.build_drafts = boolean(var, v)?;
            Ok(())
        },
    ),
    ("REVIEWAPP_GITHUB_BUILD_FORKS", "buildForks", |c, var, v| {
        c.build_forks = boolean(var, v)?;
        Ok(())
    }),
    (
        "REVIEWAPP_GITHUB_RESYNC_INTERVAL_SECONDS",
        "resyncIntervalSeconds",
        |c, var, v| {
            c.resync_interval_seconds = number(var, v)?;
            Ok(())
        },
    ),
    (
        "REVIEWAPP_GITHUB_CONCURRENCY",
        "concurrency",
        |c, var, v| {
            c.concurrency = number(var, v)?;
            Ok(())
        },
    ),
];

/// The webhook secret (required).
pub const WEBHOOK_SECRET_VAR: &str = "REVIEWAPP_GITHUB_WEBHOOK_SECRET";
/// A personal access token or other token (instead of a GitHub App).
pub const TOKEN_VAR: &str = "REVIEWAPP_GITHUB_TOKEN";
/// The credential variables: environment only, never in the YAML file, never printed.
pub const SECRET_VARS: &[&str] = &[WEBHOOK_SECRET_VAR, TOKEN_VAR];

fn boolean(var: &'static str, value: String) -> Result<bool, ConfigError> {
    parse_bool(&value).map_err(|reason| ConfigError::Env { var, value, reason })
}

fn number<T: std::str::FromStr>(var: &'static str, value: String) -> Result<T, ConfigError> {
    parse_number(&value).map_err(|reason| ConfigError::Env { var, value, reason })
}

impl GithubConfig {
    /// Defaults, then the YAML file (if any), then environment variables from `env`, then checks.
    pub fn load(
        file: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(text) if !text.trim().is_empty() => serde_yaml::from_str(text)?,
            _ => Self::default(),
        };
        for (var, _, setter) in ENV_VARS {
            if let Some(value) = env(var) {
                setter(&mut config, var, value)?;
            }
        }
        config.check()?;
        Ok(config)
    }

    /// Rejects values that cannot work.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.into(),
            })
        };
        match url::Url::parse(&self.api_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            _ => return invalid("apiUrl", "must be an http(s) URL"),
        }
        if self.app_id != 0 && self.app_private_key_file.trim().is_empty() {
            return invalid("appPrivateKeyFile", "must be set with appId");
        }
        let path = self.config_path.trim();
        if path.is_empty()
            || path.starts_with('/')
            || path
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return invalid(
                "configPath",
                "must be a relative path inside the repository",
            );
        }
        if self.environment.trim().is_empty() || self.environment.len() > 200 {
            return invalid("environment", "must be 1-200 characters");
        }
        if self.concurrency == 0 {
            return invalid("concurrency", "must be at least 1");
        }
        Ok(())
    }

    /// The GitHub environment of pull request `pr` of `owner/repo`.
    pub fn environment_name(&self, owner: &str, repo: &str, pr: u64) -> String {
        self.environment
            .replace("{pr}", &pr.to_string())
            .replace("{repo}", repo)
            .replace("{owner}", owner)
    }

    /// Whether the component authenticates as a GitHub App.
    pub fn uses_app(&self) -> bool {
        self.app_id != 0
    }
}

/// A secret string: its `Debug` output is redacted and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// How the component authenticates to GitHub.
#[derive(Clone, Debug)]
pub enum Auth {
    /// A token sent as `Authorization: Bearer` (a fine-grained or classic personal access token).
    Token(Secret),
    /// A GitHub App: JWTs signed with the private key, exchanged for installation tokens.
    App {
        /// The App's id.
        app_id: u64,
        /// The PEM-encoded RSA private key.
        private_key_pem: Secret,
    },
}

/// The credentials: the webhook secret and how to authenticate.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The webhook secret that signs every delivery.
    pub webhook_secret: Secret,
    /// Authentication to the API.
    pub auth: Auth,
}

impl Credentials {
    /// Reads the credentials from `env`; with a GitHub App, `read_key` reads the private key
    /// file named by `appPrivateKeyFile`. Errors name the variable or key, never a value.
    pub fn load(
        config: &GithubConfig,
        env: impl Fn(&str) -> Option<String>,
        read_key: impl FnOnce(&str) -> Result<String, String>,
    ) -> Result<Self, ConfigError> {
        let webhook_secret = env(WEBHOOK_SECRET_VAR)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ConfigError::Invalid {
                key: WEBHOOK_SECRET_VAR,
                reason: "is required (the secret configured on the webhook)".into(),
            })?;
        let token = env(TOKEN_VAR).filter(|s| !s.trim().is_empty());
        let auth = match (token, config.uses_app()) {
            (Some(_), true) => {
                return Err(ConfigError::Invalid {
                    key: TOKEN_VAR,
                    reason: "set either a token or a GitHub App (appId), not both".into(),
                });
            }
            (Some(token), false) => Auth::Token(Secret::new(token.trim())),
            (None, true) => {
                let pem = read_key(&config.app_private_key_file).map_err(|reason| {
                    ConfigError::Invalid {
                        key: "appPrivateKeyFile",
                        reason,
                    }
                })?;
                if !pem.contains("PRIVATE KEY-----") {
                    return Err(ConfigError::Invalid {
                        key: "appPrivateKeyFile",
                        reason: "is not a PEM private key".into(),
                    });
                }
                Auth::App {
                    app_id: config.app_id,
                    private_key_pem: Secret::new(pem),
                }
            }
            (None, false) => {
                return Err(ConfigError::Invalid {
                    key: TOKEN_VAR,
                    reason: "set a token, or a GitHub App (appId and appPrivateKeyFile)".into(),
                });
            }
        };
        Ok(Credentials {
            webhook_secret: Secret::new(webhook_secret),
            auth,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_file_and_env_layer() {
        assert_eq!(
            GithubConfig::load(None, env(&[])).unwrap(),
            GithubConfig::default()
        );
        let file = "apiUrl: https://ghe.example.com/api/v3\nbuildForks: true\n";
        let config = GithubConfig::load(
            Some(file),
            env(&[("REVIEWAPP_GITHUB_BUILD_FORKS", "false")]),
        )
        .unwrap();
        assert_eq!(config.api_url, "https://ghe.example.com/api/v3");
        assert!(!config.build_forks, "the environment wins over the file");
    }

    #[test]
    fn every_env_var_is_applied() {
        for (var, key, _) in ENV_VARS {
            let changed = [
                "true",
                "7",
                "http://ghe.local/api/v3",
                "x.yml",
                "review-{pr}",
            ]
            .iter()
            .any(|value| {
                // appId needs the key file to pass the checks.
                let pairs = [
                    (*var, *value),
                    ("REVIEWAPP_GITHUB_APP_PRIVATE_KEY_FILE", "/k.pem"),
                ];
                let pairs = if *var == "REVIEWAPP_GITHUB_APP_PRIVATE_KEY_FILE" {
                    &pairs[..1]
                } else {
                    &pairs[..]
                };
                GithubConfig::load(None, env(pairs)).is_ok_and(|c| {
                    let mut base = GithubConfig::default();
                    if pairs.len() == 2 {
                        base.app_private_key_file = "/k.pem".into();
                    }
                    c != base
                })
            });
            assert!(changed, "{var} ({key}) changed nothing");
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let err =
            GithubConfig::load(None, env(&[("REVIEWAPP_GITHUB_BUILD_DRAFTS", "yes")])).unwrap_err();
        assert!(
            err.to_string().contains("REVIEWAPP_GITHUB_BUILD_DRAFTS"),
            "{err}"
        );
        for (file, key) in [
            ("apiUrl: ftp://x\n", "apiUrl"),
            ("appId: 5\n", "appPrivateKeyFile"),
            ("configPath: ../etc/passwd\n", "configPath"),
            ("configPath: /abs\n", "configPath"),
            ("concurrency: 0\n", "concurrency"),
            ("environment: ''\n", "environment"),
            ("apiUrll: x\n", "apiUrll"),
        ] {
            let err = GithubConfig::load(Some(file), env(&[])).unwrap_err();
            assert!(err.to_string().contains(key), "{file}: {err}");
        }
    }

    #[test]
    fn environment_template() {
        let config = GithubConfig {
            environment: "review/{owner}/{repo}#{pr}".into(),
            ..GithubConfig::default()
        };
        assert_eq!(config.environment_name("o", "r", 7), "review/o/r#7");
        assert_eq!(
            GithubConfig::default().environment_name("o", "r", 678),
            "pr-678"
        );
    }

    #[test]
    fn credentials_token_or_app_and_secrets_never_in_errors() {
        let config = GithubConfig::default();
        let no_key = |_: &str| -> Result<String, String> { Err("unreadable".into()) };
        let err =
            Credentials::load(&config, env(&[(TOKEN_VAR, "ghp_secret")]), no_key).unwrap_err();
        assert!(err.to_string().contains(WEBHOOK_SECRET_VAR), "{err}");
        let creds = Credentials::load(
            &config,
            env(&[
                (WEBHOOK_SECRET_VAR, "hook-secret"),
                (TOKEN_VAR, "ghp_secret"),
            ]),
            no_key,
        )
        .unwrap();
        let debug = format!("{creds:?}");
        assert!(
            !debug.contains("ghp_secret") && !debug.contains("hook-secret"),
            "{debug}"
        );
        assert!(matches!(creds.auth, Auth::Token(ref t) if t.expose() == "ghp_secret"));

        let err =
            Credentials::load(&config, env(&[(WEBHOOK_SECRET_VAR, "s")]), no_key).unwrap_err();
        assert!(err.to_string().contains(TOKEN_VAR), "{err}");

        let app = GithubConfig {
            app_id: 42,
            app_private_key_file: "/key.pem".into(),
            ..GithubConfig::default()
        };
        let err = Credentials::load(
            &app,
            env(&[(WEBHOOK_SECRET_VAR, "s"), (TOKEN_VAR, "ghp_secret")]),
            no_key,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
        let err = Credentials::load(&app, env(&[(WEBHOOK_SECRET_VAR, "s")]), no_key).unwrap_err();
        assert!(err.to_string().contains("appPrivateKeyFile"), "{err}");
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n";
        let creds = Credentials::load(&app, env(&[(WEBHOOK_SECRET_VAR, "s")]), |path| {
            assert_eq!(path, "/key.pem");
            Ok(pem.to_string())
        })
        .unwrap();
        assert!(matches!(creds.auth, Auth::App { app_id: 42, .. }));
        assert!(!format!("{creds:?}").contains("MIIB"));
    }
}
