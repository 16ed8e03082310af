//! A batch's new rows by binary COPY, their chain leaves hashed from what was sent.
//!
//! Why: with one connection the set-based statements cost the server about three times
//! what a COPY of the same rows does (each text time parsed, each `jsonb` parsed and then
//! printed again for the RETURNed image, two times formatted by `to_char`, a sort and a
//! speculative insertion per row), and the writer waits for each statement's answer before
//! it builds the next. COPY streams: the server stores the first rows while the writer is
//! still encoding the last. BENCHMARKS.md has the figures.
//!
//! What makes the leaves right without reading the rows back: every value is sent as the
//! store will give it back. Text goes as its bytes to a UTF8 database (the writer checks
//! the server's encoding and takes the statements otherwise); times as the microseconds
//! their text names, so `to_char` gives that text again; numbers in binary; JSON in
//! `jsonb`'s normal form ([`super::jsonb`]), so the server stores it unchanged. A batch with
//! anything that cannot be sent so — a time outside the years 1970–9999, JSON without a
//! certain normal form — or with a step or decision whose parents the writer does not know
//! to be stored, is left to the statements.
//!
//! COPY has no `ON CONFLICT`: a row the store refuses (a given session id already taken, a
//! step whose session is not in the store) fails the whole COPY. The transaction is then
//! rolled back — nothing of it stays, its batch record included — and the writer writes
//! the batch again by statements, which refuse, or rename, row by row. The rows of each
//! table go in sorted by key, as the statements' do.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{IsNull, ToSql, Type, accepts, to_sql_checked};

use super::batch::{in_store, session_of_step};
use super::connection::Tx;
use super::jsonb;
use super::jsonb::storable;
use super::statements::PgResult;
use crate::chain::{self, Cell, Leaf, TableSpec};
use crate::ids::AuditId;
use crate::record::Kind;
use crate::store::process::Identity;
use crate::store::rows;
use crate::store::{self, Op, Tracked};

/// A batch's new rows, each table's sorted by key: which rows, and in what order they go.
/// Their columns are made as each is sent, so that the writer makes the next while the
/// server stores the last.
pub(crate) struct NewRows {
    sessions: Vec<AuditId>,
    steps: Vec<AuditId>,
    /// The op of each decision (a span's insert or an event), with its step's session.
    decisions: Vec<(usize, String)>,
}

/// What a COPY attempt came to.
pub(crate) enum Copied {
    /// Every row went in: their leaves.
    Rows(Vec<Leaf>),
    /// A row had no COPY form; the COPY was abandoned, and the transaction must be
    /// rolled back.
    NoCopyForm,
}

impl NewRows {
    /// Which of the batch's ops are new rows, in COPY order; `None` when a step's session
    /// or parent step, or a decision's step, is not known to be in the store (the
    /// statements look them up, and refuse what is missing). `written`: the new rows this
    /// transaction has put in the store before these ops (an earlier part of the batch).
    pub(crate) fn plan(
        rows: &mut HashMap<AuditId, Tracked>,
        ops: &[Op],
        written: &HashSet<AuditId>,
    ) -> Option<NewRows> {
        // Every new row of the batch is in the store once the COPY succeeds.
        let mut present: HashSet<AuditId> = written.clone();
        let mut sessions = Vec::new();
        let mut steps = Vec::new();
        for op in ops {
            let Op::Insert(id) = op else { continue };
            store::follow_renamed_session(rows, id);
            let Some(t) = rows.get(id) else { continue };
            present.insert(id.clone());
            match t.row.kind() {
                Kind::Session => sessions.push((storable(&t.row.written_id()).into_owned(), id)),
                Kind::Step => {
                    // A step whose session or parent step is not known to be in the store
                    // (its opening dropped under the drop policy, say) would fail the COPY
                    // on its foreign key: the statements refuse it without that.
                    let parents = [
                        t.row.opened.parent.as_ref(),
                        t.row.opened.parent_step.as_ref(),
                    ];
                    if parents
                        .into_iter()
                        .flatten()
                        .any(|parent| !in_store(rows, &present, parent))
                    {
                        return None;
                    }
                    let session = session_of_step(rows, &present, id)?;
                    steps.push(((session, storable(&id.to_string()).into_owned()), id));
                }
                Kind::Decision => {}
            }
        }
        let mut decisions = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let (id, step) = match op {
                Op::Insert(id) => match rows.get(id) {
                    Some(t) if t.row.kind() == Kind::Decision => {
                        (id, t.row.opened.parent.as_ref()?)
                    }
                    _ => continue,
                },
                Op::Decided(decided) => (&decided.id, &decided.step),
                Op::Update(_) | Op::Joined(_) => continue,
            };
            let session = session_of_step(rows, &present, step)?;
            decisions.push((
                (session.clone(), storable(&id.to_string()).into_owned()),
                (i, session),
            ));
        }
        sessions.sort_by(|a, b| a.0.cmp(&b.0));
        steps.sort_by(|a, b| a.0.cmp(&b.0));
        decisions.sort_by(|a, b| a.0.cmp(&b.0));
        Some(NewRows {
            sessions: sessions.into_iter().map(|(_, id)| id.clone()).collect(),
            steps: steps.into_iter().map(|(_, id)| id.clone()).collect(),
            decisions: decisions.into_iter().map(|(_, d)| d).collect(),
        })
    }

    /// COPYs the rows into their tables (sessions, steps, decisions: each table's foreign
    /// keys are checked when its COPY ends).
    pub(crate) fn write(
        &self,
        tx: &mut Tx<'_>,
        rows: &HashMap<AuditId, Tracked>,
        ops: &[Op],
        store_inputs: bool,
        identity: &Identity,
    ) -> PgResult<Copied> {
        let mut leaves =
            Vec::with_capacity(self.sessions.len() + self.steps.len() + self.decisions.len());
        let sessions = self
            .sessions
            .iter()
            .filter_map(|id| rows.get(id))
            .map(|t| (rows::session(&t.row, store_inputs), identity));
        if !self.sessions.is_empty()
            && !SESSIONS.copy(tx, sessions, |(c, id)| session_values(c, id), &mut leaves)?
        {
            return Ok(Copied::NoCopyForm);
        }
        let steps = self
            .steps
            .iter()
            .filter_map(|id| rows.get(id))
            .map(|t| rows::step(&t.row));
        if !self.steps.is_empty() && !STEPS.copy(tx, steps, step_values, &mut leaves)? {
            return Ok(Copied::NoCopyForm);
        }
        let decisions = self.decisions.iter().filter_map(|(i, session)| {
            let c = match ops.get(*i)? {
                Op::Insert(id) => rows::decision(&rows.get(id)?.row),
                Op::Decided(decided) => rows::decided(decided),
                Op::Update(_) | Op::Joined(_) => return None,
            };
            Some((c, session.as_str()))
        });
        if !self.decisions.is_empty()
            && !DECISIONS.copy(tx, decisions, |(c, s)| decision_values(c, s), &mut leaves)?
        {
            return Ok(Copied::NoCopyForm);
        }
        Ok(Copied::Rows(leaves))
    }
}

/// One value of a row: what COPY sends and what the chain hashes are the same value, so
/// the two cannot drift apart.
#[derive(Debug)]
enum Value<'a> {
    /// Text as the store holds it (U+0000 replaced).
    Text(Option<Cow<'a, str>>),
    /// A time: the instant sent, and its text, which `to_char` gives back and the chain
    /// hashes.
    Time(Option<(SystemTime, &'a str)>),
    Real(Option<f64>),
    Integer(Option<i64>),
    /// JSON in `jsonb`'s normal form, sent in `jsonb`'s binary form (a version byte, then
    /// the text).
    Json(String),
}

impl Value<'_> {
    /// Text, U+0000 replaced.
    fn text(text: &str) -> Value<'_> {
        Value::Text(Some(storable(text)))
    }

    fn opt_text(text: Option<&str>) -> Value<'_> {
        Value::Text(text.map(storable))
    }

    /// A time whose text names an instant COPY can send; `None` if it has none.
    fn time(text: Option<&str>) -> Option<Value<'_>> {
        Some(Value::Time(match text {
            Some(text) => Some((instant(text)?, text)),
            None => None,
        }))
    }

    /// JSON in its normal form; `None` if it has none for certain.
    fn json(json: &str) -> Option<Value<'static>> {
        Some(Value::Json(jsonb::normal_form(json)?))
    }

    /// The value as the chain hashes it.
    fn cell(&self) -> Cell<'_> {
        match self {
            Value::Text(text) => Cell::opt_text(text.as_deref()),
            Value::Time(time) => Cell::opt_text(time.map(|(_, text)| text)),
            Value::Real(real) => real.map_or(Cell::Null, Cell::Real),
            Value::Integer(n) => n.map_or(Cell::Null, Cell::Integer),
            Value::Json(json) => Cell::text(json),
        }
    }
}

impl ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Value::Text(text) => text.as_deref().to_sql(ty, out),
            Value::Time(time) => time.map(|(at, _)| at).to_sql(ty, out),
            Value::Real(real) => real.to_sql(ty, out),
            Value::Integer(n) => n.to_sql(ty, out),
            Value::Json(json) => {
                out.extend_from_slice(&[1]);
                out.extend_from_slice(json.as_bytes());
                Ok(IsNull::No)
            }
        }
    }

    accepts!(TEXT, TIMESTAMPTZ, FLOAT8, INT8, JSONB);
    to_sql_checked!();
}

/// One table's COPY: its chained columns in the chain's order, then any it has beyond them.
struct TableCopy {
    table: &'static TableSpec,
    /// Columns the table has beyond the chained ones (not hashed).
    extra: &'static [&'static str],
    /// The type of every column, chained then extra.
    types: &'static [Type],
}

const SESSIONS: TableCopy = TableCopy {
    table: &chain::SESSIONS,
    extra: &[],
    types: &[
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::JSONB,
        Type::INT8,
        Type::TEXT,
    ],
};

const STEPS: TableCopy = TableCopy {
    table: &chain::STEPS,
    extra: &[],
    types: &[
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
        Type::TEXT,
        Type::TEXT,
        Type::FLOAT8,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::JSONB,
    ],
};

/// Decisions also carry their step's session, which the chain does not hash (SQLite's
/// `decisions` has no such column).
const DECISIONS: TableCopy = TableCopy {
    table: &chain::DECISIONS,
    extra: &["session_id"],
    types: &[
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::JSONB,
        Type::TEXT,
    ],
};

impl TableCopy {
    /// COPYs the rows `values` gives, appending each one's leaf; `false` (the COPY
    /// abandoned) as soon as a row has no COPY form.
    fn copy<C>(
        &self,
        tx: &mut Tx<'_>,
        rows: impl Iterator<Item = C>,
        values: impl Fn(&C) -> Option<Vec<Value<'_>>>,
        leaves: &mut Vec<Leaf>,
    ) -> PgResult<bool> {
        let columns: Vec<&str> = self
            .table
            .columns
            .iter()
            .chain(self.extra)
            .copied()
            .collect();
        let sql = format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            self.table.name,
            columns.join(", ")
        );
        let mut writer = BinaryCopyInWriter::new(tx.copy_in(&sql)?, self.types);
        let chained = self.table.columns.len();
        for row in rows {
            let Some(values) = values(&row).filter(|v| v.len() == self.types.len()) else {
                return Ok(false);
            };
            writer.write_raw(values.iter())?;
            let id = values.first().map_or(Cell::Null, Value::cell);
            let mut leaf = Leaf::of(
                self.table,
                chain::row_id(id),
                values[..chained].iter().map(Value::cell),
            );
            // A decision's session is one of the columns sent beside the chained ones: its
            // chain entry names it, with no lookup after the COPY.
            if leaf.session.is_none()
                && let Some(at) = self.extra.iter().position(|c| *c == "session_id")
                && let Some(Cell::Text(bytes)) = values.get(chained + at).map(Value::cell)
            {
                leaf.session = std::str::from_utf8(bytes).ok().map(str::to_owned);
            }
            leaves.push(leaf);
        }
        writer.finish()?;
        Ok(true)
    }
}

/// A session's values, in COPY order; `None` if one has no COPY form.
fn session_values<'a>(
    c: &'a rows::SessionColumns,
    identity: &'a Identity,
) -> Option<Vec<Value<'a>>> {
    Some(vec![
        Value::text(&c.id),
        Value::time(Some(&c.started_at))?,
        Value::time(c.ended_at.as_deref())?,
        Value::text(&c.profile),
        Value::text(&c.input_hash),
        Value::text(&c.status),
        Value::opt_text(c.input.as_deref()),
        Value::json(&c.attributes)?,
        Value::Integer(Some(identity.pid)),
        Value::text(&identity.host),
    ])
}

/// A step's values, in COPY order; `None` if one has no COPY form.
fn step_values(c: &rows::StepColumns) -> Option<Vec<Value<'_>>> {
    Some(vec![
        Value::text(&c.id),
        Value::text(&c.session_id),
        Value::text(&c.module),
        Value::time(Some(&c.started_at))?,
        Value::time(c.ended_at.as_deref())?,
        Value::opt_text(c.input_summary.as_deref()),
        Value::opt_text(c.output_summary.as_deref()),
        Value::Real(c.confidence),
        Value::Integer(c.tokens_used),
        Value::opt_text(c.error.as_deref()),
        Value::opt_text(c.parent_step_id.as_deref()),
        Value::json(&c.attributes)?,
    ])
}

/// A decision's values, in COPY order (its step's session last); `None` if one has no COPY
/// form.
fn decision_values<'a>(c: &'a rows::DecisionColumns, session: &'a str) -> Option<Vec<Value<'a>>> {
    Some(vec![
        Value::text(&c.id),
        Value::text(&c.step_id),
        Value::text(&c.decision_type),
        Value::opt_text(c.options_considered.as_deref()),
        Value::opt_text(c.chosen_option.as_deref()),
        Value::opt_text(c.rationale.as_deref()),
        Value::time(c.decided_at.as_deref())?,
        Value::json(&c.attributes)?,
        Value::text(session),
    ])
}

/// The instant a `YYYY-MM-DD HH:MM:SS.ffffff` UTC text names, for a year 1970–9999 (for
/// which `to_char` gives exactly that text back); `None` for anything else.
fn instant(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() != 26 || [b[4], b[7], b[10], b[13], b[16], b[19]] != *b"-- ::." {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u32> {
        let digits = b.get(from..to)?;
        digits.iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let year = i32::try_from(number(0, 4)?).ok()?;
    if year < 1970 {
        return None;
    }
    let at = chrono::NaiveDate::from_ymd_opt(year, number(5, 7)?, number(8, 10)?)?
        .and_hms_micro_opt(
            number(11, 13)?,
            number(14, 16)?,
            number(17, 19)?,
            number(20, 26)?,
        )?
        .and_utc();
    let micros = u64::try_from(at.timestamp_micros()).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_micros(micros))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Closed, Decided, Opened};
    use crate::record::{FieldValue, Fields};
    use crate::store::rows::Row;
    use postgres::error::SqlState;

    #[test]
    fn times_are_read_back_from_their_text() {
        let now = SystemTime::now();
        let text = rows::timestamp(now);
        let back = instant(&text).unwrap();
        assert_eq!(rows::timestamp(back), text);
        let micros = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_micros();
        assert_eq!(micros(back), micros(now));
        for bad in [
            "1969-12-31 23:59:59.999999",
            "2026-02-30 00:00:00.000000",
            "2026-12-01 24:00:00.000000",
            "2026-12-01 10:00:00.00000",
            "2026-12-01T10:00:00.000000",
            "+026-12-01 10:00:00.000000",
        ] {
            assert_eq!(instant(bad), None, "{bad}");
        }
    }

    /// A row the writer holds, opened now (and closed a moment later if `closed`).
    fn tracked(
        kind: Kind,
        id: AuditId,
        parent: Option<&AuditId>,
        parent_step: Option<&AuditId>,
        fields: Fields,
        closed: bool,
    ) -> Tracked {
        let at = SystemTime::now();
        Tracked {
            row: Row {
                opened: Opened {
                    kind,
                    id: id.clone(),
                    parent: parent.cloned(),
                    parent_step: parent_step.cloned(),
                    at,
                    target: "my_app::reason",
                    fields,
                    implicit: false,
                },
                closed: closed.then(|| Closed {
                    id,
                    at: at + Duration::from_micros(1_234),
                    learned: None,
                }),
                written_as: None,
                session_written_as: None,
            },
            committed: false,
            refused: false,
            close_lost: false,
        }
    }

    /// Values the store must give back exactly as the chain hashed them.
    fn hostile() -> Fields {
        vec![
            ("note", FieldValue::Str("a\0b \u{1}\u{7f}\t\"\\ é😀".into())),
            ("big", FieldValue::F64(1.558_989_794_734_043_9e35)),
            ("tiny", FieldValue::F64(5e-324)),
            ("negative_zero", FieldValue::F64(-0.0)),
            ("u", FieldValue::U64(u64::MAX)),
            ("i", FieldValue::I64(i64::MIN)),
            ("a_much_longer_key_name", FieldValue::Bool(true)),
            ("z", FieldValue::Debug("Some(\"quoted\")".into())),
        ]
    }

    /// One batch: a session with a given id holding U+0000, a step and a nested step with
    /// hostile text and numbers, a decision span and a decision event.
    fn batch() -> (HashMap<AuditId, Tracked>, Vec<Op>) {
        let at = SystemTime::now();
        let session = AuditId::given("given\0id é", SystemTime::now());
        let (step, nested, decision) = (
            AuditId::generate(at),
            AuditId::generate(at),
            AuditId::generate(at),
        );
        let mut session_fields = hostile();
        session_fields.push(("profile", FieldValue::Str("pro\0file".into())));
        session_fields.push(("input", FieldValue::Str("the question\0".into())));
        let mut step_fields = hostile();
        step_fields.extend([
            ("module", FieldValue::Str("mödule\0".into())),
            ("input_summary", FieldValue::Str("in\r\n\u{0}".into())),
            ("output_summary", FieldValue::Str(String::new())),
            ("confidence", FieldValue::F64(f64::MIN_POSITIVE / 8.0)),
            ("tokens_used", FieldValue::I64(i64::MAX)),
        ]);
        let decision_fields = vec![
            ("decision_type", FieldValue::Str("branch".into())),
            (
                "options_considered",
                FieldValue::Debug("[\"a\", \"b\\u0000\"]".into()),
            ),
            ("chosen_option", FieldValue::Str("a".into())),
            ("rationale", FieldValue::Str("because\0".into())),
            ("weight", FieldValue::F64(0.1)),
        ];
        let mut rows = HashMap::new();
        let mut ops = Vec::new();
        for (id, t) in [
            (
                session.clone(),
                tracked(
                    Kind::Session,
                    session.clone(),
                    None,
                    None,
                    session_fields,
                    true,
                ),
            ),
            (
                step.clone(),
                tracked(
                    Kind::Step,
                    step.clone(),
                    Some(&session),
                    None,
                    step_fields,
                    true,
                ),
            ),
            (
                nested.clone(),
                tracked(
                    Kind::Step,
                    nested.clone(),
                    Some(&session),
                    Some(&step),
                    hostile(),
                    false,
                ),
            ),
            (
                decision.clone(),
                tracked(
                    Kind::Decision,
                    decision.clone(),
                    Some(&nested),
                    None,
                    decision_fields,
                    true,
                ),
            ),
        ] {
            ops.push(Op::Insert(id.clone()));
            rows.insert(id, t);
        }
        ops.push(Op::Decided(Decided {
            id: AuditId::generate(at),
            step: step.clone(),
            at,
            fields: hostile(),
        }));
        (rows, ops)
    }

    fn identity() -> Identity {
        Identity {
            pid: 4242,
            host: "höst\0".into(),
        }
    }

    /// Every row of the three tables, read back through the image lists, as leaves.
    fn stored_leaves(client: &mut postgres::Client) -> Vec<(String, String, chain::Hash)> {
        let mut stored = Vec::new();
        for (spec, list) in &super::super::images::CHAINED[..3] {
            let sql = format!("SELECT {list} FROM {} t", spec.name);
            for row in client.query(&sql, &[]).expect(&sql) {
                let leaf = super::super::images::leaf(spec, &row);
                stored.push((leaf.table.to_owned(), leaf.row_id, leaf.hash));
            }
        }
        stored.sort();
        stored
    }

    /// Against a real server: the leaves hashed from what COPY sent are the leaves of the
    /// rows as stored — what `verify` will compute — for hostile text, numbers and JSON.
    #[test]
    fn copied_rows_hash_as_the_store_gives_them_back() {
        let Some(db) = super::super::test_server::TestDatabase::create("copy leaves") else {
            return;
        };
        let mut writing = super::super::connection::Writing::new(db.migrated());
        assert!(writing.stores_as_sent().unwrap());
        let (mut rows, ops) = batch();
        let plan =
            NewRows::plan(&mut rows, &ops, &HashSet::new()).expect("every row has a COPY form");
        let mut tx = writing.begin().unwrap();
        let Copied::Rows(leaves) = plan.write(&mut tx, &rows, &ops, true, &identity()).unwrap()
        else {
            panic!("a row had no COPY form");
        };
        tx.commit().unwrap();
        let mut sent: Vec<_> = leaves
            .into_iter()
            .map(|l| (l.table.to_owned(), l.row_id, l.hash))
            .collect();
        sent.sort();
        assert_eq!(sent.len(), 5);
        assert_eq!(sent, stored_leaves(&mut db.client()));
    }

    /// Against a real server: a database in another encoding than UTF8 converts text on
    /// the way in, so the writer does not COPY into it; a UTF8 one it does.
    #[test]
    fn only_a_utf8_database_is_written_by_copy() {
        use super::super::test_server::TestDatabase;
        let Some(latin1) = TestDatabase::create_encoded("copy latin1", "LATIN1") else {
            return;
        };
        let mut writing = super::super::connection::Writing::new(latin1.migrated());
        assert!(!writing.stores_as_sent().unwrap());
        let utf8 = TestDatabase::create("copy utf8").unwrap();
        let mut writing = super::super::connection::Writing::new(utf8.migrated());
        assert!(writing.stores_as_sent().unwrap());
    }

    /// A row without a COPY form abandons the COPY half-way; the transaction rolls back,
    /// and the connection goes on. A step whose session is not known to be stored is left
    /// to the statements; one the store refuses fails the COPY with the error the writer
    /// falls back to the statements on.
    #[test]
    fn an_abandoned_or_refused_copy_leaves_nothing_and_the_connection_goes_on() {
        let Some(db) = super::super::test_server::TestDatabase::create("copy abandoned") else {
            return;
        };
        let mut writing = super::super::connection::Writing::new(db.migrated());
        let (mut rows, ops) = batch();
        // Two keys the replacement of U+0000 makes one: no certain normal form. Sessions
        // go first, so this abandons the COPY of the steps with the session's done.
        let step = match &ops[1] {
            Op::Insert(id) => id.clone(),
            _ => unreachable!(),
        };
        let fields = &mut rows.get_mut(&step).unwrap().row.opened.fields;
        fields.push(("k\0", FieldValue::I64(1)));
        fields.push(("k\u{FFFD}", FieldValue::I64(2)));
        let plan = NewRows::plan(&mut rows, &ops, &HashSet::new()).unwrap();
        let mut tx = writing.begin().unwrap();
        let copied = plan
            .write(&mut tx, &rows, &ops, false, &identity())
            .unwrap();
        assert!(matches!(copied, Copied::NoCopyForm));
        tx.rollback().unwrap();
        let mut client = db.client();
        assert!(stored_leaves(&mut client).is_empty());

        // A step whose session the writer does not know to be in the store: not planned.
        let (mut rows, mut ops) = batch();
        let session = match ops.remove(0) {
            Op::Insert(id) => id,
            _ => unreachable!(),
        };
        assert!(NewRows::plan(&mut rows, &ops, &HashSet::new()).is_none());
        // One the writer believes committed, which is not there: the COPY fails.
        rows.get_mut(&session).unwrap().committed = true;
        let plan = NewRows::plan(&mut rows, &ops, &HashSet::new()).unwrap();
        let mut tx = writing.begin().unwrap();
        let error = match plan.write(&mut tx, &rows, &ops, false, &identity()) {
            Err(error) => error,
            Ok(_) => panic!("a step without its session was stored"),
        };
        assert_eq!(
            error.code(),
            Some(&SqlState::FOREIGN_KEY_VIOLATION),
            "{error}"
        );
        drop(tx);
        assert!(!writing.is_closed());
        assert!(stored_leaves(&mut client).is_empty());
        // And the connection writes the next batch.
        let (mut rows, ops) = batch();
        let plan = NewRows::plan(&mut rows, &ops, &HashSet::new()).unwrap();
        let mut tx = writing.begin().unwrap();
        assert!(matches!(
            plan.write(&mut tx, &rows, &ops, false, &identity())
                .unwrap(),
            Copied::Rows(_)
        ));
        tx.commit().unwrap();
        assert_eq!(stored_leaves(&mut client).len(), 5);
    }
}
