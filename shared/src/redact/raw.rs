//! Redaction in one pass over the bytes: `privateMetadata` as published (its JSON text, never
//! parsed into a tree) in, the BigQuery column out, already written as the JSON string literal the
//! row carries (`"{\"chatModel\":\"m\"}"`), with the redacted members left out at any depth.
//!
//! The input is JSON text that `serde_json` has already validated (a `RawValue`), so the walk
//! trusts its grammar and only tracks where it is: an explicit stack of open objects and arrays
//! (no recursion, whatever the nesting), the path of the current member (for the record of what
//! was removed), and the deepest nesting written (for BigQuery's JSON column limit). A member whose
//! key matches the redactor (by Unicode full case folding, after decoding any `\u` escapes in
//! the key) is skipped with its whole value, never copied.
//!
//! Everything kept is copied byte for byte (string escapes as published), minus insignificant
//! whitespace, and escaped once for the literal: `"` → `\"`, `\` → `\\` (nothing else needs it:
//! valid JSON text holds no raw control characters). As JSON the result equals what the tree
//! walk writes ([`super::Redactor::redact_private_tree`], the test oracle); its members stay in
//! document order, and the removed paths are recorded in document order.

use std::borrow::Cow;

use super::{Redactor, record};
use crate::limits::{MAX_REDACTED_PATHS, string_end};

/// The result of one walk.
pub struct Walked {
    /// The column as a JSON string literal, quotes included.
    pub literal: String,
    /// The removed paths (at most `limits::MAX_REDACTED_PATHS`).
    pub removed: Vec<String>,
    /// The deepest nesting of what was kept (`{}` is 1).
    pub depth: usize,
    /// The deepest nesting of the whole value, removed members included.
    pub whole_depth: usize,
}

enum Frame {
    /// An open object; whether a member has been written yet (for the commas).
    Object { wrote: bool },
    /// An open array: the index of the element being read.
    Array { index: usize },
}

enum Segment<'a> {
    Key(Cow<'a, str>),
    Index(usize),
}

enum State {
    /// A value starts here.
    Value,
    /// Inside an object: a member's key, or the closing brace.
    Member,
    /// A value ended: what comes next depends on the enclosing frame.
    After,
}

/// Walks `raw` (a JSON value; `privateMetadata` is an object) once. See the module doc.
pub fn walk(redactor: &Redactor, raw: &str) -> Walked {
    let b = raw.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(raw.len() + raw.len() / 16 + 2);
    out.push(b'"');
    let mut removed = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut path: Vec<Segment<'_>> = Vec::new();
    let (mut depth, mut deepest) = (0usize, 0usize);
    // The deepest nesting of the whole value, the removed members included.
    let mut whole = 0usize;
    let mut i = 0;
    let mut state = State::Value;
    while i <= b.len() {
        match state {
            State::Value => {
                i = skip_ws(b, i);
                match b.get(i) {
                    Some(b'{') => {
                        i += 1;
                        depth += 1;
                        deepest = deepest.max(depth);
                        out.push(b'{');
                        stack.push(Frame::Object { wrote: false });
                        state = State::Member;
                    }
                    Some(b'[') => {
                        i = skip_ws(b, i + 1);
                        depth += 1;
                        deepest = deepest.max(depth);
                        out.push(b'[');
                        if b.get(i) == Some(&b']') {
                            i += 1;
                            out.push(b']');
                            depth -= 1;
                            state = State::After;
                        } else {
                            stack.push(Frame::Array { index: 0 });
                            path.push(Segment::Index(0));
                        }
                    }
                    Some(b'"') => {
                        let end = string_end(b, i);
                        escape_into(&mut out, &b[i..end]);
                        i = end;
                        state = State::After;
                    }
                    Some(_) => {
                        let end = scalar_end(b, i);
                        out.extend_from_slice(&b[i..end]);
                        i = end;
                        state = State::After;
                    }
                    None => break,
                }
            }
            State::Member => {
                i = skip_ws(b, i);
                match b.get(i) {
                    Some(b'}') => {
                        i += 1;
                        out.push(b'}');
                        stack.pop();
                        depth -= 1;
                        state = State::After;
                    }
                    Some(b',') => i += 1,
                    Some(b'"') => {
                        let key_end = string_end(b, i);
                        let key_token = &raw[i..key_end];
                        let key = key_text(key_token);
                        // The colon, then the value.
                        i = skip_ws(b, key_end) + 1;
                        if redactor.matches(&key) {
                            if removed.len() < MAX_REDACTED_PATHS {
                                record(&mut removed, path_to(&path, &key));
                            }
                            let (end, nested) = skip_value(b, i);
                            whole = whole.max(depth + nested);
                            i = end;
                            continue;
                        }
                        if let Some(Frame::Object { wrote }) = stack.last_mut() {
                            if *wrote {
                                out.push(b',');
                            }
                            *wrote = true;
                        }
                        escape_into(&mut out, key_token.as_bytes());
                        out.push(b':');
                        path.push(Segment::Key(key));
                        state = State::Value;
                    }
                    _ => break,
                }
            }
            State::After => {
                i = skip_ws(b, i);
                match stack.last_mut() {
                    None => break,
                    Some(Frame::Object { .. }) => {
                        path.pop();
                        state = State::Member;
                    }
                    Some(Frame::Array { index }) => match b.get(i) {
                        Some(b',') => {
                            i += 1;
                            *index += 1;
                            let next = *index;
                            if let Some(last) = path.last_mut() {
                                *last = Segment::Index(next);
                            }
                            out.push(b',');
                            state = State::Value;
                        }
                        _ => {
                            i += 1;
                            out.push(b']');
                            stack.pop();
                            path.pop();
                            depth -= 1;
                        }
                    },
                }
            }
        }
    }
    out.push(b'"');
    // `out` is valid UTF-8: runs of `raw` (a `&str`) cut only at ASCII bytes (a quote, backslash,
    // bracket, brace, comma, colon or whitespace, never inside a multi-byte sequence), and ASCII
    // bytes written here. Checked all the same (no `unsafe`); a failure would be a bug here, and
    // keeps every character it can rather than drop the column.
    let literal = String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    debug_assert!(serde_json::from_str::<&serde_json::value::RawValue>(&literal).is_ok());
    Walked {
        literal,
        removed,
        depth: deepest,
        whole_depth: whole.max(deepest),
    }
}

/// The decoded text of a key token (quotes included in `token`): borrowed unless it has escapes.
fn key_text(token: &str) -> Cow<'_, str> {
    let inner = &token[1..token.len() - 1];
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    // Valid JSON (the input was validated), so this decodes; an odd key matches nothing.
    Cow::Owned(serde_json::from_str::<String>(token).unwrap_or_default())
}

/// The path of `key` under `path`, as [`super::Redactor::redact`] writes it.
fn path_to(path: &[Segment<'_>], key: &str) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Segment::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    if !out.is_empty() {
        out.push('.');
    }
    out.push_str(key);
    out
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The index just past the number, `true`, `false` or `null` starting at `i`.
fn scalar_end(b: &[u8], mut i: usize) -> usize {
    while let Some(&c) = b.get(i) {
        if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        i += 1;
    }
    i
}

/// The index just past the value starting at `i` (after whitespace), without recursion, and how
/// deep the value is nested (`{}` is 1, a scalar 0).
fn skip_value(b: &[u8], i: usize) -> (usize, usize) {
    let mut i = skip_ws(b, i);
    let (mut open, mut deepest) = (0usize, 0usize);
    loop {
        match b.get(i) {
            None => return (i, deepest),
            Some(b'"') => i = string_end(b, i),
            Some(b'{' | b'[') => {
                open += 1;
                deepest = deepest.max(open);
                i += 1;
            }
            Some(b'}' | b']') => {
                open = open.saturating_sub(1);
                i += 1;
            }
            Some(_) if open == 0 => return (scalar_end(b, i), 0),
            Some(_) => i += 1,
        }
        if open == 0 {
            return (i, deepest);
        }
    }
}

/// Appends `bytes` escaped for a JSON string literal: a backslash before each `"` and `\`.
fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut rest = bytes;
    while let Some(k) = memchr::memchr2(b'"', b'\\', rest) {
        out.extend_from_slice(&rest[..k]);
        out.push(b'\\');
        out.push(rest[k]);
        rest = &rest[k + 1..];
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal_value(w: &Walked) -> serde_json::Value {
        let text: String = serde_json::from_str(&w.literal).expect("a JSON string literal");
        serde_json::from_str(&text).expect("holding JSON")
    }

    #[test]
    fn members_are_left_out_at_any_depth_and_the_rest_copied() {
        let r = Redactor::from_list("diff").unwrap();
        let raw = r#" { "promptText" : "a \"q\" \\ b", "chatModel":"m",
            "nested":{"ResponseText":{"x":[1,2]},"keep":[ {"PROMPTTEXT":1}, 2.5e3, "s\u00e9", null, true ]},
            "Diff":[],"turns":[{"a":1},{"responsetext":"r","b":[[]]}], "\u0070romptText":"escaped key" } "#;
        let w = walk(&r, raw);
        assert_eq!(
            literal_value(&w),
            serde_json::json!({"chatModel": "m",
                "nested": {"keep": [{}, 2500.0, "sé", null, true]},
                "turns": [{"a": 1}, {"b": [[]]}]})
        );
        assert_eq!(
            w.removed,
            [
                "promptText",
                "nested.ResponseText",
                "nested.keep[0].PROMPTTEXT",
                "Diff",
                "turns[1].responsetext",
                "promptText"
            ]
        );
        assert_eq!(w.depth, 5, "turns[1].b[0]: {}", w.literal);
        assert!(
            !w.literal.contains("a \\\"q"),
            "a removed value is never copied"
        );
    }

    #[test]
    fn empty_containers_and_scalars_pass_through() {
        let r = Redactor::default();
        for (raw, depth) in [
            ("{}", 1),
            (r#"{"a":{}}"#, 2),
            (r#"{"a":[]}"#, 2),
            (r#"{"a":[[[]]]}"#, 4),
        ] {
            let w = walk(&r, raw);
            let text: String = serde_json::from_str(&w.literal).unwrap();
            assert_eq!(text, raw);
            assert_eq!(w.depth, depth, "{raw}");
        }
        let w = walk(&r, r#"{"promptText":{"deep":[{"x":"}]\""}]},"k":1}"#);
        let text: String = serde_json::from_str(&w.literal).unwrap();
        assert_eq!(text, r#"{"k":1}"#);
    }

    #[test]
    fn nesting_far_deeper_than_any_stack_is_walked_without_recursion() {
        let depth = 200_000;
        let raw = format!(
            r#"{{"k":{}{{"promptText":"s"}}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let w = walk(&Redactor::default(), &raw);
        assert_eq!((w.depth, w.whole_depth), (depth + 2, depth + 2));
        assert_eq!(w.removed.len(), 1);
        assert!(!w.literal.contains("promptText"));
        // A deep removed member counts for the whole value's nesting, not for the column's.
        let raw = format!(
            r#"{{"k":1,"promptText":{}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let w = walk(&Redactor::default(), &raw);
        assert_eq!((w.depth, w.whole_depth), (1, depth + 1));
    }
}
