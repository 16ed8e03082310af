//! Which spans are audited, and as what: our own `session`, `step` and `decision`, the
//! OpenTelemetry GenAI conventions (`gen_ai.operation.name`), and the run spans of the Rust
//! agent frameworks that instrument themselves with `tracing` (rig, genai, swiftide,
//! adk-rust, AutoAgents, goose).
//!
//! Frameworks name their spans as they like: rig opens `invoke_agent`, `chat` and
//! `execute_tool` with `gen_ai.operation.name`; genai opens `genai.chat` with the real name
//! in `otel.name`; adk-rust opens its tool spans with the empty name and `otel.name =
//! "execute_tool X"`; swiftide opens `agent.run` and `tool`. Without this module their users
//! would get nothing unless they renamed spans they do not own. The shapes, with sources,
//! are in the research note on Rust AI tracing; the table users see is in docs/frameworks.md.
//!
//! The decision is made once per callsite, from its name and its field names
//! ([`Callsites`]): a span of no interest costs one table lookup. A callsite whose meaning
//! depends on a value (`gen_ai.operation.name`, `otel.name`) is resolved when the span is
//! created, or, when that value arrives only with a later `record`, then.

use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use tracing::Metadata;
use tracing::field::{Field, Visit};

use crate::record::Kind;

/// The fields whose value says what a span is.
pub(crate) const OPERATION: &str = "gen_ai.operation.name";
pub(crate) const OTEL_NAME: &str = "otel.name";

/// What a callsite's spans are, as far as its metadata tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Meaning {
    /// Not audited: returns at once.
    Ignored,
    /// Our own `session`, `step` or `decision` span.
    Explicit(Kind),
    /// A framework span known by its name. A `weak` name is a common word (`tool`,
    /// `chat`, `complete`): such a span is audited only inside a session.
    Named { kind: Kind, weak: bool },
    /// A span whose `gen_ai.operation.name` or `otel.name` says what it is; `fallback` is
    /// what its name alone says, when its values say nothing.
    ByValue { fallback: Option<(Kind, bool)> },
}

impl Meaning {
    /// The meaning of a callsite: from the span's name and field names only.
    pub(crate) fn of(metadata: &Metadata<'_>, frameworks: bool) -> Meaning {
        if !metadata.is_span() {
            return Meaning::Ignored;
        }
        if let Some(kind) = Kind::of_span(metadata.name()) {
            return Meaning::Explicit(kind);
        }
        if !frameworks {
            return Meaning::Ignored;
        }
        let fields = metadata.fields();
        let fallback = by_name(metadata.name());
        if fields.field(OPERATION).is_some() || fields.field(OTEL_NAME).is_some() {
            return Meaning::ByValue { fallback };
        }
        match fallback {
            Some((kind, weak)) => Meaning::Named { kind, weak },
            None => Meaning::Ignored,
        }
    }

    /// Whether spans of this callsite may be audited at all.
    pub(crate) fn is_ignored(self) -> bool {
        self == Meaning::Ignored
    }

    /// What a span of this callsite is, given what its `gen_ai.operation.name` and
    /// `otel.name` values said so far; `None` when not audited (or not yet: see
    /// [`Said::may_still_say`]).
    pub(crate) fn resolve(self, said: &Said) -> Option<Resolved> {
        let (kind, weak, framework) = match self {
            Meaning::Ignored => return None,
            Meaning::Explicit(kind) => (kind, false, false),
            Meaning::Named { kind, weak } => (kind, weak, true),
            Meaning::ByValue { fallback } => {
                let by_value = said.operation.flatten().or(said.otel_name.flatten());
                let (kind, weak) = by_value.or(fallback)?;
                (kind, weak, true)
            }
        };
        Some(Resolved {
            kind,
            weak,
            framework,
        })
    }
}

/// What a span turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub(crate) kind: Kind,
    /// Known by a weak name only: audited inside a session only.
    pub(crate) weak: bool,
    /// Not one of our own names: a framework's or the GenAI conventions' span.
    pub(crate) framework: bool,
}

/// What a span's `gen_ai.operation.name` and `otel.name` values say, read without copying
/// the span's other fields: the outer `Option` is whether the field has a value yet.
#[derive(Debug, Default)]
pub(crate) struct Said {
    operation: Option<Option<(Kind, bool)>>,
    otel_name: Option<Option<(Kind, bool)>>,
}

impl Said {
    fn hear(&mut self, field: &Field, value: &str) {
        match field.name() {
            OPERATION => self.operation = Some(by_operation(value)),
            OTEL_NAME => self.otel_name = Some(by_otel_name(value)),
            _ => {}
        }
    }

    /// Whether a field that decides is declared by the callsite but has no value yet, so a
    /// later `record` may still make the span audited.
    pub(crate) fn may_still_say(&self, metadata: &Metadata<'_>) -> bool {
        let fields = metadata.fields();
        (self.operation.is_none() && fields.field(OPERATION).is_some())
            || (self.otel_name.is_none() && fields.field(OTEL_NAME).is_some())
    }

    /// Adds what a later `record` said.
    pub(crate) fn merge(&mut self, later: Said) {
        if later.operation.is_some() {
            self.operation = later.operation;
        }
        if later.otel_name.is_some() {
            self.otel_name = later.otel_name;
        }
    }
}

impl Visit for Said {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.hear(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `otel.name = %name` arrives here; only the two deciding fields are formatted.
        if matches!(field.name(), OPERATION | OTEL_NAME) {
            let text = format!("{value:?}");
            let text = text
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(&text);
            self.hear(field, text);
        }
    }
}

/// The kind an OpenTelemetry GenAI operation stands for, and whether it counts only inside
/// a session (weak).
///
/// Beside the conventions' own values: rig's `chat_streaming` (its providers' streaming
/// calls up to 0.43) and Gemini's `interactions` / `interactions_streaming`. Creating an
/// agent (`create_agent`, genai's `genai.agent` span) is not a run: a step inside a
/// session, nothing outside one.
pub(crate) fn by_operation(operation: &str) -> Option<(Kind, bool)> {
    let kind = match operation {
        "invoke_agent" | "invoke_workflow" => Kind::Session,
        "chat"
        | "chat_streaming"
        | "text_completion"
        | "generate_content"
        | "interactions"
        | "interactions_streaming"
        | "embeddings"
        | "retrieval"
        | "execute_tool"
        | "create_memory"
        | "search_memory"
        | "update_memory"
        | "upsert_memory"
        | "delete_memory" => Kind::Step,
        "create_agent" => return Some((Kind::Step, true)),
        "plan" => Kind::Decision,
        _ => return None,
    };
    Some((kind, false))
}

/// Whether a step of this target may be linked to its run only by a `follows_from` that
/// comes right after it opens: rig's agent turns (`rig::agent_chat`) and tool calls
/// (`rig_core::agent::…`, `rig_agent::agent::…`). rig-core 0.38 opens them without a parent
/// when its run span is its own, which it never enters.
pub(crate) fn links_by_follows_from(target: &str) -> bool {
    target == "rig::agent_chat"
        || ["rig_core::agent", "rig_agent::agent"]
            .iter()
            .any(|module| {
                target
                    .strip_prefix(module)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
}

/// Whether a framework step of this callsite calls a tool: its failures are reported as
/// WARN events by some frameworks (rig 0.38: "Error while executing tool: …").
pub(crate) fn is_tool(metadata: &Metadata<'_>) -> bool {
    let fields = metadata.fields();
    fields.field("gen_ai.tool.name").is_some()
        || fields.field("tool.name").is_some()
        || matches!(
            metadata.name(),
            "execute_tool" | "genai.execute_tool" | "tool" | "autoagents.tool_call"
        )
}

/// The kind an `otel.name` stands for: its first word as an operation (`execute_tool
/// search`, `chat gpt-4o`), or the whole name as a known span name.
fn by_otel_name(name: &str) -> Option<(Kind, bool)> {
    let first = name.split(' ').next().unwrap_or(name);
    by_operation(first)
        .or_else(|| by_name(name))
        .or_else(|| name.starts_with("tool.").then_some((Kind::Step, true)))
}

/// The kind a framework's span name stands for, and whether the name is a weak one.
fn by_name(name: &str) -> Option<(Kind, bool)> {
    let strong = match name {
        // Runs of an agent or a workflow.
        "invoke_agent"
        | "invoke_workflow"
        | "genai.agent"
        | "genai.invoke_workflow"
        | "agent.run"
        | "agent.query"
        | "agent.run_once"
        | "agent.query_once"
        | "agent.execute"
        | "task.run"
        | "team.run"
        | "autoagents.task" => Kind::Session,
        // Model calls and tool calls.
        "execute_tool"
        | "text_completion"
        | "generate_content"
        | "genai.chat"
        | "genai.embeddings"
        | "genai.execute_tool"
        | "call_llm"
        | "model.generate_content"
        | "gen_ai.generate"
        | "gen_ai.call"
        | "autoagents.turn"
        | "autoagents.tool_call"
        | "provider_generation" => Kind::Step,
        "genai.plan" => Kind::Decision,
        _ => {
            let weak = match name {
                "chat" | "embeddings" | "retrieval" | "rerank" | "complete" | "tool"
                | "task.step" | "team.member.run" => Kind::Step,
                "plan" => Kind::Decision,
                _ => return None,
            };
            return Some((weak, true));
        }
    };
    Some((strong, false))
}

/// Slots in the callsite table; a program with more audited-or-not callsites than this
/// decides the rest on every span (correct, a little slower).
const SLOTS: usize = 4096;
/// How far a lookup probes before giving up.
const PROBES: usize = 16;
/// A slot whose callsite is claimed but whose meaning is not stored yet.
const UNKNOWN: u8 = u8::MAX;

/// The meaning of each callsite, decided once: an open-addressing table keyed by the
/// address of the callsite's `'static` metadata, lock-free for readers.
pub(crate) struct Callsites {
    frameworks: bool,
    keys: Box<[AtomicUsize]>,
    meanings: Box<[AtomicU8]>,
}

impl std::fmt::Debug for Callsites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callsites")
            .field("frameworks", &self.frameworks)
            .finish_non_exhaustive()
    }
}

impl Callsites {
    /// An empty table; `frameworks` turns recognising framework spans on.
    pub(crate) fn new(frameworks: bool) -> Self {
        Callsites {
            frameworks,
            keys: (0..SLOTS).map(|_| AtomicUsize::new(0)).collect(),
            meanings: (0..SLOTS).map(|_| AtomicU8::new(UNKNOWN)).collect(),
        }
    }

    /// The meaning of `metadata`'s callsite: from the table, or decided now and kept.
    ///
    /// A slot holds the callsite's address with its lowest bit set when the callsite is
    /// ignored (metadata is aligned, so the bit is free): a span of no interest is decided
    /// by one load. The full meaning of the others is in `meanings`.
    #[inline]
    pub(crate) fn meaning(&self, metadata: &'static Metadata<'static>) -> Meaning {
        let address = std::ptr::from_ref(metadata) as usize;
        let mut slot = start(address);
        for _ in 0..PROBES {
            let found = self.keys[slot].load(Ordering::Acquire);
            if found == address | IGNORED {
                return Meaning::Ignored;
            }
            if found == address {
                return match decode(self.meanings[slot].load(Ordering::Acquire)) {
                    Some(meaning) => meaning,
                    None => Meaning::of(metadata, self.frameworks),
                };
            }
            if found == 0 {
                return self.remember(metadata, address, slot);
            }
            slot = (slot + 1) % SLOTS;
        }
        Meaning::of(metadata, self.frameworks)
    }

    /// Decides a callsite seen for the first time and keeps its meaning in `slot` (or,
    /// when another thread took the slot meanwhile, just returns it).
    #[cold]
    fn remember(
        &self,
        metadata: &'static Metadata<'static>,
        address: usize,
        slot: usize,
    ) -> Meaning {
        let meaning = Meaning::of(metadata, self.frameworks);
        let key = if meaning.is_ignored() {
            address | IGNORED
        } else {
            address
        };
        if self.keys[slot]
            .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            && !meaning.is_ignored()
        {
            self.meanings[slot].store(encode(meaning), Ordering::Release);
        }
        meaning
    }
}

/// The mark of an ignored callsite in its slot.
const IGNORED: usize = 1;

fn start(key: usize) -> usize {
    // Metadata lives in statics some hundred bytes apart: the address bits above the
    // alignment spread them well enough for linear probing, at no cost.
    (key >> 4) & (SLOTS - 1)
}

fn kind_code(kind: Kind) -> u8 {
    match kind {
        Kind::Session => 0,
        Kind::Step => 1,
        Kind::Decision => 2,
    }
}

fn kind_of(code: u8) -> Option<Kind> {
    match code {
        0 => Some(Kind::Session),
        1 => Some(Kind::Step),
        2 => Some(Kind::Decision),
        _ => None,
    }
}

/// One byte: bits 0–1 the kind (3 = none), bit 2 weak, bits 3–4 the variant.
fn encode(meaning: Meaning) -> u8 {
    let pair = |found: Option<(Kind, bool)>| match found {
        Some((kind, weak)) => kind_code(kind) | (u8::from(weak) << 2),
        None => 3,
    };
    match meaning {
        Meaning::Ignored => 0 << 3,
        Meaning::Explicit(kind) => (1 << 3) | kind_code(kind),
        Meaning::Named { kind, weak } => (2 << 3) | pair(Some((kind, weak))),
        Meaning::ByValue { fallback } => (3 << 3) | pair(fallback),
    }
}

fn decode(code: u8) -> Option<Meaning> {
    if code == UNKNOWN {
        return None;
    }
    let kind = kind_of(code & 3);
    let weak = code & 4 != 0;
    Some(match code >> 3 {
        0 => Meaning::Ignored,
        1 => Meaning::Explicit(kind?),
        2 => Meaning::Named { kind: kind?, weak },
        3 => Meaning::ByValue {
            fallback: kind.map(|k| (k, weak)),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_meaning_survives_the_table() {
        let kinds = [Kind::Session, Kind::Step, Kind::Decision];
        let mut all = vec![Meaning::Ignored, Meaning::ByValue { fallback: None }];
        for kind in kinds {
            all.push(Meaning::Explicit(kind));
            for weak in [false, true] {
                all.push(Meaning::Named { kind, weak });
                all.push(Meaning::ByValue {
                    fallback: Some((kind, weak)),
                });
            }
        }
        for meaning in all {
            assert_eq!(decode(encode(meaning)), Some(meaning), "{meaning:?}");
        }
    }

    fn said(operation: Option<&str>, otel_name: Option<&str>) -> Said {
        Said {
            operation: operation.map(by_operation),
            otel_name: otel_name.map(by_otel_name),
        }
    }

    #[test]
    fn rigs_agent_targets_are_told_apart_from_its_other_calls_and_other_crates() {
        for linked in [
            "rig::agent_chat",
            "rig_core::agent::prompt_request",
            "rig_agent::agent::telemetry",
        ] {
            assert!(links_by_follows_from(linked), "{linked}");
        }
        for other in [
            "rig::completions",
            "rig_core::providers::openai",
            "rig_core::agentic",
            "my_app::rig_core::agent",
            "rig",
        ] {
            assert!(!links_by_follows_from(other), "{other}");
        }
    }

    #[test]
    fn values_decide_before_names() {
        let by_value = Meaning::ByValue {
            fallback: Some((Kind::Step, true)),
        };
        let audited = |kind, weak| {
            Some(Resolved {
                kind,
                weak,
                framework: true,
            })
        };
        let resolve = |m: Meaning, op, name| m.resolve(&said(op, name));
        assert_eq!(
            resolve(by_value, Some("invoke_agent"), None),
            audited(Kind::Session, false)
        );
        assert_eq!(
            resolve(by_value, None, Some("execute_tool search")),
            audited(Kind::Step, false)
        );
        assert_eq!(
            resolve(by_value, Some("plan"), Some("chat")),
            audited(Kind::Decision, false)
        );
        assert_eq!(
            resolve(by_value, Some("create_agent"), Some("x")),
            audited(Kind::Step, true)
        );
        // genai's agent span creating an agent is no run, whatever its name says.
        let agent = Meaning::ByValue {
            fallback: Some((Kind::Session, false)),
        };
        assert_eq!(
            resolve(agent, Some("create_agent"), Some("create_agent calc")),
            audited(Kind::Step, true)
        );
        for streaming in ["chat_streaming", "interactions", "interactions_streaming"] {
            assert_eq!(
                resolve(by_value, Some(streaming), None),
                audited(Kind::Step, false)
            );
        }
        let unnamed = Meaning::ByValue { fallback: None };
        assert_eq!(resolve(unnamed, None, None), None);
        assert_eq!(
            resolve(unnamed, Some("create_agent"), Some("GET /users")),
            audited(Kind::Step, true)
        );
        assert_eq!(
            resolve(unnamed, None, Some("tool.search")),
            audited(Kind::Step, true)
        );
        assert_eq!(resolve(unnamed, Some("GET"), Some("GET /users")), None);
        assert_eq!(
            resolve(Meaning::Explicit(Kind::Step), Some("invoke_agent"), None),
            Some(Resolved {
                kind: Kind::Step,
                weak: false,
                framework: false
            })
        );
    }
}
