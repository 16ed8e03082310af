//! Steps find their session, and decisions their step, wherever they run: through
//! unrelated spans, on other threads, in futures, in parallel sessions, and with several
//! independent subscribers in one process.

mod common;

use std::thread;

use common::Audit;
use tracing::instrument::WithSubscriber;
use tracing::{Instrument, info_span};
use tracing_subscriber::prelude::*;

#[test]
fn steps_find_their_session_through_unrelated_spans() {
    let audit = Audit::new();
    audit.run(|| {
        info_span!("session", id = "s").in_scope(|| {
            info_span!("http_request").in_scope(|| {
                info_span!("retry_loop", attempt = 1).in_scope(|| {
                    info_span!("step", module = "outer").in_scope(|| {
                        info_span!("cache_lookup").in_scope(|| {
                            info_span!("step", module = "inner").in_scope(|| {
                                info_span!("serialize").in_scope(|| {
                                    tracing::info!(name: "decision", decision_type = "deep");
                                });
                            });
                        });
                    });
                });
            });
        });
    });
    let rows = audit.rows(
        "SELECT s.module, s.session_id, coalesce(p.module, 'NULL') FROM steps s
         LEFT JOIN steps p ON p.id = s.parent_step_id ORDER BY s.started_at",
    );
    assert_eq!(rows, [["outer", "s", "NULL"], ["inner", "s", "outer"]]);
    assert_eq!(
        audit.one("SELECT st.module FROM decisions d JOIN steps st ON st.id = d.step_id"),
        "inner"
    );
}

#[test]
fn steps_entered_on_other_threads_keep_their_session() {
    let audit = Audit::new();
    audit.run(|| {
        info_span!("session", id = "threaded").in_scope(|| {
            let step = info_span!("step", module = "parent");
            let _entered = step.enter();
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    let current = tracing::Span::current();
                    let dispatch = tracing::dispatcher::get_default(Clone::clone);
                    thread::spawn(move || {
                        tracing::dispatcher::with_default(&dispatch, || {
                            let _e = current.enter();
                            info_span!("step", module = "worker", n = i).in_scope(|| {
                                tracing::info!(name: "decision", decision_type = "on_worker");
                            });
                        });
                    })
                })
                .collect();
            for handle in handles {
                handle.join().unwrap();
            }
        });
    });
    let rows = audit.rows(
        "SELECT s.session_id, p.module FROM steps s JOIN steps p ON p.id = s.parent_step_id
         WHERE s.module = 'worker'",
    );
    assert_eq!(rows.len(), 4);
    assert!(
        rows.iter().all(|r| r == &["threaded", "parent"]),
        "{rows:?}"
    );
    assert_eq!(
        audit.one(
            "SELECT count(*) FROM decisions d JOIN steps s ON s.id = d.step_id WHERE s.module = 'worker'"
        ),
        "4"
    );
}

#[test]
fn a_span_closed_on_another_thread_than_it_was_opened_on_is_recorded() {
    let audit = Audit::new();
    audit.run(|| {
        let session = info_span!("session", id = "moved");
        let step = info_span!(parent: &session, "step", module = "travels");
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        thread::spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                step.in_scope(|| {});
                drop(step);
                drop(session);
            })
        })
        .join()
        .unwrap();
    });
    assert_eq!(audit.one("SELECT status FROM sessions"), "completed");
    assert_eq!(
        audit.one("SELECT session_id || ' ' || (ended_at IS NOT NULL) FROM steps"),
        "moved 1"
    );
}

async fn reason_async(n: u32) {
    for i in 0..3 {
        async {
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        .instrument(info_span!("step", module = "async_step", n, i))
        .await;
    }
}

#[test]
fn futures_under_instrument_keep_their_session_across_tokio_workers() {
    let audit = Audit::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dispatch = audit.dispatch.clone();
    runtime.block_on(async move {
        let tasks: Vec<_> = (0..8)
            .map(|n| {
                // The session span is made inside the future, under the audit subscriber.
                let future = async move {
                    let session = info_span!("session", id = format!("async-{n}"));
                    reason_async(n).instrument(session).await
                }
                .with_subscriber(dispatch.clone());
                tokio::spawn(future)
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    audit.guard.flush().unwrap();
    let rows = audit.rows(
        "SELECT session_id, count(*), min(json_extract(attributes, '$.n')), max(json_extract(attributes, '$.n'))
         FROM steps GROUP BY session_id ORDER BY session_id",
    );
    assert_eq!(rows.len(), 8);
    for (n, row) in rows.iter().enumerate() {
        let n = n.to_string();
        assert_eq!(
            row,
            &[format!("async-{n}"), "3".into(), n.clone(), n.clone()]
        );
    }
}

#[test]
fn two_sessions_in_parallel_threads_keep_their_steps_apart() {
    let audit = Audit::new();
    let handles: Vec<_> = ["alpha", "beta"]
        .into_iter()
        .map(|name| {
            let dispatch = audit.dispatch.clone();
            thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    info_span!("session", id = name, profile = name).in_scope(|| {
                        for i in 0..200 {
                            info_span!("step", module = name, i).in_scope(|| {
                                tracing::info!(name: "decision", decision_type = name);
                            });
                        }
                    });
                })
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    audit.guard.flush().unwrap();
    let rows = audit.rows(
        "SELECT s.session_id, s.module, count(*), count(DISTINCT d.decision_type) FROM steps s
         JOIN decisions d ON d.step_id = s.id GROUP BY s.session_id, s.module ORDER BY 1",
    );
    assert_eq!(
        rows,
        [["alpha", "alpha", "200", "1"], ["beta", "beta", "200", "1"]]
    );
    let mismatched = audit.one(
        "SELECT count(*) FROM decisions d JOIN steps s ON s.id = d.step_id WHERE d.decision_type != s.session_id",
    );
    assert_eq!(mismatched, "0");
}

#[test]
fn current_session_id_names_the_session_a_span_belongs_to() {
    let audit = Audit::new();
    let seen = audit.run(|| {
        let outside = reasonkit_audit::current_session_id();
        let inside = info_span!("session").in_scope(|| {
            info_span!("unrelated").in_scope(|| {
                info_span!("step", module = "m").in_scope(reasonkit_audit::current_session_id)
            })
        });
        (outside, inside)
    });
    assert_eq!(seen.0, None);
    assert_eq!(seen.1.unwrap(), audit.one("SELECT id FROM sessions"));
}

#[test]
fn independent_layers_in_one_process_each_write_their_own_file() {
    let first = Audit::new();
    let second = Audit::new();
    // set_default, with_default, and a Dispatch used directly, side by side.
    let third_path = first.dir.path().join("third.db");
    let (third, third_guard) = reasonkit_audit::AuditLayer::builder()
        .path(&third_path)
        .build()
        .unwrap();
    let default = tracing::subscriber::set_default(tracing_subscriber::registry().with(third));
    info_span!("session", id = "third").in_scope(|| {});
    drop(default);
    third_guard.flush().unwrap();
    assert_eq!(
        common::rows(&third_path, "SELECT id FROM sessions"),
        [["third"]]
    );
    first.run(|| info_span!("session", id = "first").in_scope(|| {}));
    second.run(|| info_span!("session", id = "second").in_scope(|| {}));
    tracing::dispatcher::with_default(&first.dispatch, || {
        tracing::dispatcher::with_default(&second.dispatch, || {
            info_span!("session", id = "inner-second").in_scope(|| {});
        });
        info_span!("session", id = "outer-first").in_scope(|| {});
    });
    first.guard.flush().unwrap();
    second.guard.flush().unwrap();
    assert_eq!(
        first.rows("SELECT id FROM sessions ORDER BY started_at"),
        [["first"], ["outer-first"]]
    );
    assert_eq!(
        second.rows("SELECT id FROM sessions ORDER BY started_at"),
        [["second"], ["inner-second"]]
    );
}

#[test]
fn two_audit_layers_stacked_on_one_registry_both_record_every_span() {
    let dir = tempfile::tempdir().unwrap();
    let (a, guard_a) = reasonkit_audit::AuditLayer::builder()
        .path(dir.path().join("a.db"))
        .build()
        .unwrap();
    let (b, guard_b) = reasonkit_audit::AuditLayer::builder()
        .path(dir.path().join("b.db"))
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(a).with(b);
    tracing::subscriber::with_default(subscriber, || {
        info_span!("session", id = "both").in_scope(|| {
            info_span!("step", module = "m").in_scope(|| {});
        });
    });
    guard_a.flush().unwrap();
    guard_b.flush().unwrap();
    for file in ["a.db", "b.db"] {
        let rows = common::rows(
            &dir.path().join(file),
            "SELECT s.id, s.status, st.module FROM sessions s JOIN steps st ON st.session_id = s.id",
        );
        assert_eq!(rows, [["both", "completed", "m"]], "{file}");
    }
}

/// One action of a script: open a span (a `step` the layer records, or one it ignores),
/// or close one of the spans still open, picked by an index.
#[derive(Clone, Debug)]
enum Action {
    Open { audited: bool },
    Close(usize),
}

fn scripts() -> impl proptest::strategy::Strategy<Value = Vec<Action>> {
    use proptest::prelude::*;
    let action = prop_oneof![
        any::<bool>().prop_map(|audited| Action::Open { audited }),
        any::<usize>().prop_map(Action::Close),
    ];
    proptest::collection::vec(action, 1..300)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 32, ..Default::default() })]

    /// The layer decides an unrelated span's close without looking it up (a counting
    /// filter over span ids): whatever the order spans of both kinds open and close in,
    /// and however their ids are reused, every step is recorded closed, once, and nothing
    /// else is recorded.
    #[test]
    fn steps_and_unrelated_spans_closing_in_any_order_are_each_recorded_once(
        script in scripts()
    ) {
        let audit = Audit::new();
        let mut steps = 0;
        audit.run(|| {
            let session = info_span!("session", id = "filter");
            let _entered = session.enter();
            let mut open: Vec<tracing::Span> = Vec::new();
            for (n, action) in script.iter().enumerate() {
                match action {
                    Action::Open { audited: true } => {
                        steps += 1;
                        open.push(info_span!("step", module = "m", n = n as u64));
                    }
                    Action::Open { audited: false } => {
                        open.push(info_span!("http_request", n = n as u64));
                    }
                    Action::Close(pick) if !open.is_empty() => {
                        let index = pick % open.len();
                        drop(open.swap_remove(index));
                    }
                    Action::Close(_) => {}
                }
            }
            // The rest close in reverse order of opening.
            while open.pop().is_some() {}
        });
        audit.guard.flush().unwrap();
        let rows = audit.rows(
            "SELECT count(*), count(ended_at), count(DISTINCT id), \
             count(*) FILTER (WHERE session_id = 'filter') FROM steps",
        );
        let expected = steps.to_string();
        proptest::prop_assert_eq!(
            &rows,
            &vec![vec![expected.clone(), expected.clone(), expected.clone(), expected]]
        );
        proptest::prop_assert_eq!(audit.one("SELECT count(*) FROM sessions"), "1");
    }
}
