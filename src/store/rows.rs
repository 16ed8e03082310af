//! From recorded fields to column values: the mapping table of the crate docs, in code.
//!
//! Runs on the writer thread only. Every rule a user can observe in the database — which
//! field becomes which column, the `input_hash`, the session status, what goes into the
//! `attributes` JSON — is decided here, in one place.

use std::time::SystemTime;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ids::AuditId;
use crate::record::{Closed, Decided, Kind, Opened, text};
use crate::record::{FieldValue, Fields};

/// The `profile` of a session without a `profile` field.
pub const DEFAULT_PROFILE: &str = "default";
/// The `profile` of a session the layer made up for a step outside every session.
pub const IMPLICIT_PROFILE: &str = "implicit";
/// The `module` of a step the layer made up for a decision outside every step.
pub const IMPLICIT_MODULE: &str = "implicit";
/// The `decision_type` of a decision without a `decision_type` field.
pub const UNSPECIFIED_DECISION: &str = "unspecified";

/// A row the writer knows about: opened, perhaps closed, perhaps not yet committed.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) opened: Opened,
    pub(crate) closed: Option<Closed>,
    /// The id the row is written under, when it is not its own: a session whose given id
    /// was already taken (see [`AuditId::renamed`]).
    pub(crate) written_as: Option<String>,
    /// For a step: the id its session is written under, when that was renamed.
    pub(crate) session_written_as: Option<String>,
}

impl Row {
    pub(crate) fn new(opened: Opened) -> Self {
        Row {
            opened,
            closed: None,
            written_as: None,
            session_written_as: None,
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        self.opened.kind
    }

    /// When the row starts: as opened, unless its close corrected it.
    pub(crate) fn started(&self) -> SystemTime {
        self.closed
            .as_ref()
            .and_then(|c| c.learned().started)
            .unwrap_or(self.opened.at)
    }

    /// The enclosing step: as opened, unless its close corrected it.
    pub(crate) fn parent_step(&self) -> Option<&AuditId> {
        self.closed
            .as_ref()
            .and_then(|c| c.learned().parent_step.as_ref())
            .or(self.opened.parent_step.as_ref())
    }

    /// Its close corrects the start or the enclosing step, which an UPDATE must write.
    pub(crate) fn moves(&self) -> bool {
        self.closed.as_ref().is_some_and(|c| c.learned().moves())
    }

    /// The id the row is written under: its own, or the one it was renamed to.
    pub(crate) fn written_id(&self) -> String {
        self.written_as
            .clone()
            .unwrap_or_else(|| self.opened.id.to_string())
    }
}

pub(crate) use crate::record::timestamp;

/// Lowercase hex SHA-256.
pub(crate) fn sha256_hex(text: &str) -> String {
    crate::chain::hex(&Sha256::digest(text.as_bytes()))
}

/// A value as JSON: numbers and booleans as themselves, everything else as a string
/// (non-finite floats too, since JSON has no NaN or infinity).
fn json(value: &FieldValue) -> Value {
    match value {
        FieldValue::I64(n) => Value::from(*n),
        FieldValue::U64(n) => Value::from(*n),
        FieldValue::F64(n) if n.is_finite() => Value::from(*n),
        FieldValue::Bool(b) => Value::from(*b),
        other => Value::String(text(other)),
    }
}

/// A value that is already valid JSON (e.g. `?vec!["a", "b"]`) as it is; anything else as
/// a JSON string.
fn json_text(value: &FieldValue) -> String {
    let raw = match value {
        FieldValue::Str(s) | FieldValue::Debug(s) => s.as_str(),
        other => return json(other).to_string(),
    };
    if serde_json::from_str::<serde::de::IgnoredAny>(raw).is_ok() {
        raw.to_owned()
    } else {
        Value::String(raw.to_owned()).to_string()
    }
}

/// A REAL column: numbers, and strings that parse as numbers. NaN is not a number SQLite
/// can store, so it stays in `attributes` instead.
fn real(value: &FieldValue) -> Option<f64> {
    let n = match value {
        FieldValue::F64(n) => *n,
        FieldValue::I64(n) => *n as f64,
        FieldValue::U64(n) => *n as f64,
        other => text(other).trim().parse().ok()?,
    };
    (!n.is_nan()).then_some(n)
}

/// An INTEGER column: integers, integral floats, and strings that parse as integers.
fn integer(value: &FieldValue) -> Option<i64> {
    match value {
        FieldValue::I64(n) => Some(*n),
        FieldValue::U64(n) => i64::try_from(*n).ok(),
        FieldValue::F64(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Some(*n as i64),
        FieldValue::F64(_) | FieldValue::Bool(_) => None,
        other => text(other).trim().parse().ok(),
    }
}

/// The latest value of each field of a row, and which of them a column has taken.
struct View<'a> {
    fields: Vec<(&'static str, &'a FieldValue, bool)>,
}

impl<'a> View<'a> {
    fn new(lists: [&'a Fields; 2]) -> Self {
        let mut fields: Vec<(&'static str, &'a FieldValue, bool)> = Vec::new();
        for (name, value) in lists.into_iter().flatten() {
            match fields.iter_mut().find(|(n, _, _)| n == name) {
                Some(slot) => slot.1 = value,
                None => fields.push((name, value, false)),
            }
        }
        View { fields }
    }

    fn get(&self, name: &str) -> Option<&'a FieldValue> {
        self.fields
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, v, _)| *v)
    }

    /// The value of `name`, which a column now holds (so `attributes` leaves it out).
    fn take(&mut self, name: &str) -> Option<&'a FieldValue> {
        let slot = self.fields.iter_mut().find(|(n, _, _)| *n == name)?;
        slot.2 = true;
        Some(slot.1)
    }

    /// Like [`View::take`], for a column that only accepts some values: a value the column
    /// rejects stays in `attributes`, so nothing recorded is lost.
    fn take_as<T>(&mut self, name: &str, convert: impl Fn(&FieldValue) -> Option<T>) -> Option<T> {
        let slot = self.fields.iter_mut().find(|(n, _, _)| *n == name)?;
        let converted = convert(slot.1);
        slot.2 = converted.is_some();
        converted
    }

    /// Every field no column took, as a JSON object with its keys sorted (whether or not
    /// serde_json's `preserve_order` is enabled somewhere in the build).
    ///
    /// Written straight into the string: this runs for every row the writer writes, and a
    /// `serde_json::Value` map would allocate a key, a value and a hash-map slot per field
    /// only to be printed and dropped. The text is the one `Value::to_string` gives.
    fn attributes(&self, extra: impl IntoIterator<Item = (&'static str, Value)>) -> String {
        let extra: Vec<(&'static str, Value)> = extra.into_iter().collect();
        let mut entries: Vec<(&str, Entry<'_>)> = self
            .fields
            .iter()
            .filter(|(_, _, taken)| !taken)
            .map(|(name, value, _)| (*name, Entry::Field(value)))
            .collect();
        for (name, value) in &extra {
            if !entries.iter().any(|(n, _)| n == name) {
                entries.push((name, Entry::Extra(value)));
            }
        }
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let mut out: Vec<u8> = Vec::with_capacity(64 * entries.len() + 2);
        out.push(b'{');
        for (i, (name, entry)) in entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Writing into a Vec cannot fail, and these values always serialize.
            let _ = serde_json::to_writer(&mut out, name);
            out.push(b':');
            match entry {
                Entry::Field(value) => push_json(&mut out, value),
                Entry::Extra(value) => {
                    let _ = serde_json::to_writer(&mut out, value);
                }
            }
        }
        out.push(b'}');
        // serde_json writes UTF-8, and so do the pushes above.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

/// A value of `attributes`: a recorded field, or one the mapping adds.
enum Entry<'a> {
    Field(&'a FieldValue),
    Extra(&'a Value),
}

/// Appends a value as [`json`] makes it, without building the `Value`.
fn push_json(out: &mut Vec<u8>, value: &FieldValue) {
    // Writing into a Vec cannot fail.
    let _ = match value {
        FieldValue::I64(n) => serde_json::to_writer(&mut *out, n),
        FieldValue::U64(n) => serde_json::to_writer(&mut *out, n),
        FieldValue::F64(n) if n.is_finite() => serde_json::to_writer(&mut *out, n),
        FieldValue::Bool(b) => serde_json::to_writer(&mut *out, b),
        FieldValue::Str(s) => serde_json::to_writer(&mut *out, s.as_str()),
        other => serde_json::to_writer(&mut *out, &text(other)),
    };
}

fn recorded(row: &Row) -> &Fields {
    static NONE: Fields = Vec::new();
    row.closed.as_ref().map_or(&NONE, |c| &c.learned().recorded)
}

fn implicit_marker(row: &Row) -> Option<(&'static str, Value)> {
    row.opened
        .implicit
        .then_some(("implicit", Value::Bool(true)))
}

/// The columns of a `sessions` row.
#[derive(Debug, PartialEq)]
pub(crate) struct SessionColumns {
    pub(crate) id: String,
    pub(crate) started_at: String,
    pub(crate) ended_at: Option<String>,
    pub(crate) profile: String,
    pub(crate) input_hash: String,
    pub(crate) input: Option<String>,
    pub(crate) status: String,
    pub(crate) attributes: String,
}

pub(crate) fn session(row: &Row, store_inputs: bool) -> SessionColumns {
    let mut view = View::new([&row.opened.fields, recorded(row)]);
    view.take("id");
    let profile = view
        .take("profile")
        .or_else(|| view.get(GEN_AI_AGENT))
        .or_else(|| view.get("gen_ai.workflow.name"))
        .or_else(|| view.get("agent.name"))
        .map(text)
        .unwrap_or_else(|| {
            if row.opened.implicit {
                IMPLICIT_PROFILE
            } else {
                DEFAULT_PROFILE
            }
            .to_owned()
        });
    let input = view
        .take("input")
        .or_else(|| view.take("gen_ai.prompt"))
        .map(text);
    let input_hash = match view.take("input_hash") {
        Some(given) => text(given),
        None => sha256_hex(input.as_deref().unwrap_or("")),
    };
    let status_field = view.take("status").map(text);
    let no_result = rig_run_without_result(row, &view);
    let status = match &row.closed {
        None => "running".to_owned(),
        Some(_) if status_field.is_some() => status_field.unwrap_or_default(),
        Some(closed) if closed.learned().failed() || failure(&view).is_some() => {
            "failed".to_owned()
        }
        Some(_) if no_result.is_some() => "failed".to_owned(),
        Some(_) => "completed".to_owned(),
    };
    let mut extra = outcome_attributes(row);
    if let Some(error) = no_result {
        extra.push(("error", Value::String(error.to_owned())));
    }
    if row.written_as.is_some() {
        extra.push(("given_id", Value::String(row.opened.id.to_string())));
    }
    SessionColumns {
        id: row.written_id(),
        started_at: timestamp(row.started()),
        ended_at: row.closed.as_ref().map(|c| timestamp(c.at)),
        profile,
        input_hash,
        input: input.filter(|_| store_inputs),
        status,
        attributes: view.attributes(extra.into_iter().chain(implicit_marker(row))),
    }
}

/// `return` and `error` event values of a span without columns for them.
fn outcome_attributes(row: &Row) -> Vec<(&'static str, Value)> {
    let Some(closed) = &row.closed else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let learned = closed.learned();
    if let Some(value) = &learned.returned {
        out.push(("return", json(value)));
    }
    if let Some(value) = &learned.error {
        out.push(("error", json(value)));
    }
    out
}

/// What a rig run span that closed without a result says: rig-core's agent (checked on
/// 0.38) records a run's usage on its own `invoke_agent` span exactly when the run returns
/// `Ok`, and nothing at all on an error. (rig-agent 0.44 records usage only as far as the
/// provider reports it, so its silence proves nothing; a span of the caller's that rig
/// adopts is the caller's to mark: see the rig recipe in docs/frameworks.md.)
const RIG_RUN_WITHOUT_RESULT: &str = "the run ended without a result: it returned an error \
     or was cancelled (rig records a run's usage only when the run succeeds)";

/// The error of a closed rig `invoke_agent` span that rig recorded no usage on.
fn rig_run_without_result(row: &Row, view: &View<'_>) -> Option<&'static str> {
    let closed = row.closed.is_some();
    let run = view
        .get("gen_ai.operation.name")
        .is_some_and(|op| text(op) == "invoke_agent");
    (closed
        && run
        && row.opened.target.starts_with("rig_core::agent")
        && view.get(GEN_AI_INPUT_TOKENS).is_none())
    .then_some(RIG_RUN_WITHOUT_RESULT)
}

/// The failure the OpenTelemetry conventions record, for a row without an `error` field:
/// `error.type` (or rig's `gen_ai.tool.error.type`), else `otel.status_code = "error"`
/// with its `otel.status_description`. The fields also stay in `attributes`.
fn failure(view: &View<'_>) -> Option<String> {
    if let Some(value) = view.get("error").or_else(|| view.get("error.type")) {
        return Some(text(value));
    }
    if let Some(value) = view.get("gen_ai.tool.error.type") {
        return Some(text(value));
    }
    let status = view.get("otel.status_code").map(text)?;
    status.eq_ignore_ascii_case("error").then(|| {
        view.get("otel.status_description")
            .map(text)
            .unwrap_or(status)
    })
}

/// The columns of a `steps` row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StepColumns {
    pub(crate) id: String,
    pub(crate) session_id: String,
    pub(crate) parent_step_id: Option<String>,
    pub(crate) module: String,
    pub(crate) started_at: String,
    pub(crate) ended_at: Option<String>,
    pub(crate) input_summary: Option<String>,
    pub(crate) output_summary: Option<String>,
    pub(crate) confidence: Option<f64>,
    pub(crate) tokens_used: Option<i64>,
    pub(crate) error: Option<String>,
    pub(crate) attributes: String,
}

const GEN_AI_AGENT: &str = "gen_ai.agent.name";
const GEN_AI_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
const GEN_AI_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";

pub(crate) fn step(row: &Row) -> StepColumns {
    let mut view = View::new([&row.opened.fields, recorded(row)]);
    let module = view
        .take("module")
        .or_else(|| view.get("gen_ai.tool.name"))
        .or_else(|| view.get("gen_ai.request.model"))
        .or_else(|| view.get("gen_ai.response.model"))
        .or_else(|| view.get("llm.model_name"))
        .or_else(|| view.get(GEN_AI_AGENT))
        .or_else(|| view.get("tool.name"))
        .or_else(|| view.get("otel.name"))
        .map(text)
        .unwrap_or_else(|| {
            if row.opened.implicit {
                IMPLICIT_MODULE
            } else {
                row.opened.target
            }
            .to_owned()
        });
    let closed = row.closed.as_ref();
    let input_summary = view
        .take("input_summary")
        .or_else(|| view.take("gen_ai.tool.call.arguments"))
        .or_else(|| view.take("gen_ai.input.messages"))
        .or_else(|| view.take("input.value"))
        .map(text);
    let output_summary = view
        .take("output_summary")
        .or_else(|| closed.and_then(|c| c.learned().returned.as_ref()))
        .or_else(|| view.take("gen_ai.tool.call.result"))
        .or_else(|| view.take("gen_ai.output.messages"))
        .or_else(|| view.take("output.value"))
        .map(text);
    let error = view
        .take("error")
        .or_else(|| closed.and_then(|c| c.learned().error.as_ref()))
        .map(text)
        .or_else(|| failure(&view))
        .or_else(|| rig_run_without_result(row, &view).map(str::to_owned));
    let tokens_used = view.take_as("tokens_used", integer).or_else(|| {
        // OpenTelemetry GenAI names, current then deprecated, then OpenInference's; they
        // also stay in `attributes`.
        let count = |names: [&str; 3]| names.iter().find_map(|n| view.get(n).and_then(integer));
        let input = count([
            GEN_AI_INPUT_TOKENS,
            "gen_ai.usage.prompt_tokens",
            "llm.token_count.prompt",
        ]);
        let output = count([
            GEN_AI_OUTPUT_TOKENS,
            "gen_ai.usage.completion_tokens",
            "llm.token_count.completion",
        ]);
        match (input, output) {
            (None, None) => None,
            (i, o) => Some(i.unwrap_or(0).saturating_add(o.unwrap_or(0))),
        }
    });
    StepColumns {
        id: row.opened.id.to_string(),
        session_id: row.session_written_as.clone().unwrap_or_else(|| {
            row.opened
                .parent
                .as_ref()
                .map(AuditId::to_string)
                .unwrap_or_default()
        }),
        parent_step_id: row.parent_step().map(AuditId::to_string),
        module,
        started_at: timestamp(row.started()),
        ended_at: closed.map(|c| timestamp(c.at)),
        input_summary,
        output_summary,
        confidence: view.take_as("confidence", real),
        tokens_used,
        error,
        attributes: view.attributes(implicit_marker(row)),
    }
}

/// The columns of a `decisions` row.
#[derive(Debug, PartialEq)]
pub(crate) struct DecisionColumns {
    pub(crate) id: String,
    pub(crate) step_id: String,
    pub(crate) decision_type: String,
    pub(crate) options_considered: Option<String>,
    pub(crate) chosen_option: Option<String>,
    pub(crate) rationale: Option<String>,
    pub(crate) decided_at: Option<String>,
    pub(crate) attributes: String,
}

fn decision_columns(
    id: &AuditId,
    step: Option<&AuditId>,
    decided_at: Option<SystemTime>,
    mut view: View<'_>,
    extra: Vec<(&'static str, Value)>,
) -> DecisionColumns {
    DecisionColumns {
        id: id.to_string(),
        step_id: step.map(AuditId::to_string).unwrap_or_default(),
        decision_type: view
            .take("decision_type")
            .or_else(|| view.get("gen_ai.operation.name"))
            .map(text)
            .unwrap_or_else(|| UNSPECIFIED_DECISION.to_owned()),
        options_considered: view.take("options_considered").map(json_text),
        chosen_option: view.take("chosen_option").map(text),
        rationale: view.take("rationale").map(text),
        decided_at: decided_at.map(timestamp),
        attributes: view.attributes(extra),
    }
}

/// A `decision` span: decided when it closes.
pub(crate) fn decision(row: &Row) -> DecisionColumns {
    let view = View::new([&row.opened.fields, recorded(row)]);
    decision_columns(
        &row.opened.id,
        row.opened.parent.as_ref(),
        row.closed.as_ref().map(|c| c.at),
        view,
        outcome_attributes(row),
    )
}

/// A `decision` event: decided at that moment.
pub(crate) fn decided(event: &Decided) -> DecisionColumns {
    static NONE: Fields = Vec::new();
    let view = View::new([&event.fields, &NONE]);
    decision_columns(
        &event.id,
        Some(&event.step),
        Some(event.at),
        view,
        Vec::new(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Learned;
    use std::time::{Duration, UNIX_EPOCH};

    fn opened(kind: Kind, fields: Fields) -> Opened {
        Opened {
            kind,
            id: AuditId::given("x", UNIX_EPOCH),
            parent: Some(AuditId::given("p", UNIX_EPOCH)),
            parent_step: None,
            at: UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
            target: "my_app::reason",
            fields,
            implicit: false,
        }
    }

    fn closed(recorded: Fields) -> Closed {
        Closed {
            id: AuditId::given("x", UNIX_EPOCH),
            at: UNIX_EPOCH + Duration::from_secs(1_700_000_001),
            learned: Some(Box::new(Learned {
                recorded,
                ..Learned::default()
            })),
        }
    }

    #[test]
    fn timestamps_are_utc_text_with_microseconds() {
        let row = Row {
            opened: opened(Kind::Session, vec![]),
            closed: None,
            written_as: None,
            session_written_as: None,
        };
        assert_eq!(
            session(&row, false).started_at,
            "2023-11-14 22:13:20.123456"
        );
    }

    #[test]
    fn input_hash_is_sha256_of_the_input_or_of_nothing() {
        let row = Row {
            opened: opened(
                Kind::Session,
                vec![("input", FieldValue::Debug("\"abc\"".into()))],
            ),
            closed: None,
            written_as: None,
            session_written_as: None,
        };
        let cols = session(&row, false);
        assert_eq!(
            cols.input_hash,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(cols.input, None);
        assert_eq!(session(&row, true).input.as_deref(), Some("abc"));
        let empty = Row {
            opened: opened(Kind::Session, vec![]),
            closed: None,
            written_as: None,
            session_written_as: None,
        };
        assert_eq!(
            session(&empty, false).input_hash,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn session_status_runs_then_follows_status_field_error_or_completes() {
        let mut row = Row {
            opened: opened(Kind::Session, vec![]),
            closed: None,
            written_as: None,
            session_written_as: None,
        };
        assert_eq!(session(&row, false).status, "running");
        row.closed = Some(closed(vec![]));
        assert_eq!(session(&row, false).status, "completed");
        row.closed = Some(closed(vec![("error", FieldValue::Str("boom".into()))]));
        assert_eq!(session(&row, false).status, "failed");
        row.closed = Some(closed(vec![
            ("error", FieldValue::Str("boom".into())),
            ("status", FieldValue::Str("retried".into())),
        ]));
        assert_eq!(session(&row, false).status, "retried");
    }

    #[test]
    fn step_columns_take_their_fields_and_leave_the_rest_in_attributes() {
        let row = Row {
            opened: opened(
                Kind::Step,
                vec![
                    ("confidence", FieldValue::F64(0.75)),
                    ("gen_ai.usage.input_tokens", FieldValue::U64(10)),
                    ("gen_ai.usage.output_tokens", FieldValue::I64(5)),
                    ("question", FieldValue::Debug("\"why?\"".into())),
                ],
            ),
            closed: Some(closed(vec![("confidence", FieldValue::Str("0.5".into()))])),
            written_as: None,
            session_written_as: None,
        };
        let cols = step(&row);
        assert_eq!(cols.module, "my_app::reason");
        assert_eq!(cols.confidence, Some(0.5));
        assert_eq!(cols.tokens_used, Some(15));
        let attributes: Value = serde_json::from_str(&cols.attributes).unwrap();
        assert_eq!(
            attributes,
            serde_json::json!({
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 5,
                "question": "why?"
            })
        );
    }

    #[test]
    fn values_a_column_cannot_hold_stay_in_attributes() {
        let row = Row {
            opened: opened(
                Kind::Step,
                vec![
                    ("confidence", FieldValue::F64(f64::NAN)),
                    ("tokens_used", FieldValue::Str("many".into())),
                ],
            ),
            closed: None,
            written_as: None,
            session_written_as: None,
        };
        let cols = step(&row);
        assert_eq!(cols.confidence, None);
        assert_eq!(cols.tokens_used, None);
        let attributes: Value = serde_json::from_str(&cols.attributes).unwrap();
        assert_eq!(
            attributes,
            serde_json::json!({"confidence": "NaN", "tokens_used": "many"})
        );
    }

    #[test]
    fn options_considered_keeps_json_and_quotes_anything_else() {
        let debug_vec = FieldValue::Debug(format!("{:?}", vec!["a", "b"]));
        assert_eq!(json_text(&debug_vec), r#"["a", "b"]"#);
        assert_eq!(json_text(&FieldValue::Str("a or b".into())), r#""a or b""#);
        assert_eq!(json_text(&FieldValue::I64(3)), "3");
    }

    /// What `attributes` wrote before it wrote JSON straight into its string: a
    /// `serde_json` map of the fields no column took, keys sorted, printed.
    fn attributes_through_a_value(view: &View<'_>, extra: &[(&'static str, Value)]) -> String {
        let mut entries: Vec<(&str, Value)> = view
            .fields
            .iter()
            .filter(|(_, _, taken)| !taken)
            .map(|(name, value, _)| (*name, json(value)))
            .collect();
        for (name, value) in extra {
            if !entries.iter().any(|(n, _)| n == name) {
                entries.push((name, value.clone()));
            }
        }
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let map: serde_json::Map<String, Value> = entries
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        Value::Object(map).to_string()
    }

    fn field_value() -> impl proptest::strategy::Strategy<Value = FieldValue> {
        use proptest::prelude::*;
        prop_oneof![
            any::<String>().prop_map(FieldValue::Str),
            any::<String>().prop_map(FieldValue::Debug),
            any::<String>().prop_map(|s| FieldValue::Debug(format!("{s:?}"))),
            any::<i64>().prop_map(FieldValue::I64),
            any::<u64>().prop_map(FieldValue::U64),
            any::<f64>().prop_map(FieldValue::F64),
            Just(FieldValue::F64(f64::NAN)),
            Just(FieldValue::F64(f64::INFINITY)),
            any::<bool>().prop_map(FieldValue::Bool),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        /// Every attributes text is exactly the one the `Value` map printed: the chain's
        /// leaves of a row written today and of the same row written before are equal.
        #[test]
        fn attributes_are_the_text_a_value_map_prints(
            fields in proptest::collection::vec(
                (proptest::sample::select(vec!["a", "b", "é", "gen_ai.x", "\"q\"", "z\n", "implicit", "status"]), field_value()),
                0..12,
            ),
            taken in proptest::collection::vec(proptest::prelude::any::<bool>(), 12),
            marker in proptest::prelude::any::<bool>(),
        ) {
            static NONE: Fields = Vec::new();
            let mut view = View::new([&fields, &NONE]);
            for (slot, take) in view.fields.iter_mut().zip(&taken) {
                slot.2 = *take;
            }
            let extra: Vec<(&'static str, Value)> = if marker {
                vec![("implicit", Value::Bool(true)), ("status", Value::from("completed"))]
            } else {
                Vec::new()
            };
            proptest::prop_assert_eq!(
                view.attributes(extra.clone()),
                attributes_through_a_value(&view, &extra)
            );
        }
    }
}
