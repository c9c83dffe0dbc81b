//! How a failed build's [`FailureLog`] reads in `status.message` and in the `BuildFailed`
//! Warning Event: which container failed and the tail of its log, or why the log could not be
//! read (the Job's own reason stays in front either way).

use crate::build_log::{FailureLog, TAIL_LINES, tail};

/// Largest `note` of an `events.k8s.io/v1` Event (bytes): the Event keeps the end of the tail
/// that fits next to its headline.
const EVENT_NOTE_BYTES: usize = 1024;

/// Introduces the log lines.
const LOG_INTRO: &str = "; last lines of its log:\n";

/// A Warning keeps the log lines only when at least this many bytes of them fit.
const MIN_EVENT_TAIL: usize = 64;

/// A [`FailureLog`] put into words.
pub(super) struct Described {
    /// Appended to the headline: `; container build exited with code 1`, or why the log could
    /// not be read; empty when it was not read.
    pub summary: String,
    /// The sanitised log lines (empty for none).
    text: String,
}

/// Puts `log` into words (`None`: the log was not read, nothing is added).
pub(super) fn describe(log: Option<&FailureLog>) -> Described {
    match log {
        None => Described {
            summary: String::new(),
            text: String::new(),
        },
        Some(FailureLog::Tail {
            container,
            exit_code,
            text,
        }) => Described {
            summary: if text.is_empty() {
                format!("; container {container} exited with code {exit_code}; its log is empty")
            } else {
                format!("; container {container} exited with code {exit_code}")
            },
            text: text.clone(),
        },
        Some(FailureLog::Unavailable { why }) => Described {
            summary: format!("; its log could not be read: {why}"),
            text: String::new(),
        },
    }
}

impl Described {
    /// What follows the headline in `status.message`: the whole (already bounded) tail.
    pub fn status_tail(&self) -> String {
        if self.text.is_empty() {
            String::new()
        } else {
            format!("{LOG_INTRO}{}", self.text)
        }
    }

    /// What follows a headline of `headline_len` bytes in the Event's note: the end of the
    /// tail that fits in an Event note, or nothing when too little would.
    pub fn event_tail(&self, headline_len: usize) -> String {
        let budget = EVENT_NOTE_BYTES.saturating_sub(headline_len + LOG_INTRO.len());
        if self.text.is_empty() || budget < MIN_EVENT_TAIL {
            return String::new();
        }
        let kept = tail(&self.text, TAIL_LINES, budget);
        if kept.is_empty() {
            String::new()
        } else {
            format!("{LOG_INTRO}{kept}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_keeps_the_end_of_the_tail_within_an_event_note() {
        let text: String = (0..20)
            .map(|i| format!("{i:02} {}", "y".repeat(90)))
            .collect::<Vec<_>>()
            .join("\n");
        let described = describe(Some(&FailureLog::Tail {
            container: "build".into(),
            exit_code: 1,
            text: text.clone(),
        }));
        assert_eq!(described.summary, "; container build exited with code 1");
        assert_eq!(described.status_tail(), format!("{LOG_INTRO}{text}"));
        let headline_len = 200;
        let event = described.event_tail(headline_len);
        assert!(headline_len + event.len() <= EVENT_NOTE_BYTES);
        assert!(
            event.ends_with(&format!("19 {}", "y".repeat(90))),
            "{event}"
        );
        assert!(described.event_tail(1000).is_empty(), "too little room");
    }

    #[test]
    fn unreadable_and_unread_logs() {
        let d = describe(Some(&FailureLog::Unavailable {
            why: "the build pod is gone".into(),
        }));
        assert_eq!(
            d.summary,
            "; its log could not be read: the build pod is gone"
        );
        assert!(d.status_tail().is_empty() && d.event_tail(10).is_empty());
        let d = describe(None);
        assert!(d.summary.is_empty() && d.status_tail().is_empty());
    }
}
