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
//! ([`super::images::storable_json`]). Whatever this module cannot put in normal form with
//! certainty (a key that the replacement makes a duplicate, an exponent past ±400) gives
//! `None`, and the writer then takes its statements, which RETURN what the server stored.
//! A property test checks this module against a real server.

use serde_json::Value;

/// The largest exponent whose number is spelled out here; beyond it, `None`.
const MAX_EXPONENT: i64 = 400;

/// `json` as the server's `jsonb` output will spell it, or `None` when that cannot be
/// told with certainty (the caller then lets the server say).
pub(crate) fn normal_form(json: &str) -> Option<String> {
    let value: Value = serde_json::from_str(json).ok()?;
    let mut out = String::with_capacity(json.len() + 16);
    write_value(&value, &mut out)?;
    Some(out)
}

fn write_value(value: &Value, out: &mut String) -> Option<()> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&numeric(&n.to_string())?),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(std::borrow::Cow<'_, str>, &Value)> =
                map.iter().map(|(k, v)| (without_nul(k), v)).collect();
            entries.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.cmp(&b.0)));
            if entries.windows(2).any(|w| w[0].0 == w[1].0) {
                return None;
            }
            out.push('{');
            for (i, (key, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(key, out);
                out.push_str(": ");
                write_value(item, out)?;
            }
            out.push('}');
        }
    }
    Some(())
}

fn without_nul(text: &str) -> std::borrow::Cow<'_, str> {
    super::images::storable(text)
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
    }

    #[test]
    fn keys_sort_by_length_then_bytes_and_spacing_is_the_servers() {
        assert_eq!(
            normal_form(r#"{"bb":1,"a":[1,2,{"z":null,"y":true}],"c":"x"}"#).as_deref(),
            Some(r#"{"a": [1, 2, {"y": true, "z": null}], "c": "x", "bb": 1}"#)
        );
        assert_eq!(normal_form("{}").as_deref(), Some("{}"));
        assert_eq!(normal_form("[]").as_deref(), Some("[]"));
        assert_eq!(
            normal_form(r#"{"k":"a\u0000b\u001f\u007f\"\\\/é"}"#).as_deref(),
            Some("{\"k\": \"a\u{FFFD}b\\u001f\u{7f}\\\"\\\\/é\"}")
        );
        // "a\0" becomes "a\u{FFFD}", the same as a key already there: the server decides.
        assert_eq!(normal_form("{\"a\\u0000\":1,\"a\u{FFFD}\":2}"), None);
        assert_eq!(normal_form("not json"), None);
    }

    #[test]
    fn strings_escape_as_serde_json_escapes_them() {
        let every: String = (0u32..0x80).filter_map(char::from_u32).collect();
        let mut ours = String::new();
        write_string(&every[1..], &mut ours);
        assert_eq!(ours, serde_json::to_string(&every[1..]).unwrap());
    }
}
