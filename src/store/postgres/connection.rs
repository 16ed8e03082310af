//! A writing connection: the client, and the statements prepared on it.
//!
//! Each statement of a batch has the same text every time (its values travel as arrays),
//! so it is prepared once per connection and then only bound and executed: one round trip
//! per statement instead of two, and no parse and plan on the server. A lost connection
//! takes its statements with it (the writer connects anew), and a statement the server
//! refuses (a plan invalidated by a schema change) makes every one be prepared again.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};

use postgres::types::ToSql;
use postgres::{Client, Row, SimpleQueryMessage, Statement};

/// What a statement against the store gives: the server's error as the client reports it.
pub(crate) type PgResult<T> = Result<T, postgres::Error>;

/// A connection the layer writes through, with its prepared statements.
pub(crate) struct Writing {
    client: Client,
    prepared: HashMap<String, Statement>,
    /// The database stores text as the client sends it (its encoding is UTF8), once known.
    stores_as_sent: Option<bool>,
}

impl Writing {
    pub(crate) fn new(client: Client) -> Writing {
        Writing {
            client,
            prepared: HashMap::new(),
            stores_as_sent: None,
        }
    }

    /// Whether the database keeps text exactly as this UTF-8 client sends it: its encoding
    /// is UTF8. Any other encoding converts text on the way in (or refuses it), so what the
    /// server stores can only be learnt by reading it back. Asked once per connection.
    pub(crate) fn stores_as_sent(&mut self) -> PgResult<bool> {
        if let Some(known) = self.stores_as_sent {
            return Ok(known);
        }
        let encoding: String = self
            .client
            .query_one("SELECT current_setting('server_encoding')", &[])?
            .try_get(0)?;
        let known = encoding.eq_ignore_ascii_case("UTF8");
        self.stores_as_sent = Some(known);
        Ok(known)
    }

    /// The server closed it, or it broke.
    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The client itself, for work outside a batch (migrations, marking).
    pub(crate) fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Forgets every prepared statement (after an error, which may have been a plan the
    /// server no longer accepts); each is prepared again when next used.
    pub(crate) fn forget_prepared(&mut self) {
        self.prepared.clear();
    }

    /// Begins a write transaction with PostgreSQL's JIT compiler off for its length, in
    /// one round trip.
    ///
    /// The set-based statements over a batch's arrays are estimated dear enough to cross
    /// `jit_above_cost`, and JIT compiles each execution afresh: measured on PostgreSQL 15,
    /// LLVM took 42% of the server's CPU time for the layer's batches, far more than the
    /// statements gain from it. `SET LOCAL` ends with the transaction, so it holds behind a
    /// transaction-pooling proxy too, and never touches the session's settings.
    pub(crate) fn begin(&mut self) -> PgResult<Tx<'_>> {
        self.begin_with("")?;
        Ok(self.tx())
    }

    /// Begins a batch's transaction and records the batch in `audit_batches`, in one round
    /// trip; `true` if this is the first time the batch is recorded (an earlier attempt
    /// whose COMMIT answer was lost has recorded it already).
    pub(crate) fn begin_batch(&mut self, writer_id: &str, number: i64) -> PgResult<(Tx<'_>, bool)> {
        // The writer's id is a UUID this crate made; quoted all the same.
        let record = format!(
            "INSERT INTO audit_batches (writer_id, batch) VALUES ('{}', {number}) \
             ON CONFLICT DO NOTHING RETURNING batch",
            writer_id.replace('\'', "''")
        );
        let messages = self.begin_with(&record)?;
        let first_time = messages
            .iter()
            .any(|m| matches!(m, SimpleQueryMessage::Row(_)));
        Ok((self.tx(), first_time))
    }

    /// `BEGIN`, `SET LOCAL jit = off` and `then`, as one simple query. On a failure the
    /// transaction, if it began, is rolled back before the error is returned.
    fn begin_with(&mut self, then: &str) -> PgResult<Vec<SimpleQueryMessage>> {
        let sql = format!("BEGIN; SET LOCAL jit = off; {then}");
        self.client.simple_query(&sql).inspect_err(|_| {
            let _ = self.client.batch_execute("ROLLBACK");
        })
    }

    fn tx(&mut self) -> Tx<'_> {
        Tx {
            client: &mut self.client,
            prepared: &mut self.prepared,
            open: true,
        }
    }
}

/// A transaction on a [`Writing`] connection, begun by [`Writing::begin`]: the client's
/// statements run inside it, and it is rolled back unless committed.
pub(crate) struct Tx<'a> {
    client: &'a mut Client,
    prepared: &'a mut HashMap<String, Statement>,
    open: bool,
}

impl Tx<'_> {
    /// Runs `sql`, prepared on this connection the first time.
    pub(crate) fn query_prepared(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> PgResult<Vec<Row>> {
        let statement = match self.prepared.get(sql) {
            Some(statement) => statement.clone(),
            None => {
                let statement = self.client.prepare(sql)?;
                self.prepared.insert(sql.to_owned(), statement.clone());
                statement
            }
        };
        self.client.query(&statement, params)
    }

    pub(crate) fn commit(mut self) -> PgResult<()> {
        self.open = false;
        self.client.batch_execute("COMMIT")
    }

    pub(crate) fn rollback(mut self) -> PgResult<()> {
        self.open = false;
        self.client.batch_execute("ROLLBACK")
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            // Nothing to do with an error here: a broken connection has no transaction left.
            let _ = self.client.batch_execute("ROLLBACK");
        }
    }
}

impl Deref for Tx<'_> {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.client
    }
}

impl DerefMut for Tx<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client
    }
}
