//! The record shapes the end-to-end benches produce, public API only (so that
//! `compare_commits.sh` can build them against an earlier commit too).
#![allow(dead_code)]

use tracing::{info, info_span};

/// A session of ten text-free steps: 11 rows.
pub fn text_free(i: u64) -> u64 {
    info_span!("session", profile = "bench", input = "a question").in_scope(|| {
        for k in 0..10u64 {
            info_span!(
                "step",
                module = "gigathink",
                confidence = 0.8,
                tokens_used = k,
                n = i
            )
            .in_scope(|| {});
        }
    });
    11
}

const WORDS: [&str; 12] = [
    "premises",
    "quarterly",
    "filing",
    "revenue",
    "contradiction",
    "forecast",
    "vendor",
    "evidence",
    "triage",
    "confidence",
    "deduction",
    "assumption",
];

/// Text of 20 to 200 characters, varying with `seed`.
pub fn summary(seed: u64) -> String {
    let target = 20 + (seed.wrapping_mul(2_654_435_761) % 181) as usize;
    let mut text = String::with_capacity(target + 16);
    let mut k = seed;
    while text.len() < target {
        text.push_str(WORDS[(k % 12) as usize]);
        text.push(' ');
        k = k
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407)
            >> 7;
    }
    text.truncate(target);
    text
}

/// A session of ten realistic steps with a decision every third step: 15 rows.
pub fn realistic(i: u64) -> u64 {
    let input = format!("question {i}: {}", summary(i));
    info_span!("session", profile = "balanced", input = %input).in_scope(|| {
        for k in 0..10u64 {
            info_span!(
                "step",
                module = ["gigathink", "laserlogic", "bedrock", "proofguard"][(k % 4) as usize],
                input_summary = %summary(i * 10 + k),
                output_summary = %summary(i * 10 + k + 7),
                confidence = 0.55 + (k as f64) / 25.0,
                tokens_used = 120 + k,
            )
            .in_scope(|| {
                if k % 3 == 0 {
                    info!(
                        name: "decision",
                        decision_type = "branch",
                        options_considered = ?["deepen", "stop"],
                        chosen_option = "deepen",
                        rationale = %summary(i + k),
                    );
                }
            });
        }
    });
    15
}
