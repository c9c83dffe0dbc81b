//! Kubernetes Events on the `ReviewApp`, through the one shared `events.k8s.io/v1` recorder. A
//! lost Event is logged and counted, never an error.

use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use reviewapp_api::ReviewApp;
use reviewapp_state::{EventKind, EventNote};
use tracing::{debug, warn};

use crate::error::Verb;
use crate::executor::{Effects, Outcome};
use crate::retry;

/// Largest `note` the `events.k8s.io/v1` API accepts (bytes).
const MAX_EVENT_NOTE: usize = 1024;

impl Effects {
    /// Records a Kubernetes Event on `app` through the shared recorder, outside any plan (for
    /// example on an object that does not deserialize). Returns whether it was recorded; a
    /// failure is logged, never returned.
    pub async fn record(&self, app: &ReviewApp, note: &EventNote) -> bool {
        matches!(self.event(app, note).await, Outcome::Wrote)
    }

    /// Records `note` on `app`. A failure is logged and counted, never returned.
    pub(crate) async fn event(&self, app: &ReviewApp, note: &EventNote) -> Outcome {
        let reference = app.object_ref(&());
        let event = Event {
            type_: match note.kind {
                EventKind::Normal => EventType::Normal,
                EventKind::Warning => EventType::Warning,
            },
            reason: note.reason.to_string(),
            note: Some(truncate(&note.note, MAX_EVENT_NOTE)),
            action: note.action.to_string(),
            secondary: None,
        };
        let result = self
            .send(Verb::Event, "Event", || {
                self.recorder.publish(&event, &reference)
            })
            .await;
        match result {
            Ok(()) => {
                debug!(app = %app.name_any(), reason = note.reason, "event recorded");
                Outcome::Wrote
            }
            Err(err) if retry::is_fenced(&err) => {
                debug!(app = %app.name_any(), reason = note.reason, "event not recorded: fenced");
                Outcome::EventFailed
            }
            Err(err) => {
                warn!(
                    app = %app.name_any(),
                    reason = note.reason,
                    error = %err,
                    "could not record event"
                );
                Outcome::EventFailed
            }
        }
    }
}

/// `text`, cut to at most `max` bytes at a character boundary.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("hello", 10), "hello");
        assert_eq!(truncate(&"x".repeat(2000), MAX_EVENT_NOTE).len(), 1024);
    }
}
