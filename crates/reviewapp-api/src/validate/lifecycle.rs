//! The lifecycle inputs of an app: its `expireAfter` and `sleepAfter` durations (`90m`, `36h`,
//! `7d`, `0` for never) and the lifecycle annotations ([`crate::annotations`]). Pure: the
//! transition compares the instants read here with the time it is given.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::FieldError;
use crate::annotations::{EXPIRES_AT, KEEP, SLEEP, WAKE_REQUESTED_AT};

/// Longest duration accepted: ten years.
const MAX_SECONDS: u64 = 10 * 365 * 86_400;

/// Every lifecycle annotation, in the order they are documented.
pub const LIFECYCLE_ANNOTATIONS: [&str; 4] = [KEEP, EXPIRES_AT, SLEEP, WAKE_REQUESTED_AT];

/// An app's lifecycle durations, resolved: the spec's, else the operator's defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LifecycleSpec {
    /// Idle time after which the app expires; `None`: never.
    pub expire_after: Option<Duration>,
    /// Idle time after which the app goes to sleep; `None`: never.
    pub sleep_after: Option<Duration>,
}

/// What the lifecycle annotations of a `ReviewApp` say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Controls {
    /// `keep: "true"`: never expires and never sleeps by itself.
    pub keep: bool,
    /// `expires-at`: the explicit deadline.
    pub expires_at: Option<Timestamp>,
    /// `sleep`: `Some(true)` to sleep, `Some(false)` to wake (acted on when it changes).
    pub sleep: Option<bool>,
    /// `wake-requested-at`: the activator's last request to wake the app.
    pub wake_requested_at: Option<Timestamp>,
}

/// A duration as written in `expireAfter`/`sleepAfter`: a whole number followed by `s`, `m`,
/// `h` or `d` (`90m`, `36h`, `7d`), or `0` for never; `None` is never. At most ten years.
pub fn parse_duration(raw: &str) -> Result<Option<Duration>, String> {
    let text = raw.trim();
    if text == "0" {
        return Ok(None);
    }
    let bad = || {
        format!(
            "must be a duration such as 90m, 36h or 7d (units s, m, h, d), or 0 for never, got {:?}",
            text.chars().take(40).collect::<String>()
        )
    };
    let split = text.char_indices().last().map(|(i, _)| i).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let seconds = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|s| *s <= MAX_SECONDS)
        .ok_or_else(|| "must be at most ten years".to_string())?;
    Ok((seconds > 0).then(|| Duration::from_secs(seconds)))
}

/// `spec.config.expireAfter` or `sleepAfter`: a duration string, or a number of seconds (`0`
/// for never); absent, `default` (the operator's setting).
pub(super) fn duration_field(
    raw: Option<&IntOrString>,
    default: Option<Duration>,
) -> Result<Option<Duration>, String> {
    match raw {
        None => Ok(default),
        Some(IntOrString::String(text)) => parse_duration(text),
        Some(IntOrString::Int(0)) => Ok(None),
        Some(IntOrString::Int(n)) => match u64::try_from(*n) {
            Ok(seconds) if seconds <= MAX_SECONDS => Ok(Some(Duration::from_secs(seconds))),
            _ => Err(format!(
                "a number is seconds, from 0 (never) to ten years, got {n}"
            )),
        },
    }
}

/// The field path of annotation `key`: `metadata.annotations[reviewtron.k8s.revelry.co/keep]`.
pub fn annotation_field(key: &str) -> String {
    format!("metadata.annotations[{key}]")
}

/// Reads the lifecycle annotations; an unreadable one is a [`FieldError`] naming it.
pub fn controls(
    annotations: Option<&BTreeMap<String, String>>,
) -> Result<Controls, Vec<FieldError>> {
    let mut errors = Vec::new();
    let get = |key: &str| annotations.and_then(|a| a.get(key)).map(|v| v.trim());
    let boolean = |key: &str, errors: &mut Vec<FieldError>| match get(key) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            errors.push(FieldError {
                field: annotation_field(key),
                message: format!(
                    "must be \"true\" or \"false\", got {:?}",
                    other.chars().take(40).collect::<String>()
                ),
            });
            None
        }
    };
    let keep = boolean(KEEP, &mut errors).unwrap_or(false);
    let sleep = boolean(SLEEP, &mut errors);
    let instant = |key: &str, errors: &mut Vec<FieldError>| {
        let raw = get(key)?;
        match raw.parse::<Timestamp>() {
            Ok(at) => Some(at),
            Err(_) => {
                errors.push(FieldError {
                    field: annotation_field(key),
                    message: format!(
                        "must be an RFC 3339 time such as 2026-12-01T18:00:00Z, got {:?}",
                        raw.chars().take(40).collect::<String>()
                    ),
                });
                None
            }
        }
    };
    let expires_at = instant(EXPIRES_AT, &mut errors);
    let wake_requested_at = instant(WAKE_REQUESTED_AT, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Controls {
        keep,
        expires_at,
        sleep,
        wake_requested_at,
    })
}

/// The lifecycle annotations of `annotations`, and nothing else (what a status records).
pub fn lifecycle_annotations(
    annotations: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    LIFECYCLE_ANNOTATIONS
        .iter()
        .filter_map(|key| {
            annotations
                .and_then(|a| a.get(*key))
                .map(|value| (key.to_string(), value.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_one_unit_and_zero_is_never() {
        let secs = |s| Ok(Some(Duration::from_secs(s)));
        assert_eq!(parse_duration("90m"), secs(5400));
        assert_eq!(parse_duration(" 36h "), secs(129_600));
        assert_eq!(parse_duration("7d"), secs(604_800));
        assert_eq!(parse_duration("45s"), secs(45));
        assert_eq!(parse_duration("0"), Ok(None));
        assert_eq!(parse_duration("0d"), Ok(None));
        for bad in [
            "",
            "d",
            "7",
            "7w",
            "-1d",
            "1.5h",
            "7 d",
            "1h30m",
            "é",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration("3651d").is_err());
        assert_eq!(
            duration_field(Some(&IntOrString::Int(0)), secs(1).ok().flatten()),
            Ok(None)
        );
        assert_eq!(duration_field(Some(&IntOrString::Int(60)), None), secs(60));
        assert!(duration_field(Some(&IntOrString::Int(-1)), None).is_err());
        assert_eq!(duration_field(None, Some(Duration::from_secs(9))), secs(9));
    }

    #[test]
    fn annotations_are_read_or_named_in_an_error() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(controls(None), Ok(Controls::default()));
        let all = map(&[
            (KEEP, "true"),
            (EXPIRES_AT, "2026-12-01T18:00:00Z"),
            (SLEEP, "false"),
            (WAKE_REQUESTED_AT, "2026-12-01T17:00:00+01:00"),
            ("other", "x"),
        ]);
        let read = controls(Some(&all)).unwrap();
        assert!(read.keep);
        assert_eq!(read.sleep, Some(false));
        assert_eq!(read.expires_at.map(|t| t.as_second()), Some(1_796_148_000));
        assert_eq!(
            read.wake_requested_at.map(|t| t.as_second()),
            Some(1_796_140_800)
        );
        assert_eq!(lifecycle_annotations(Some(&all)).len(), 4);
        let bad = map(&[(KEEP, "yes"), (EXPIRES_AT, "tomorrow")]);
        let errors = controls(Some(&bad)).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.annotations[reviewtron.k8s.revelry.co/keep]",
                "metadata.annotations[reviewtron.k8s.revelry.co/expires-at]"
            ]
        );
    }
}
