//! Full-text search over what the steps and decisions said: step summaries and errors,
//! decision options, choices and rationales — [`Reader::search`], the `search` command.
//!
//! The user's words and "quoted phrases" must all appear; nothing typed is query syntax.
//! Both stores index in bulk, apart from the writes, so the newest rows may not be in the
//! index yet; a search reads those itself, in the same snapshot, so a committed row is
//! found whatever the index has caught up with:
//! - a SQLite file: the rows past each table's mark (`search_index_state`) are indexed
//!   into in-memory TEMP tables with the same tokenizer and searched with the same query;
//!   the file is never written;
//! - PostgreSQL: the rows of the chain's entries past the index's mark are matched by
//!   `to_tsvector` as they are read (see `store::postgres::search`).

use super::reader::{Param, Query, Reader, Row, Store, real, text};
use super::{HitKind, SearchHit};
use crate::error::{Error, Result};

const SQLITE: &str = "
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
pub(crate) fn fts_query(text: &str) -> String {
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
#[cfg(feature = "postgres")]
fn postgres_query(terms: usize, has_index: bool) -> String {
    use super::reader::pg_utc;
    use crate::store::postgres::search::{DECISION_TEXT, SEARCH_TAIL, STEP_TEXT};
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
            at = pg_utc!("st.started_at"),
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
            at = pg_utc!("coalesce(d.decided_at, st.started_at)"),
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

impl Reader {
    /// The steps and decisions whose text holds every word and "quoted phrase" of `text`,
    /// best first, at most `limit`; each with the session it belongs to and a snippet, the
    /// words found between `[` and `]`.
    ///
    /// ```
    /// # use tracing_subscriber::prelude::*;
    /// use reasonkit_audit::read::{HitKind, Reader};
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("audit.db");
    /// # let (audit, guard) = reasonkit_audit::AuditLayer::builder().path(&path).build()?;
    /// # tracing::subscriber::with_default(tracing_subscriber::registry().with(audit), || {
    /// #     let _s = tracing::info_span!("session", id = "claim-1432").entered();
    /// #     let _step = tracing::info_span!("step", module = "laserlogic").entered();
    /// #     tracing::info!(name: "decision", decision_type = "route",
    /// #         chosen_option = "escalate", rationale = "the amount exceeds the annual limit");
    /// # });
    /// # guard.flush()?;
    /// let hits = Reader::open(&path)?.search("\"annual limit\" exceeds", 20)?;
    /// assert_eq!(hits.len(), 1);
    /// assert_eq!(hits[0].kind, HitKind::Decision);
    /// assert_eq!(hits[0].session_id, "claim-1432");
    /// assert!(hits[0].snippet.contains("[annual limit]"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Request`] when `text` has no word; [`Error::Read`] when the store cannot
    /// be searched.
    pub fn search(&self, text: &str, limit: usize) -> Result<Vec<SearchHit>> {
        let words = terms(text);
        if words.is_empty() {
            return Err(Error::Request {
                message: "search needs at least one word".into(),
            });
        }
        let rows = match &self.store {
            Store::Sqlite(conn) => self.search_sqlite(conn, &fts_query(text), limit)?,
            #[cfg(feature = "postgres")]
            Store::Postgres(client) => self.search_postgres(client, words, limit)?,
        };
        rows.iter().map(|row| self.hit(row)).collect()
    }

    fn search_sqlite(
        &self,
        conn: &rusqlite::Connection,
        fts: &str,
        limit: usize,
    ) -> Result<Vec<Row>> {
        // One snapshot for the tail and the query: a row indexed meanwhile is neither lost
        // nor found twice. The TEMP tables go with the transaction, rolled back on drop.
        let tx = conn
            .unchecked_transaction()
            .map_err(|e| self.fail("starting a search", e))?;
        tx.execute_batch(TAIL)
            .map_err(|e| self.fail("reading the rows not indexed yet", e))?;
        let query = Query {
            sqlite: SQLITE,
            postgres: "",
        };
        let rows = self.rows(
            &query,
            &[Param::Text(Some(fts.to_owned())), Param::count(limit)],
        );
        drop(tx);
        rows
    }

    #[cfg(feature = "postgres")]
    fn search_postgres(
        &self,
        client: &std::cell::RefCell<::postgres::Client>,
        words: Vec<String>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        let has_index: bool = client
            .borrow_mut()
            .query_one("SELECT to_regclass('search_terms') IS NOT NULL", &[])
            .map(|row| row.get(0))
            .map_err(|e| self.fail("looking for the search index", e))?;
        let sql = postgres_query(words.len(), has_index);
        let mut params: Vec<Param> = words.into_iter().map(|t| Param::Text(Some(t))).collect();
        params.push(Param::count(limit));
        self.rows(
            &Query {
                sqlite: "",
                postgres: &sql,
            },
            &params,
        )
    }

    fn hit(&self, row: &Row) -> Result<SearchHit> {
        Ok(SearchHit {
            kind: if text(row, "kind").as_deref() == Some("decision") {
                HitKind::Decision
            } else {
                HitKind::Step
            },
            session_id: text(row, "session_id").unwrap_or_default(),
            step_id: text(row, "step_id").unwrap_or_default(),
            module: text(row, "module").unwrap_or_default(),
            at: self.time(row, "at")?.unwrap_or_default(),
            snippet: text(row, "snippet").unwrap_or_default(),
            rank: real(row, "rank").unwrap_or(0.0),
        })
    }
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
