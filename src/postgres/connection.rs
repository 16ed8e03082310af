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
use postgres::{Client, Row, Statement, Transaction};

use super::statements::PgResult;

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

    /// Begins a write transaction with PostgreSQL's JIT compiler off for its length.
    ///
    /// The set-based statements over a batch's arrays are estimated dear enough to cross
    /// `jit_above_cost`, and JIT compiles each execution afresh: measured on PostgreSQL 15,
    /// LLVM took 42% of the server's CPU time for the layer's batches, far more than the
    /// statements gain from it. `SET LOCAL` ends with the transaction, so it holds behind a
    /// transaction-pooling proxy too, and never touches the session's settings.
    pub(crate) fn begin(&mut self) -> PgResult<Tx<'_>> {
        let mut tx = self.client.transaction()?;
        tx.batch_execute("SET LOCAL jit = off")?;
        Ok(Tx {
            tx,
            prepared: &mut self.prepared,
        })
    }
}

/// A transaction on a [`Writing`] connection; everything else a transaction does, it does.
pub(crate) struct Tx<'a> {
    tx: Transaction<'a>,
    prepared: &'a mut HashMap<String, Statement>,
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
                let statement = self.tx.prepare(sql)?;
                self.prepared.insert(sql.to_owned(), statement.clone());
                statement
            }
        };
        self.tx.query(&statement, params)
    }

    pub(crate) fn commit(self) -> PgResult<()> {
        self.tx.commit()
    }

    pub(crate) fn rollback(self) -> PgResult<()> {
        self.tx.rollback()
    }
}

impl<'a> Deref for Tx<'a> {
    type Target = Transaction<'a>;

    fn deref(&self) -> &Transaction<'a> {
        &self.tx
    }
}

impl<'a> DerefMut for Tx<'a> {
    fn deref_mut(&mut self) -> &mut Transaction<'a> {
        &mut self.tx
    }
}
