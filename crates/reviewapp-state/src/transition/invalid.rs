//! An invalid spec: report it (the `Invalid` condition, the message, a Warning once), apply
//! nothing.

use reviewapp_api::status::CONDITION_INVALID;
use reviewapp_api::{FieldError, ReviewAppStatus};

use super::{Context, Transition, note};
use crate::conditions;
use crate::intent::{EventKind, Intent};

/// Reports `errors`; the Warning only when the status on record does not say the same already.
pub(super) fn invalid(
    current: ReviewAppStatus,
    errors: &[FieldError],
    context: &Context,
) -> Transition {
    let message = format!(
        "invalid spec: {}",
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    );
    let mut status = current.clone();
    status.observed_generation = context.generation;
    status.message = Some(message.clone());
    conditions::set(
        &mut status.conditions,
        CONDITION_INVALID,
        true,
        "InvalidSpec",
        message.clone(),
        context.generation,
        context.now,
    );
    let mut intents = Vec::new();
    if !context.has_finalizer {
        intents.push(Intent::AddFinalizer);
    }
    let already_reported = current.message.as_deref() == Some(message.as_str())
        && conditions::is_true(&current.conditions, CONDITION_INVALID);
    if !already_reported {
        intents.push(Intent::Event(note(
            EventKind::Warning,
            "InvalidSpec",
            "Validate",
            message,
        )));
    }
    Transition {
        status,
        intents,
        after_status: Vec::new(),
        spec: None,
        requeue_at: None,
    }
}
