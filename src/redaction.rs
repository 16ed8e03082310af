//! Secret redaction: API keys, tokens, passwords and private keys never reach the trail.
//!
//! `#[instrument]` records every argument, and reasoning code passes credentials around:
//! once a secret is in the file it is in the WAL, every backup and every export. So the
//! writer thread replaces secrets in every recorded value *before* any row is built,
//! hashed for the chain or written, by three kinds of rule:
//!
//! - **Field names** ([`DEFAULT_SECRET_FIELDS`], plus [`Redaction::field`]): a field named
//!   like a secret (case-insensitive; also as a suffix after `_` or `.`, so `openai_api_key`
//!   and `auth.token`) has its whole value replaced. `tokens_used` and the
//!   `gen_ai.usage.*_tokens` counts are not secrets and are kept. Each distinct field name
//!   is judged once (names are the callsites' `&'static str`s), not once per span.
//! - **Value patterns** ([`DEFAULT_PATTERNS`], plus [`Redaction::pattern`]), found inside
//!   any text — summaries, errors, inputs, rationales, options, `Debug`-formatted
//!   arguments, attribute values.
//! - **A function of your own** ([`Redaction::function`]), given each text value.
//!
//! A match becomes `[REDACTED:<rule>]`. Every replacement is counted in the `redactions`
//! health counter (and so in `audit_health`). A session's `input_hash` is the hash of the
//! input as recorded, before redaction, so it still identifies the real input; the stored
//! `input` (with `store_inputs`) is the redacted one.
//!
//! The caller's thread does none of this: the values cross the queue in memory, as they
//! are, and are redacted when the writer receives them.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use regex::{Captures, Regex, RegexSet};

use crate::record::{FieldValue, Fields};

/// The field names whose values are always secrets (unless the defaults are turned off
/// with [`Redaction::defaults`]). Matched case-insensitively, whole or as the suffix after
/// `_` or `.`.
pub const DEFAULT_SECRET_FIELDS: [&str; 13] = [
    "api_key",
    "apikey",
    "password",
    "passwd",
    "secret",
    "token",
    "access_token",
    "authorization",
    "cookie",
    "credential",
    "credentials",
    "private_key",
    "secret_key",
];

/// The value patterns on by default: a rule name, and the regular expression
/// ([`regex`](https://docs.rs/regex) syntax) of what it removes from any text.
pub const DEFAULT_PATTERNS: [(&str, &str); 7] = [
    // PEM blocks, also when the text was cut before the END line.
    (
        "private_key",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
    ),
    ("anthropic_key", r"sk-ant-[A-Za-z0-9_-]{16,}"),
    // Without a word boundary, so that a key glued to other text is found too; a match
    // must mix digits, upper and lower case as generated keys do (`PROVIDER_KEY`), so that
    // words like `risk-assessment-framework` are left alone.
    (PROVIDER_KEY, r"sk-[A-Za-z0-9_-]{20,}"),
    ("aws_access_key", r"(?:AKIA|ASIA)[0-9A-Z]{16}"),
    ("bearer_token", r"(?i)bearer\s+[A-Za-z0-9._~+/-]{8,}=*"),
    (
        "jwt",
        r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}",
    ),
    // `password: "…"`, `api_key=…` inside `Debug` output, JSON, URLs and log lines: the
    // value goes, the name stays (see `NAMED_SECRET`).
    (NAMED_SECRET, NAMED_SECRET_PATTERN),
];

/// The rule for OpenAI-style keys, whose matches must also look generated.
const PROVIDER_KEY: &str = "provider_key";

/// A generated key mixes digits, upper and lower case; prose with `sk-` in it does not.
fn looks_generated(key: &str) -> bool {
    let body = key.get(3..).unwrap_or("");
    body.bytes().any(|b| b.is_ascii_digit())
        && body.bytes().any(|b| b.is_ascii_uppercase())
        && body.bytes().any(|b| b.is_ascii_lowercase())
}

/// The rule that finds `name: value` and `name=value` pairs in text whose name is a secret
/// field name; only the value is replaced, by `[REDACTED:<name>]`.
const NAMED_SECRET: &str = "named_secret";

/// The pattern of [`NAMED_SECRET`]: a secret name (the defaults', also after a prefix such
/// as `openai_`), an optional closing quote, `:` or `=`, an optional quote, and the value
/// up to a quote, space or separator.
const NAMED_SECRET_PATTERN: &str = r#"(?i)\b((?:[a-z0-9]+[_.-])*(?:api[_-]?key|apikey|password|passwd|secret(?:[_-]?key)?|access[_-]?token|token|authorization|cookie|credentials?|private[_-]?key))(["']?\s*[:=]\s*["']?)([^\s"',;}\]&]+)"#;

/// A function that redacts text of its own accord: given the field's name and a text value,
/// the replacement, or `None` to keep the value.
pub type RedactFn = dyn Fn(&str, &str) -> Option<String> + Send + Sync;

/// What the layer removes from recorded values before they are written; set with
/// [`AuditLayerBuilder::redaction`](crate::AuditLayerBuilder::redaction). The defaults
/// ([`DEFAULT_SECRET_FIELDS`], [`DEFAULT_PATTERNS`]) are on unless turned off.
///
/// ```
/// use reasonkit_audit::{AuditLayer, Redaction};
///
/// let dir = tempfile::tempdir()?;
/// let redaction = Redaction::default()
///     .field("customer_ssn")
///     .pattern("ticket", r"TCK-[0-9]{6}")?
///     .function(|_field, text| text.contains("internal-only").then(|| "[REDACTED:internal]".into()));
/// let (layer, guard) = AuditLayer::builder()
///     .path(dir.path().join("audit.db"))
///     .redaction(redaction)
///     .build()?;
/// # drop(layer);
/// guard.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct Redaction {
    defaults: bool,
    fields: Vec<String>,
    patterns: Vec<(String, Regex)>,
    function: Option<Arc<RedactFn>>,
}

impl Default for Redaction {
    fn default() -> Self {
        Redaction {
            defaults: true,
            fields: Vec::new(),
            patterns: Vec::new(),
            function: None,
        }
    }
}

impl fmt::Debug for Redaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redaction")
            .field("defaults", &self.defaults)
            .field("fields", &self.fields)
            .field(
                "patterns",
                &self.patterns.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("function", &self.function.is_some())
            .finish()
    }
}

impl Redaction {
    /// No redaction at all: every value is written as recorded. For trails that must hold
    /// exactly what was passed, in a store protected by other means.
    pub fn none() -> Self {
        Redaction {
            defaults: false,
            ..Redaction::default()
        }
    }

    /// Keeps (`true`, the default) or drops the default field names and patterns; rules
    /// added with the other methods apply either way.
    pub fn defaults(mut self, on: bool) -> Self {
        self.defaults = on;
        self
    }

    /// Treats fields named `name` (case-insensitive; also as a suffix after `_` or `.`) as
    /// secrets: their whole value becomes `[REDACTED:<name>]`.
    pub fn field(mut self, name: impl Into<String>) -> Self {
        self.fields.push(name.into().to_lowercase());
        self
    }

    /// Removes every match of `regex` from every text value, as `[REDACTED:<rule>]`.
    ///
    /// # Errors
    /// The regular expression's syntax error, naming the rule.
    pub fn pattern(mut self, rule: impl Into<String>, regex: &str) -> crate::error::Result<Self> {
        let rule = rule.into();
        let compiled = Regex::new(regex).map_err(|e| crate::error::Error::RedactionPattern {
            rule: rule.clone(),
            message: e.to_string(),
        })?;
        self.patterns.push((rule, compiled));
        Ok(self)
    }

    /// Calls `function` with each text value (and its field's name) after the other rules;
    /// what it returns replaces the value. It runs on the writer thread.
    pub fn function(
        mut self,
        function: impl Fn(&str, &str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.function = Some(Arc::new(function));
        self
    }
}

/// The writer's side: the rules compiled, and the field names already judged.
pub(crate) struct Redactor {
    names: Vec<String>,
    patterns: Vec<(String, Regex)>,
    named_secret: Option<Regex>,
    /// Every pattern (and the named-secret one) in one automaton: a text that none of them
    /// matches, nearly every text, is scanned once.
    any: Option<RegexSet>,
    function: Option<Arc<RedactFn>>,
    /// Field name (by the address and length of its `&'static str`) → the rule it
    /// matches, if any: judged once per distinct name, looked up without hashing its text.
    judged: HashMap<(usize, usize), Option<Arc<str>>>,
    /// Replacements since [`Redactor::take_count`] was last called.
    count: u64,
}

impl Redactor {
    pub(crate) fn new(config: &Redaction) -> Redactor {
        let mut names = config.fields.clone();
        let mut patterns = Vec::new();
        let mut named_secret = None;
        if config.defaults {
            names.extend(DEFAULT_SECRET_FIELDS.iter().map(|s| (*s).to_owned()));
            for (rule, regex) in DEFAULT_PATTERNS {
                if rule == NAMED_SECRET {
                    named_secret = Regex::new(regex).ok();
                } else if let Ok(compiled) = Regex::new(regex) {
                    patterns.push((rule.to_owned(), compiled));
                }
            }
        }
        patterns.extend(config.patterns.iter().cloned());
        let any = RegexSet::new(
            patterns
                .iter()
                .map(|(_, r)| r.as_str())
                .chain(named_secret.as_ref().map(Regex::as_str)),
        )
        .ok();
        Redactor {
            names,
            patterns,
            named_secret,
            any,
            function: config.function.clone(),
            judged: HashMap::new(),
            count: 0,
        }
    }

    /// How many values and matches were replaced since the last call.
    pub(crate) fn take_count(&mut self) -> u64 {
        std::mem::take(&mut self.count)
    }

    /// The name rule `name` matches, judged once per name.
    fn secret_name(&mut self, name: &'static str) -> Option<Arc<str>> {
        let names = &self.names;
        self.judged
            .entry((name.as_ptr() as usize, name.len()))
            .or_insert_with(|| {
                let lower = name.to_lowercase();
                names
                    .iter()
                    .find(|rule| {
                        lower == **rule
                            || lower
                                .strip_suffix(rule.as_str())
                                .is_some_and(|head| head.ends_with('_') || head.ends_with('.'))
                    })
                    .map(|rule| Arc::from(rule.as_str()))
            })
            .clone()
    }

    /// Would redaction change `value`? Not counted: the value's own redaction counts.
    pub(crate) fn changes(&mut self, name: &'static str, value: &FieldValue) -> bool {
        let count = self.count;
        let mut probe = value.clone();
        let changed = self.value(name, &mut probe);
        self.count = count;
        changed
    }

    /// Redacts every value of `fields` in place.
    pub(crate) fn fields(&mut self, fields: &mut Fields) {
        for (name, value) in fields.iter_mut() {
            self.value(name, value);
        }
    }

    /// Redacts one value in place: the whole of it when its name is a secret's, the
    /// secrets inside it otherwise. Returns whether it changed.
    pub(crate) fn value(&mut self, name: &'static str, value: &mut FieldValue) -> bool {
        if let Some(rule) = self.secret_name(name) {
            if *value == FieldValue::Str(marker(&rule)) {
                return false;
            }
            *value = FieldValue::Str(marker(&rule));
            self.count += 1;
            return true;
        }
        match value {
            FieldValue::Str(text) | FieldValue::Debug(text) => match self.text(name, text) {
                Some(redacted) => {
                    *text = redacted;
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    /// `text` with every pattern's matches replaced, or `None` when nothing matched.
    fn text(&mut self, name: &str, text: &str) -> Option<String> {
        let mut current: Option<String> = None;
        let mut replaced = 0;
        let scan = self.any.as_ref().is_none_or(|any| any.is_match(text));
        for (rule, regex) in self.patterns.iter().filter(|_| scan) {
            let source = current.as_deref().unwrap_or(text);
            if !regex.is_match(source) {
                continue;
            }
            let mut n = 0;
            let out = regex
                .replace_all(source, |c: &Captures<'_>| {
                    if rule == PROVIDER_KEY && !looks_generated(&c[0]) {
                        return c[0].to_owned();
                    }
                    n += 1;
                    marker(rule)
                })
                .into_owned();
            if n > 0 {
                replaced += n;
                current = Some(out);
            }
        }
        if let Some(regex) = self.named_secret.as_ref().filter(|_| scan) {
            let source = current.as_deref().unwrap_or(text);
            if regex.is_match(source) {
                let mut n = 0;
                let out = regex
                    .replace_all(source, |c: &Captures<'_>| {
                        let value = c.get(3).map_or("", |m| m.as_str());
                        if value.starts_with("[REDACTED:") {
                            return c[0].to_owned();
                        }
                        n += 1;
                        format!("{}{}{}", &c[1], &c[2], marker(&c[1].to_lowercase()))
                    })
                    .into_owned();
                if n > 0 {
                    replaced += n;
                    current = Some(out);
                }
            }
        }
        if let Some(function) = &self.function {
            let source = current.as_deref().unwrap_or(text);
            if let Some(out) = function(name, source) {
                if out != source {
                    replaced += 1;
                    current = Some(out);
                }
            }
        }
        self.count += replaced;
        current
    }
}

fn marker(rule: &str) -> String {
    format!("[REDACTED:{rule}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor() -> Redactor {
        Redactor::new(&Redaction::default())
    }

    fn redact(text: &str) -> String {
        let mut value = FieldValue::Str(text.to_owned());
        redactor().value("note", &mut value);
        match value {
            FieldValue::Str(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn secret_field_names_whole_or_as_a_suffix_but_not_token_counts() {
        let mut r = redactor();
        for name in [
            "api_key",
            "API_KEY",
            "openai_api_key",
            "auth.token",
            "password",
            "db.Password",
            "client_secret",
            "credentials",
            "Authorization",
            "session_cookie",
        ] {
            assert!(r.secret_name(name).is_some(), "{name}");
        }
        for name in [
            "tokens_used",
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.output_tokens",
            "max_tokens",
            "module",
            "tokenizer",
            "secretary",
        ] {
            assert!(r.secret_name(name).is_none(), "{name}");
        }
    }

    #[test]
    fn each_default_pattern_is_found_inside_text() {
        for (secret, rule) in [
            ("sk-proj-Ab3defghijklmnopqrstuvwx", "provider_key"),
            ("sk-ant-api03-abcdefghijklmnopqrstu", "anthropic_key"),
            ("AKIAIOSFODNN7EXAMPLE", "aws_access_key"),
            ("Bearer abcdefghijklmnop.qrs", "bearer_token"),
            (
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                "jwt",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
                "private_key",
            ),
        ] {
            let out = redact(&format!("before {secret} after"));
            assert_eq!(out, format!("before [REDACTED:{rule}] after"), "{secret}");
        }
    }

    #[test]
    fn named_secrets_in_debug_output_lose_their_value_and_keep_their_name() {
        assert_eq!(
            redact(r#"Config { openai_api_key: "abc123", retries: 3 }"#),
            r#"Config { openai_api_key: "[REDACTED:openai_api_key]", retries: 3 }"#
        );
        assert_eq!(
            redact("https://host/db?user=a&password=hunter2&x=1"),
            "https://host/db?user=a&password=[REDACTED:password]&x=1"
        );
        assert_eq!(redact("tokens_used: 42"), "tokens_used: 42");
    }

    #[test]
    fn prose_with_sk_dash_is_not_a_key_and_a_key_glued_to_text_is() {
        let prose = "the risk-assessment-framework-for-credit was applied";
        assert_eq!(redact(prose), prose);
        assert_eq!(
            redact("keysk-proj-Q7x2LmN9pR4sT6vW8yZ0aB1c!"),
            "key[REDACTED:provider_key]!"
        );
    }

    proptest::proptest! {
        /// A secret of each default pattern, embedded anywhere in random text (glued to
        /// letters, digits and punctuation on both sides), never survives.
        #[test]
        fn an_embedded_default_pattern_secret_never_survives(
            before in "[ -~\n]{0,40}",
            after in "[ -~\n]{0,40}",
            body in "[A-Za-z0-9]{24,40}",
            upper in "[A-Z0-9]{16}",
            which in 0usize..6,
        ) {
            // Generated keys mix digits, upper and lower case, as real ones do.
            let key = format!("{body}Aa0");
            let secret = match which {
                0 => format!("sk-proj-{key}"),
                1 => format!("sk-ant-api03-{key}"),
                2 => format!("AKIA{upper}"),
                3 => format!("Bearer {key}"),
                4 => format!("eyJ{key}.eyJ{key}.{key}"),
                _ => format!("-----BEGIN PRIVATE KEY-----\n{key}\n-----END PRIVATE KEY-----"),
            };
            let out = redact(&format!("{before}{secret}{after}"));
            let core = if which == 2 { upper.clone() } else { key.clone() };
            proptest::prop_assert!(!out.contains(&core), "{out:?}");
        }
    }

    #[test]
    fn a_cut_private_key_block_goes_to_the_end() {
        assert_eq!(
            redact("key: -----BEGIN PRIVATE KEY-----\nMIIEv…[truncated"),
            "key: [REDACTED:private_key]"
        );
    }

    #[test]
    fn replacements_are_counted_and_numbers_under_secret_names_go_too() {
        let mut r = redactor();
        let mut fields: Fields = vec![
            ("password", FieldValue::I64(1234)),
            (
                "note",
                FieldValue::Str("sk-Abcdefghijklmnopqrstu9 and sk-Zyxwvutsrqponmlkjihg8".into()),
            ),
            ("tokens_used", FieldValue::U64(10)),
        ];
        r.fields(&mut fields);
        assert_eq!(fields[0].1, FieldValue::Str("[REDACTED:password]".into()));
        assert_eq!(fields[2].1, FieldValue::U64(10));
        assert_eq!(r.take_count(), 3);
        assert_eq!(r.take_count(), 0);
    }

    #[test]
    fn defaults_off_keeps_only_the_rules_given() {
        let config = Redaction::default()
            .defaults(false)
            .field("ssn")
            .pattern("ticket", "TCK-[0-9]+")
            .unwrap();
        let mut r = Redactor::new(&config);
        let mut value = FieldValue::Str("sk-Abcdefghijklmnopqrstu9 TCK-42".into());
        r.value("note", &mut value);
        assert_eq!(
            value,
            FieldValue::Str("sk-Abcdefghijklmnopqrstu9 [REDACTED:ticket]".into())
        );
        assert!(r.secret_name("customer_ssn").is_some());
        assert!(r.secret_name("password").is_none());
    }

    #[test]
    fn a_bad_pattern_is_an_error_naming_its_rule() {
        let err = Redaction::default()
            .pattern("broken", "(unclosed")
            .unwrap_err();
        assert!(err.to_string().contains("broken"), "{err}");
    }
}
