//! WAL checkpoints on a thread of their own, so that the writer only appends.
//!
//! In WAL mode a commit appends pages to the `-wal` file; a checkpoint copies them back
//! into the database file. By default SQLite runs one inside the commit that takes the WAL
//! past 1,000 pages — on the writer's thread, which then does nothing else. Profiled on
//! realistic records, that was about a tenth of the writer's time.
//!
//! Here the writer's connection has a WAL hook of ours in place of SQLite's: past the same
//! 1,000 pages it asks this thread, which runs a PASSIVE checkpoint on a connection of its
//! own (at most one per [`INTERVAL`]) on the other core, while the writer goes on
//! appending — SQLite lets a checkpoint and a writer run at once. Below 1,000 pages nothing
//! changes: a few commits stay in the WAL, as before. Durability is unchanged: a commit is
//! in the WAL before the writer answers; a checkpoint only moves committed pages.
//!
//! The WAL stays bounded. When a writer begins and the checkpoint has caught up, SQLite
//! starts the WAL again from its beginning; a writer that never pauses appends while each
//! checkpoint runs, so that moment may not come. Past [`MAX_WAL_FRAMES`] the writer
//! checkpoints once itself, inside the commit as SQLite would: little is left to copy by
//! then, and its next transaction starts the WAL again. Checkpoints take turns (a lock of
//! ours): a PASSIVE checkpoint that finds another running gives up at once, so without
//! turns a writer on a busy machine kept failing against the thread's checkpoints and the
//! WAL grew past the bound. The writer waits for at most the one checkpoint the thread is
//! running, never for a reader (PASSIVE does not wait for readers). A thread that cannot
//! start leaves the writer checkpointing as SQLite does by default.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rusqlite::{Connection, OpenFlags};

/// SQLite's own threshold (`wal_autocheckpoint`): a checkpoint is due past this many pages.
const DUE_FRAMES: i32 = 1_000;

/// Past this many pages in the WAL (16 MiB with 4 KiB pages), the writer checkpoints
/// itself: the WAL never grows without bound.
const MAX_WAL_FRAMES: i32 = 4_096;

/// At most one checkpoint of the thread's in this long: a WAL that has not started again
/// asks after every commit.
const INTERVAL: Duration = Duration::from_millis(20);

/// What the thread is told.
enum Message {
    /// The WAL is past [`DUE_FRAMES`].
    Due,
    /// The writer is closing.
    Stop,
}

/// The thread that checkpoints the writer's database.
pub(crate) struct Checkpointer {
    messages: Sender<Message>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread for the database at `path`, and puts the hook that asks it on
    /// `writer` (in place of SQLite's own checkpoints). `None`, the writer keeping SQLite's,
    /// if either cannot be done.
    pub(crate) fn start(
        path: &Path,
        writer: &mut Connection,
        busy_timeout: Duration,
    ) -> Option<Checkpointer> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).ok()?;
        conn.busy_timeout(busy_timeout).ok()?;
        // Room for a `Due` and the `Stop` behind it.
        let (messages, inbox) = crossbeam_channel::bounded(2);
        // Whose turn it is to checkpoint: the thread's, or the writer's past the bound.
        let turn = Arc::new(Mutex::new(()));
        let thread_turn = turn.clone();
        let thread = std::thread::Builder::new()
            .name("reasonkit-audit-checkpoint".into())
            .spawn(move || run(&conn, &inbox, &thread_turn))
            .ok()?;
        let due = messages.clone();
        let hooked = writer.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages| {
            if pages >= MAX_WAL_FRAMES {
                // After the thread's checkpoint, if one is running. A failure leaves the
                // pages for the next commit's checkpoint.
                let _turn = take_turn(&turn);
                let _ = wal.checkpoint();
            } else if pages >= DUE_FRAMES {
                // Full: one is waiting already, and it takes every page committed before.
                let _ = due.try_send(Message::Due);
            }
            Ok(())
        }));
        let checkpointer = Checkpointer {
            messages,
            thread: Some(thread),
        };
        // Dropped, it stops the thread; the writer keeps SQLite's own checkpoints.
        hooked.ok().map(|()| checkpointer)
    }
}

impl Drop for Checkpointer {
    /// Stops the thread and closes its connection, so that the writer's connection, closed
    /// after it, is the last one and folds the WAL into the database as SQLite does.
    fn drop(&mut self) {
        let _ = self.messages.send(Message::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Waits for the turn to checkpoint. The lock guards no data, so one left poisoned by a
/// panic is taken all the same.
fn take_turn(turn: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    turn.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Checkpoints when asked, at most once per [`INTERVAL`], until told to stop.
fn run(conn: &Connection, inbox: &Receiver<Message>, turn: &Mutex<()>) {
    let mut last: Option<Instant> = None;
    while let Ok(Message::Due) = inbox.recv() {
        if let Some(wait) = last.and_then(|at| INTERVAL.checked_sub(at.elapsed())) {
            std::thread::sleep(wait);
        }
        last = Some(Instant::now());
        // An error (the disk, a lock held past the busy timeout) leaves the pages in the
        // WAL for the next checkpoint.
        let _turn = take_turn(turn);
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        let _: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .unwrap();
        conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
        conn.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        conn
    }

    fn size(path: &Path) -> u64 {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }

    #[test]
    fn past_a_thousand_pages_the_thread_moves_them_into_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let mut conn = writer(&path);
        let checkpointer = Checkpointer::start(&path, &mut conn, Duration::from_secs(1)).unwrap();
        // One transaction of about 1,200 pages; then the writer does nothing more.
        let tx = conn.transaction().unwrap();
        for _ in 0..1_200 {
            tx.execute("INSERT INTO t VALUES (zeroblob(4000))", [])
                .unwrap();
        }
        tx.commit().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while size(&path) < 1_000 * 4_096 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            size(&path) >= 1_000 * 4_096,
            "the thread checkpointed the WAL into the file: {} bytes",
            size(&path)
        );
        drop(checkpointer);
        drop(conn);
        // The writer's connection closed last and folded the WAL in.
        assert!(!dir.path().join("audit.db-wal").exists());
    }

    #[test]
    fn a_writer_that_never_pauses_still_keeps_the_wal_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let wal = dir.path().join("audit.db-wal");
        let mut conn = writer(&path);
        let _checkpointer = Checkpointer::start(&path, &mut conn, Duration::from_secs(1)).unwrap();
        // About 100 MB through the WAL, a page or two a commit, without a pause.
        let mut largest = 0;
        for _ in 0..25_000 {
            conn.execute("INSERT INTO t VALUES (zeroblob(4000))", [])
                .unwrap();
            largest = largest.max(size(&wal));
        }
        // MAX_WAL_FRAMES pages of 4 KiB and their headers, and the few of the commit that
        // crossed it: the writer's checkpoint waits its turn and then always completes, so
        // the bound holds however busy the machine is. (Without turns it failed against
        // the thread's checkpoints on a loaded machine and the WAL passed 37 MB.)
        assert!(
            largest <= (MAX_WAL_FRAMES as u64 + 64) * 4_120 + 32,
            "the WAL grew to {largest} bytes"
        );
    }
}
