//! What the writer's batch says about which rows are in the store, for the two ways a
//! batch is written (binary COPY, [`super::copy`]; the statements, [`super::backend`]):
//! which parents a new row may refer to, and the session a step is written under.

use std::collections::{HashMap, HashSet};

use super::jsonb::storable;
use crate::ids::AuditId;
use crate::store::Tracked;

/// The row is in the store: inserted by this batch, or committed by an earlier one and
/// not refused.
pub(crate) fn in_store(
    rows: &HashMap<AuditId, Tracked>,
    present: &HashSet<AuditId>,
    id: &AuditId,
) -> bool {
    present.contains(id) || rows.get(id).is_some_and(|t| t.committed && !t.refused)
}

/// The session (as written) of a step known to be in the store; `None` when the step is
/// not known here, and the statement looks it up.
pub(crate) fn session_of_step(
    rows: &HashMap<AuditId, Tracked>,
    present: &HashSet<AuditId>,
    step: &AuditId,
) -> Option<String> {
    if !in_store(rows, present, step) {
        return None;
    }
    let t = rows.get(step)?;
    t.row
        .session_written_as
        .clone()
        .or_else(|| t.row.opened.parent.as_ref().map(ToString::to_string))
        .map(|s| storable(&s).into_owned())
}
