//! `search TEXT`: full-text search (FTS5) over step summaries and errors, and decision
//! options, choices and rationales.
//!
//! The writer indexes new rows in batches (see `search_index_state`), so the newest rows may
//! not be in the index yet: those past each table's mark are indexed here, into in-memory
//! TEMP tables with the same tokenizer, and searched with the same query. The database file
//! is never written: TEMP tables live in this connection's memory.

use rusqlite::Connection;
use serde_json::Value;

use crate::db::{Db, Param, Query};
use crate::output::{self, Cell};
use crate::{Failure, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Words to find (all of them, in any order; a quoted phrase for an exact sequence)
    text: String,
    /// At most this many matches
    #[arg(short = 'n', long, default_value_t = 20)]
    limit: u32,
    /// JSON instead of a table
    #[arg(long)]
    json: bool,
}

const QUERY: &str = "
    SELECT * FROM (
        SELECT 'step' AS kind, st.session_id, st.id AS step_id, st.module, st.started_at AS at,
               snippet(steps_fts, -1, '[', ']', '…', 12) AS snippet, bm25(steps_fts) AS rank
        FROM steps_fts JOIN steps st ON st.rowid = steps_fts.rowid
        WHERE steps_fts MATCH ?1
        UNION ALL
        SELECT 'step', st.session_id, st.id, st.module, st.started_at,
               snippet(tail_steps_fts, -1, '[', ']', '…', 12), bm25(tail_steps_fts)
        FROM temp.tail_steps_fts JOIN steps st ON st.rowid = tail_steps_fts.rowid
        WHERE tail_steps_fts MATCH ?1
        UNION ALL
        SELECT 'decision', st.session_id, d.step_id, st.module, coalesce(d.decided_at, st.started_at),
               snippet(decisions_fts, -1, '[', ']', '…', 12), bm25(decisions_fts)
        FROM decisions_fts JOIN decisions d ON d.rowid = decisions_fts.rowid
        JOIN steps st ON st.id = d.step_id
        WHERE decisions_fts MATCH ?1
        UNION ALL
        SELECT 'decision', st.session_id, d.step_id, st.module, coalesce(d.decided_at, st.started_at),
               snippet(tail_decisions_fts, -1, '[', ']', '…', 12), bm25(tail_decisions_fts)
        FROM temp.tail_decisions_fts JOIN decisions d ON d.rowid = tail_decisions_fts.rowid
        JOIN steps st ON st.id = d.step_id
        WHERE tail_decisions_fts MATCH ?1
    ) ORDER BY rank, at DESC LIMIT ?2";

/// The rows past the index's marks, indexed in memory with the same tokenizer as the file's
/// index (migration 0004), all in one read transaction with the query that follows.
const TAIL: &str = "
    CREATE VIRTUAL TABLE temp.tail_steps_fts USING fts5(
        input_summary, output_summary, error, tokenize = 'unicode61 remove_diacritics 2');
    CREATE VIRTUAL TABLE temp.tail_decisions_fts USING fts5(
        options_considered, chosen_option, rationale, tokenize = 'unicode61 remove_diacritics 2');
    INSERT INTO temp.tail_steps_fts (rowid, input_summary, output_summary, error)
        SELECT rowid, input_summary, output_summary, error FROM steps
        WHERE rowid > (SELECT indexed_rowid FROM search_index_state WHERE name = 'steps')
          AND (input_summary IS NOT NULL OR output_summary IS NOT NULL OR error IS NOT NULL);
    INSERT INTO temp.tail_decisions_fts (rowid, options_considered, chosen_option, rationale)
        SELECT rowid, options_considered, chosen_option, rationale FROM decisions
        WHERE rowid > (SELECT indexed_rowid FROM search_index_state WHERE name = 'decisions')
          AND (options_considered IS NOT NULL OR chosen_option IS NOT NULL OR rationale IS NOT NULL);";

/// The user's words and "quoted phrases", each of which must appear.
fn terms(text: &str) -> Vec<String> {
    let mut terms = Vec::new();
    for (index, part) in text.split('"').enumerate() {
        if index % 2 == 1 {
            if !part.trim().is_empty() {
                terms.push(part.trim().to_owned());
            }
        } else {
            terms.extend(part.split_whitespace().map(str::to_owned));
        }
    }
    terms
}

/// The user's words as an FTS5 query: each word (or "quoted phrase") must appear; nothing
/// the user types is taken as FTS5 syntax.
pub fn fts_query(text: &str) -> String {
    terms(text)
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The same words and phrases in a PostgreSQL store: each term a `phraseto_tsquery` (so
/// nothing typed is query syntax) over the same columns, ranked by `ts_rank`, snippets by
/// `ts_headline`. Rows `reasonkit-audit index` has indexed are found through `search_terms`
/// and its GIN index; the rows of the chain's entries past the index's mark (the tail) are
/// read and matched here. One statement, so one snapshot: a row indexed meanwhile is
/// neither lost nor found twice.
fn postgres_query(terms: usize, has_index: bool) -> String {
    use reasonkit_audit::postgres::search::{DECISION_TEXT, SEARCH_TAIL, STEP_TEXT};
    let query = (1..=terms)
        .map(|i| format!("phraseto_tsquery('simple', ${i}::text)"))
        .collect::<Vec<_>>()
        .join(" && ");
    let limit = terms + 1;
    let headline =
        "'StartSel=[, StopSel=], MaxFragments=1, MaxWords=12, MinWords=4, FragmentDelimiter=…'";
    let step = |rank: &str, from: &str, matched: &str| {
        format!(
            "SELECT 'step' AS kind, st.session_id, st.id AS step_id, st.module, {at} AS at,
                    ts_headline('simple', {STEP_TEXT}, q, {headline}) AS snippet,
                    (-ts_rank({rank}, q))::float8 AS rank
             FROM wanted, {from} WHERE {matched}",
            at = crate::utc!("st.started_at"),
        )
    };
    let decision = |rank: &str, from: &str, matched: &str| {
        format!(
            "SELECT 'decision', st.session_id, d.step_id, st.module, {at},
                    ts_headline('simple', {DECISION_TEXT}, q, {headline}),
                    (-ts_rank({rank}, q))::float8
             FROM wanted, {from}
             JOIN steps st ON st.session_id = d.session_id AND st.id = d.step_id
             WHERE {matched}",
            at = crate::utc!("coalesce(d.decided_at, st.started_at)"),
        )
    };
    let indexed = |table: &str| {
        format!(
            "i.table_name = '{table}' AND i.terms @@ q AND NOT EXISTS \
             (SELECT 1 FROM tail WHERE tail.table_name = '{table}' AND tail.row_id = i.row_id)"
        )
    };
    // With nothing indexed (the mark at 0) every row is the tail: scanned as it is, rather
    // than looked up one by one through the chain.
    let read = |table: &str, id: &str, text: &str| {
        format!(
            "((SELECT value FROM audit_meta WHERE key = 'search_indexed') = '0' \
              OR {id} IN (SELECT row_id FROM tail WHERE table_name = '{table}')) \
             AND to_tsvector('simple', {text}) @@ q"
        )
    };
    let step_text = format!("to_tsvector('simple', {STEP_TEXT})");
    let decision_text = format!("to_tsvector('simple', {DECISION_TEXT})");
    if !has_index {
        // A store of schema 2, which has no index yet: every row is read.
        return format!(
            "WITH wanted AS (SELECT {query} AS q)
             SELECT kind, session_id, step_id, module, at, snippet, rank FROM ({} UNION ALL {})
             AS found ORDER BY rank, at DESC LIMIT ${limit}::bigint",
            step(&step_text, "steps st", &format!("{step_text} @@ q")),
            decision(
                &decision_text,
                "decisions d",
                &format!("{decision_text} @@ q")
            ),
        );
    }
    format!(
        "WITH tail AS ({SEARCH_TAIL}), wanted AS (SELECT {query} AS q)
         SELECT kind, session_id, step_id, module, at, snippet, rank FROM (
            {} UNION ALL {} UNION ALL {} UNION ALL {}
         ) AS found ORDER BY rank, at DESC LIMIT ${limit}::bigint",
        step(
            "i.terms",
            "search_terms i JOIN steps st ON st.session_id = i.session_id AND st.id = i.row_id",
            &indexed("steps"),
        ),
        step(&step_text, "steps st", &read("steps", "st.id", STEP_TEXT)),
        decision(
            "i.terms",
            "search_terms i JOIN decisions d ON d.session_id = i.session_id AND d.id = i.row_id",
            &indexed("decisions"),
        ),
        decision(
            &decision_text,
            "decisions d",
            &read("decisions", "d.id", DECISION_TEXT)
        ),
    )
}

pub fn run(db: &Db, args: &Args) -> Result<Outcome, Failure> {
    let rows = match db {
        Db::Sqlite(conn) => sqlite_rows(conn, args)?,
        Db::Postgres(client) => {
            let terms = terms(&args.text);
            if terms.is_empty() {
                return Err("search needs at least one word".into());
            }
            let has_index: bool = client
                .borrow_mut()
                .query_one("SELECT to_regclass('search_terms') IS NOT NULL", &[])?
                .get(0);
            let sql = postgres_query(terms.len(), has_index);
            let mut params: Vec<Param> = terms.into_iter().map(|t| Param::Text(Some(t))).collect();
            params.push(Param::Int(i64::from(args.limit)));
            let query = Query {
                sqlite: "",
                postgres: &sql,
            };
            db.rows(&query, &params)?
        }
    };
    show(&rows, args)
}

fn sqlite_rows(
    conn: &Connection,
    args: &Args,
) -> Result<Vec<serde_json::Map<String, Value>>, Failure> {
    let query = fts_query(&args.text);
    if query.is_empty() {
        return Err("search needs at least one word".into());
    }
    // One snapshot for the tail and the query: a row indexed meanwhile is neither lost nor
    // found twice.
    conn.execute_batch("BEGIN")?;
    conn.execute_batch(TAIL)?;
    let rows: Vec<serde_json::Map<String, Value>> = conn
        .prepare(QUERY)?
        .query_map((&query, args.limit), output::row_object)?
        .collect::<Result<_, _>>()?;
    conn.execute_batch("COMMIT")?;
    Ok(rows)
}

fn show(rows: &[serde_json::Map<String, Value>], args: &Args) -> Result<Outcome, Failure> {
    output::emit(rows, args.json, |rows| {
        let mut table = output::table(&["session", "kind", "module", "match"]);
        for row in rows {
            let text = |k: &str| row[k].as_str().unwrap_or_default().to_owned();
            table.add_row(vec![
                Cell::new(text("session_id")),
                Cell::new(text("kind")),
                Cell::new(text("module")),
                Cell::new(text("snippet").replace('\n', " ")),
            ]);
        }
        table
    })
}

#[cfg(test)]
mod tests {
    use super::fts_query;

    #[test]
    fn words_and_phrases_are_quoted_so_user_text_is_never_fts_syntax() {
        assert_eq!(fts_query("revenue filing"), r#""revenue" "filing""#);
        assert_eq!(
            fts_query(r#"exceeds "annual total" NOT"#),
            r#""exceeds" "annual total" "NOT""#
        );
        assert_eq!(fts_query("don't: (x) *"), r#""don't:" "(x)" "*""#);
        assert_eq!(fts_query("   "), "");
    }
}
