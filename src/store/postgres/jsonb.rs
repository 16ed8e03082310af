//! `jsonb`'s normal form, computed by the client: the exact text `attributes::text` gives
//! back after the server has stored a JSON value.
//!
//! The chain hashes a `jsonb` column as that text (see [`super::images`]). When the writer
//! sends rows by COPY it hashes them from what it sent, without reading them back, so it
//! must send JSON the server stores unchanged: text already in the server's normal form.
//! PostgreSQL's rules, from its `jsonb` input and output functions (PostgreSQL 10–17):
//!
//! - object keys sorted by length in bytes, then bytewise; of duplicate keys the last wins;
//! - `{"k": v, "k2": v2}` and `[1, 2]`: one space after each `:` and `,`, nowhere else;
//! - strings escaped as JSON requires and no more: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`,
//!   other control characters as `\u00XX` (lower-case hex), everything else as itself;
//! - numbers as `numeric` prints them: no exponent, the decimal digits the input implied
//!   (`1.50` stays `1.50`, `1.5e-7` becomes `0.00000015`, `1e3` becomes `1000`), and no
//!   negative zero (`-0.0` becomes `0.0`).
//!
//! U+0000, which `jsonb` cannot hold, becomes U+FFFD as everywhere in this store
//! ([`storable_json`]). Whatever this module cannot put in normal form with
//! certainty (a key that the replacement makes a duplicate, an exponent past ±400, nesting
//! past 128, text that is not JSON) gives `None`, and the writer then takes its statements,
//! which RETURN what the server stored. A property test checks this module against a real
//! server.

/// Text as PostgreSQL can store it. PostgreSQL's `text` cannot hold U+0000, nor its `jsonb`
/// the escape `\u0000`; each such character becomes U+FFFD (the replacement character), the
/// documented rule, so the value is stored rather than dropped.
pub(crate) fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}").into()
    } else {
        text.into()
    }
}

/// JSON text as `jsonb` can store it: U+0000 inside strings becomes U+FFFD. The text is
/// then in `jsonb`'s normal form (this module), its numbers with the digits they were
/// written with; text that has none keeps its other characters as they are.
pub(crate) fn storable_json(json: &str) -> std::borrow::Cow<'_, str> {
    if !json.contains("\\u0000") {
        return json.into();
    }
    match normal_form(json) {
        Some(normal) => normal.into(),
        None => json.replace("\\u0000", "\\ufffd").into(),
    }
}

/// The largest exponent whose number is spelled out here; beyond it, `None`.
const MAX_EXPONENT: i64 = 400;

/// How deeply arrays and objects may nest (as serde_json allows); deeper gives `None`.
const MAX_DEPTH: usize = 128;

/// `json` as the server's `jsonb` output will spell it, or `None` when that cannot be
/// told with certainty (the caller then lets the server say).
///
/// The text is read token by token rather than through `serde_json::Value`: a number must
/// keep the digits it was written with (a float read into an `f64` and printed again can
/// come out with other digits, and the server keeps the ones it was sent).
pub(crate) fn normal_form(json: &str) -> Option<String> {
    let mut reader = Reader {
        text: json.as_bytes(),
        at: 0,
    };
    let mut out = String::with_capacity(json.len() + 16);
    reader.value(&mut out, 0)?;
    reader.space();
    (reader.at == reader.text.len()).then_some(out)
}

/// A JSON text, read once from the front.
struct Reader<'a> {
    text: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn space(&mut self) {
        while matches!(self.text.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.space();
        let found = self.text.get(self.at) == Some(&byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn literal(&mut self, word: &str, out: &mut String) -> Option<()> {
        let end = self.at + word.len();
        (self.text.get(self.at..end)? == word.as_bytes()).then_some(())?;
        self.at = end;
        out.push_str(word);
        Some(())
    }

    /// One value, written to `out` in normal form.
    fn value(&mut self, out: &mut String, depth: usize) -> Option<()> {
        self.space();
        match *self.text.get(self.at)? {
            b'{' => self.object(out, depth + 1),
            b'[' => self.array(out, depth + 1),
            b'"' => {
                let text = self.string()?;
                write_string(&text, out);
                Some(())
            }
            b't' => self.literal("true", out),
            b'f' => self.literal("false", out),
            b'n' => self.literal("null", out),
            _ => {
                let token = self.number()?;
                out.push_str(&numeric(token)?);
                Some(())
            }
        }
    }

    fn array(&mut self, out: &mut String, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.at += 1;
        out.push('[');
        if !self.eat(b']') {
            loop {
                self.value(out, depth)?;
                if self.eat(b']') {
                    break;
                }
                self.eat(b',').then_some(())?;
                out.push_str(", ");
            }
        }
        out.push(']');
        Some(())
    }

    fn object(&mut self, out: &mut String, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.at += 1;
        // Each key (U+0000 replaced, as the server will hold it) with its value's normal
        // form, and whether the replacement changed the key.
        let mut entries: Vec<(String, String, bool)> = Vec::new();
        if !self.eat(b'}') {
            loop {
                self.space();
                let raw = self.string()?;
                let key = without_nul(&raw).into_owned();
                let replaced = key.len() != raw.len();
                self.eat(b':').then_some(())?;
                let mut value = String::new();
                self.value(&mut value, depth)?;
                match entries.iter_mut().find(|(k, _, _)| *k == key) {
                    // The same key twice: the last wins, as in the server — unless the
                    // replacement of U+0000 made them the same, where it is the server's say.
                    Some((_, _, earlier)) if *earlier || replaced => return None,
                    Some(entry) => entry.1 = value,
                    None => entries.push((key, value, replaced)),
                }
                if self.eat(b'}') {
                    break;
                }
                self.eat(b',').then_some(())?;
            }
        }
        entries.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.cmp(&b.0)));
        out.push('{');
        for (i, (key, value, _)) in entries.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            write_string(key, out);
            out.push_str(": ");
            out.push_str(value);
        }
        out.push('}');
        Some(())
    }

    /// A string token, unescaped.
    fn string(&mut self) -> Option<String> {
        (self.text.get(self.at) == Some(&b'"')).then_some(())?;
        self.at += 1;
        let mut text = String::new();
        loop {
            let start = self.at;
            while !matches!(self.text.get(self.at), Some(b'"' | b'\\') | None) {
                if *self.text.get(self.at)? < 0x20 {
                    return None;
                }
                self.at += 1;
            }
            text.push_str(std::str::from_utf8(self.text.get(start..self.at)?).ok()?);
            let byte = *self.text.get(self.at)?;
            self.at += 1;
            if byte == b'"' {
                return Some(text);
            }
            let escape = *self.text.get(self.at)?;
            self.at += 1;
            text.push(match escape {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{08}',
                b'f' => '\u{0C}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => self.unicode_escape()?,
                _ => return None,
            });
        }
    }

    /// The character of a `\uXXXX` escape (the `\u` read), a surrogate pair as one.
    fn unicode_escape(&mut self) -> Option<char> {
        let first = self.hex4()?;
        if (0xD800..0xDC00).contains(&first) {
            (self.text.get(self.at..self.at + 2)? == b"\\u").then_some(())?;
            self.at += 2;
            let second = self.hex4()?;
            (0xDC00..0xE000).contains(&second).then_some(())?;
            return char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00));
        }
        char::from_u32(first)
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = std::str::from_utf8(self.text.get(self.at..self.at + 4)?).ok()?;
        self.at += 4;
        u32::from_str_radix(digits, 16).ok()
    }

    /// A number token, as written: `-? int frac? exp?`.
    fn number(&mut self) -> Option<&str> {
        let start = self.at;
        let digits = |r: &mut Self| {
            let from = r.at;
            while r.text.get(r.at).is_some_and(u8::is_ascii_digit) {
                r.at += 1;
            }
            r.at > from
        };
        if self.text.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        if self.text.get(self.at) == Some(&b'0') {
            self.at += 1;
        } else {
            digits(self).then_some(())?;
        }
        if self.text.get(self.at) == Some(&b'.') {
            self.at += 1;
            digits(self).then_some(())?;
        }
        if matches!(self.text.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.text.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            digits(self).then_some(())?;
        }
        std::str::from_utf8(self.text.get(start..self.at)?).ok()
    }
}

fn without_nul(text: &str) -> std::borrow::Cow<'_, str> {
    storable(text)
}

/// A JSON string, escaped as PostgreSQL's `escape_json` escapes it (which is also what
/// serde_json writes, checked by the tests).
fn write_string(text: &str, out: &mut String) {
    out.push('"');
    for c in without_nul(text).chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON number token as `numeric` prints it: plain decimal, as many fraction digits as
/// the token implied (its fraction's length minus its exponent, at least 0).
fn numeric(token: &str) -> Option<String> {
    let (negative, unsigned) = match token.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, token),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => {
            let e = &unsigned[at + 1..];
            let e = e.strip_prefix('+').unwrap_or(e);
            (&unsigned[..at], e.parse::<i64>().ok()?)
        }
        None => (unsigned, 0),
    };
    if exponent.abs() > MAX_EXPONENT {
        return None;
    }
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: Vec<u8> = whole.bytes().chain(fraction.bytes()).collect();
    if whole.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let len = i64::try_from(digits.len()).ok()?;
    // Where the decimal point falls among the digits, and how many follow it.
    let point = i64::try_from(whole.len()).ok()? + exponent;
    let scale = (len - point).max(0);
    let mut integer = String::new();
    if point > 0 {
        for i in 0..point {
            let digit = usize::try_from(i).ok().and_then(|i| digits.get(i));
            integer.push(digit.map_or('0', |d| char::from(*d)));
        }
    }
    let integer = integer.trim_start_matches('0');
    let mut text = String::with_capacity(digits.len() + 4);
    if negative && digits.iter().any(|d| *d != b'0') {
        text.push('-');
    }
    text.push_str(if integer.is_empty() { "0" } else { integer });
    if scale > 0 {
        text.push('.');
        for i in point..len {
            // Before the first digit (a negative point): zeros.
            let digit = usize::try_from(i).ok().and_then(|i| digits.get(i));
            text.push(digit.map_or('0', |d| char::from(*d)));
        }
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_becomes_the_replacement_character_in_text_and_json() {
        assert_eq!(storable("a\0b"), "a\u{FFFD}b");
        assert_eq!(storable("plain"), "plain");
        let json = serde_json::json!({"k\0": "v\0", "n": [1, "x\0"]}).to_string();
        let stored: serde_json::Value = serde_json::from_str(&storable_json(&json)).unwrap();
        assert_eq!(
            stored,
            serde_json::json!({"k\u{FFFD}": "v\u{FFFD}", "n": [1, "x\u{FFFD}"]})
        );
        // An escaped backslash before "u0000" is text, not a NUL: left alone.
        let literal = serde_json::json!({"k": "\\u0000"}).to_string();
        let kept: serde_json::Value = serde_json::from_str(&storable_json(&literal)).unwrap();
        assert_eq!(kept, serde_json::json!({"k": "\\u0000"}));
    }

    use serde_json::Value;

    #[test]
    fn numbers_are_spelled_as_numeric_prints_them() {
        for (token, printed) in [
            ("0", "0"),
            ("-0", "0"),
            ("-0.0", "0.0"),
            ("1.50", "1.50"),
            ("1.5e-7", "0.00000015"),
            ("1e3", "1000"),
            ("1E+3", "1000"),
            ("1.2345678901234568e17", "123456789012345680"),
            ("12.5e1", "125"),
            ("12.25e1", "122.5"),
            ("-3.25", "-3.25"),
            ("18446744073709551615", "18446744073709551615"),
            ("5e-3", "0.005"),
            ("0.000e2", "0.0"),
        ] {
            assert_eq!(numeric(token).as_deref(), Some(printed), "{token}");
        }
        assert_eq!(numeric("1e401"), None);
        // The digits as written, not as an f64 would print them again.
        assert_eq!(
            normal_form("[1.5589897947340439e+35, 0.10000000000000000555]").as_deref(),
            Some("[155898979473404390000000000000000000, 0.10000000000000000555]")
        );
    }

    #[test]
    fn keys_sort_by_length_then_bytes_and_spacing_is_the_servers() {
        assert_eq!(
            normal_form(r#"{"bb":1,"a":[1,2,{"z":null,"y":true}],"c":"x"}"#).as_deref(),
            Some(r#"{"a": [1, 2, {"y": true, "z": null}], "c": "x", "bb": 1}"#)
        );
        assert_eq!(normal_form(" { } ").as_deref(), Some("{}"));
        assert_eq!(normal_form("[]").as_deref(), Some("[]"));
        assert_eq!(
            normal_form(r#"{"k":"a\u0000b\u001f\u007f\"\\\/é"}"#).as_deref(),
            Some("{\"k\": \"a\u{FFFD}b\\u001f\u{7f}\\\"\\\\/é\"}")
        );
        assert_eq!(
            normal_form(r#"{"k":"\ud83d\ude00\u00e9"}"#).as_deref(),
            Some("{\"k\": \"😀é\"}")
        );
        // The same key twice: the last wins.
        assert_eq!(
            normal_form(r#"{"a":1,"a":2}"#).as_deref(),
            Some(r#"{"a": 2}"#)
        );
        // "a\0" becomes "a\u{FFFD}", the same as a key already there: the server decides.
        assert_eq!(normal_form("{\"a\\u0000\":1,\"a\u{FFFD}\":2}"), None);
        assert_eq!(normal_form("{\"a\u{FFFD}\":1,\"a\\u0000\":2}"), None);
        for bad in [
            "not json",
            "{",
            "[1,]",
            "01",
            "1.",
            "\"\\ud800\"",
            "{\"a\" 1}",
            "[1] x",
            "\"\t\"",
        ] {
            assert_eq!(normal_form(bad), None, "{bad}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert_eq!(normal_form(&deep), None);
    }

    #[test]
    fn strings_escape_as_serde_json_escapes_them() {
        let every: String = (0u32..0x80).filter_map(char::from_u32).collect();
        let mut ours = String::new();
        write_string(&every[1..], &mut ours);
        assert_eq!(ours, serde_json::to_string(&every[1..]).unwrap());
    }

    /// Any JSON value: numbers of every kind serde_json makes, strings of any characters
    /// (control characters and U+0000 included), objects whose keys sort differently by
    /// length than bytewise, nested a few levels.
    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let number = prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            prop::sample::select(vec![0.0, -0.0, 1e20, 1.5e-7, 5e-324, f64::MAX, 0.1, 1.0])
                .prop_map(Value::from),
        ];
        let text = prop_oneof![any::<String>(), "[a-c\\x00\\x01\\x7f\"\\\\/é😀]{0,6}"];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            number,
            text.prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
                prop::collection::vec(("[a-d\\x00]{0,4}", inner), 0..6)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    /// Against a real server: what this module says `jsonb` will print is what it prints,
    /// for the text the statements send (U+0000 replaced), and it is printed unchanged when
    /// sent again — so a COPY of the normal form stores exactly what the chain hashed.
    #[test]
    fn the_normal_form_is_what_a_real_server_prints() {
        use proptest::test_runner::{Config, TestRunner};
        let Some(db) = super::super::test_server::TestDatabase::create("jsonb normal form") else {
            return;
        };
        let client = std::cell::RefCell::new(db.client());
        let mut runner = TestRunner::new(Config {
            cases: 512,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&any_json(), |value| {
                let text = value.to_string();
                let sent = super::storable_json(&text).into_owned();
                let Some(ours) = normal_form(&text) else {
                    // Only a key the replacement of U+0000 makes a duplicate has none.
                    assert!(text.contains("\\u0000"), "no normal form for {text}");
                    return Ok(());
                };
                let row = client
                    .borrow_mut()
                    .query_one(
                        "SELECT $1::text::jsonb::text, $2::text::jsonb::text",
                        &[&sent, &ours],
                    )
                    .expect("the server reads the JSON");
                let (printed, again): (String, String) = (row.get(0), row.get(1));
                assert_eq!(ours, printed, "the server's normal form of {text}");
                assert_eq!(ours, again, "the normal form is not kept as it is");
                Ok(())
            })
            .unwrap();
    }
}
