//! Bad input is stored by a documented rule — never a panic, never a hang: huge values,
//! non-finite numbers, NUL bytes, quotes and SQL in values and in field names, non-ASCII
//! text, very deep nesting, spans outliving their session.

mod common;

use common::{Audit, assert_consistent};
use proptest::prelude::*;
use reasonkit_audit::TRUNCATION_MARKER;
use tracing::info_span;

#[test]
fn a_ten_megabyte_value_is_cut_at_the_limit_marked_and_counted() {
    let audit = Audit::new();
    let huge = "é".repeat(5 * 1024 * 1024); // 10 MiB of two-byte characters
    audit.run(|| {
        info_span!("session").in_scope(|| {
            info_span!("step", module = "m", input_summary = huge.as_str(), big = ?huge.len())
                .in_scope(|| {});
        })
    });
    let stored = audit.one("SELECT input_summary FROM steps");
    assert!(stored.ends_with(TRUNCATION_MARKER));
    let kept = stored.strip_suffix(TRUNCATION_MARKER).unwrap();
    assert_eq!(kept.len(), 64 * 1024);
    assert!(huge.starts_with(kept));
    assert_eq!(audit.guard.stats().truncated_fields, 1);
    assert_eq!(
        audit.one("SELECT sum(count) FROM audit_health WHERE kind = 'truncated_fields'"),
        "1"
    );
}

#[test]
fn the_field_size_limit_is_configurable() {
    let audit = Audit::with(|b| b.max_field_len(10));
    audit.run(|| info_span!("session", input = "0123456789abcdef", note = "short").in_scope(|| {}));
    assert_eq!(
        audit.one("SELECT json_extract(attributes, '$.note') FROM sessions"),
        "short"
    );
    assert_eq!(audit.guard.stats().truncated_fields, 1);
    // The hash is of what was kept, marker included: the record says it was cut.
    let expected = {
        use sha2::Digest;
        let kept = format!("0123456789{TRUNCATION_MARKER}");
        sha2::Sha256::digest(kept.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(audit.one("SELECT input_hash FROM sessions"), expected);
}

#[test]
fn non_finite_confidence_is_stored_by_rule() {
    let audit = Audit::new();
    audit.run(|| {
        info_span!("session").in_scope(|| {
            info_span!("step", module = "nan", confidence = f64::NAN).in_scope(|| {});
            info_span!("step", module = "inf", confidence = f64::INFINITY).in_scope(|| {});
            info_span!("step", module = "-inf", confidence = f64::NEG_INFINITY).in_scope(|| {});
        })
    });
    // NaN is not a number SQLite can store: NULL, and the value kept in attributes.
    assert_eq!(
        audit.rows("SELECT confidence, attributes FROM steps WHERE module = 'nan'"),
        [["NULL", r#"{"confidence":"NaN"}"#]]
    );
    let db = audit.db();
    let inf: f64 = db
        .query_row(
            "SELECT confidence FROM steps WHERE module = 'inf'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let neg: f64 = db
        .query_row(
            "SELECT confidence FROM steps WHERE module = '-inf'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!((inf, neg), (f64::INFINITY, f64::NEG_INFINITY));
}

#[test]
fn nul_bytes_quotes_and_sql_in_values_and_field_names_are_stored_verbatim() {
    let audit = Audit::new();
    let nasty = "a\0b'); DROP TABLE steps;-- \"quoted\" `tick` \\ \n\t 🦀 ümlaut 中文";
    audit.run(|| {
        info_span!("session", id = nasty, profile = nasty, input = nasty).in_scope(|| {
            info_span!(
                "step",
                module = nasty,
                input_summary = nasty,
                "'); DROP TABLE steps;--" = nasty,
                "weird \"name\"" = 1,
            )
            .in_scope(|| {
                tracing::info!(name: "decision", decision_type = nasty, chosen_option = nasty, rationale = nasty);
            });
        })
    });
    let db = audit.db();
    let (id, profile): (String, String) = db
        .query_row("SELECT id, profile FROM sessions", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((id.as_str(), profile.as_str()), (nasty, nasty));
    let (module, summary, attributes): (String, String, String) = db
        .query_row(
            "SELECT module, input_summary, attributes FROM steps",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((module.as_str(), summary.as_str()), (nasty, nasty));
    let attributes: serde_json::Value = serde_json::from_str(&attributes).unwrap();
    assert_eq!(attributes["'); DROP TABLE steps;--"], nasty);
    assert_eq!(attributes["weird \"name\""], 1);
    let rationale: String = db
        .query_row("SELECT rationale FROM decisions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rationale, nasty);
    assert_eq!(audit.count("steps"), 1, "the table is still there");
    assert_consistent(&audit.path);
}

#[test]
fn ten_thousand_nested_steps_keep_their_chain() {
    let audit = Audit::new();
    let depth = 10_000;
    audit.run(|| {
        let session = info_span!("session", id = "deep");
        let mut chain = Vec::with_capacity(depth);
        for level in 0..depth {
            let parent = chain.last().unwrap_or(&session);
            let step = info_span!(parent: parent, "step", module = "nest", level);
            chain.push(step);
        }
        // Innermost first, as unwinding code would.
        while let Some(step) = chain.pop() {
            drop(step);
        }
    });
    assert_eq!(
        audit.one("SELECT count(*) FROM steps WHERE ended_at IS NOT NULL AND session_id = 'deep'"),
        "10000"
    );
    let deepest = audit.one(
        "WITH RECURSIVE chain(id, depth) AS (
             SELECT id, 1 FROM steps WHERE parent_step_id IS NULL
             UNION ALL
             SELECT s.id, c.depth + 1 FROM steps s JOIN chain c ON s.parent_step_id = c.id)
         SELECT max(depth) FROM chain",
    );
    assert_eq!(deepest, "10000");
    // Read back, walked and compared without recursion: the read API keeps steps flat.
    let reader = reasonkit_audit::read::Reader::open(&audit.path).unwrap();
    let session = reader.session("deep").unwrap().unwrap();
    let walked = session.walk();
    assert_eq!(walked.len(), depth);
    assert_eq!(walked.last().unwrap().0, depth - 1);
    let same = reasonkit_audit::diff::compare(&session, &session);
    assert!(!same.decisions_diverged);
    assert_eq!(same.steps.len(), depth);
}

#[test]
fn a_step_handle_kept_after_its_session_scope_ends_closes_both_later() {
    let audit = Audit::new();
    let kept = tracing::dispatcher::with_default(&audit.dispatch, || {
        let session = info_span!("session", id = "outlived");
        let step = info_span!(parent: &session, "step", module = "kept");
        drop(session); // the caller is done with it, but the step keeps it open
        step
    });
    audit.guard.flush().unwrap();
    assert_eq!(audit.one("SELECT status FROM sessions"), "running");
    tracing::dispatcher::with_default(&audit.dispatch, || drop(kept));
    audit.guard.flush().unwrap();
    assert_eq!(audit.one("SELECT status FROM sessions"), "completed");
    assert_eq!(
        audit.one("SELECT ended_at <= (SELECT ended_at FROM sessions) FROM steps"),
        "1"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_field_values_round_trip_exactly(
        text in any::<String>(),
        confidence in any::<f64>(),
        tokens in any::<i64>(),
        flag in any::<bool>(),
    ) {
        let audit = Audit::new();
        audit.run(|| {
            info_span!("session", id = "p").in_scope(|| {
                info_span!("step", module = "prop", input_summary = text.as_str(), confidence, tokens_used = tokens, flag, note = text.as_str())
                    .in_scope(|| {});
            })
        });
        let db = audit.db();
        let (summary, stored_confidence, stored_tokens, attributes): (String, Option<f64>, i64, String) = db
            .query_row("SELECT input_summary, confidence, tokens_used, attributes FROM steps", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .unwrap();
        prop_assert_eq!(&summary, &text);
        prop_assert_eq!(stored_tokens, tokens);
        if confidence.is_nan() {
            prop_assert_eq!(stored_confidence, None);
        } else {
            prop_assert_eq!(stored_confidence, Some(confidence));
        }
        let attributes: serde_json::Value = serde_json::from_str(&attributes).unwrap();
        prop_assert_eq!(attributes["note"].as_str(), Some(text.as_str()));
        prop_assert_eq!(attributes["flag"].as_bool(), Some(flag));
    }
}

/// A real bundle of one session (a failed step, decisions, a real, an integer), and its JSON.
fn a_bundle() -> (tempfile::TempDir, String) {
    use reasonkit_audit::evidence::{self, Scope};
    let audit = Audit::new();
    audit.run(|| {
        info_span!("session", id = "claim-1432", input = "covered?").in_scope(|| {
            info_span!(
                "step",
                module = "triage",
                confidence = 0.87,
                tokens_used = 512_i64,
                output_summary = "water damage"
            )
            .in_scope(|| {
                tracing::info!(name: "decision", decision_type = "route",
                    chosen_option = "adjuster", rationale = "over the limit");
            });
            info_span!("step", module = "lookup", error = "ConnectionError: down").in_scope(|| {});
        })
    });
    let Audit {
        dir, path, guard, ..
    } = audit;
    guard.shutdown().unwrap();
    let bundle =
        evidence::build(&path, &Scope::sessions(["claim-1432"]), &Default::default()).unwrap();
    (dir, serde_json::to_string(&bundle).unwrap())
}

/// Every place in a JSON value that holds a string or a number, as a JSON pointer.
fn leaves(value: &serde_json::Value, at: String, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                leaves(
                    v,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                leaves(v, format!("{at}/{i}"), out);
            }
        }
        serde_json::Value::String(_) | serde_json::Value::Number(_) => out.push(at),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A hostile bundle never crashes or hangs the verifier: any byte of its file changed,
    /// it is either not a bundle (unusable) or checked like any other.
    #[test]
    fn a_bundle_with_any_byte_changed_is_checked_without_a_panic(
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let (_dir, text) = BUNDLE.with(|b| b.clone());
        let mut bytes = text.into_bytes();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        if let Ok(bundle) = serde_json::from_slice::<reasonkit_audit::evidence::Bundle>(&bytes) {
            let _ = reasonkit_audit::evidence::check(&bundle, &Default::default());
        }
    }

    /// Any value of a row, an entry, a proof or a head replaced — by another string, or a
    /// number up to 2^64 − 1 — is found: what is proven cannot be changed unnoticed.
    #[test]
    fn any_proven_value_changed_is_found(
        at in any::<prop::sample::Index>(),
        number in any::<u64>(),
        as_text in any::<bool>(),
    ) {
        let (_dir, text) = BUNDLE.with(|b| b.clone());
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut places = Vec::new();
        leaves(&json["sessions"], "/sessions".into(), &mut places);
        let place = &places[at.index(places.len())];
        let target = json.pointer_mut(place).unwrap();
        let new = if as_text {
            serde_json::Value::from(format!("{target}x"))
        } else {
            serde_json::Value::from(number)
        };
        prop_assume!(*target != new);
        *target = new;
        // A value that no longer fits the bundle's types is unusable (exit 2), not a panic.
        if let Ok(bundle) = serde_json::from_value::<reasonkit_audit::evidence::Bundle>(json) {
            let report = reasonkit_audit::evidence::check(&bundle, &Default::default());
            prop_assert!(!report.is_intact_and_complete(), "{place} changed went unnoticed");
        }
    }
}

thread_local! {
    static BUNDLE: (std::rc::Rc<tempfile::TempDir>, String) = {
        let (dir, text) = a_bundle();
        (std::rc::Rc::new(dir), text)
    };
}
