//! Step 3, redact: remove the transcript keys from `privateMetadata` before a row is built.
//!
//! Every BigQuery row goes through here, whatever its route: a transcript can arrive unflagged
//! (`cody.fixup.response` sends `responseText` with no flag) or from a customer instance that
//! allowlisted `promptText`, and the BigQuery handlers cannot tell those apart from the attributes.
//!
//! Matching is on the key name, case-insensitively by Unicode full case folding (`unicase`: so
//! `responſeText` with U+017F and `STRASSE` for a configured `straße` match too), at any depth: keys of
//! nested objects and of objects inside arrays are removed too, with their whole value. The keys
//! are the convention's two transcript keys, `promptText` and `responseText`, always, plus any
//! listed in `REDACT_KEYS` (other `privateMetadata` keys that carry code or prose, see docs/design.md,
//! "Redaction"): the variable adds keys, it can never remove the transcript ones.
//!
//! The result lists the JSON paths that were removed, so each row records what was redacted
//! without recording any of it.
//!
//! The services redact in one pass over the published bytes ([`raw`]): `privateMetadata` is kept
//! as JSON text by the parser, and the walk writes the BigQuery column straight out as the JSON
//! string literal the row carries, leaving the redacted members out. The tree walks here
//! ([`Redactor::redact`] in place, [`Redactor::redact_private_tree`] while serialising) are the
//! oracle that walk is tested against (`shared/tests/redaction.rs`).

use serde_json::{Map, Value};

use crate::event::PrivateMetadata;
use crate::limits::{MAX_REDACTED_PATH_CHARS, MAX_REDACTED_PATHS};

mod raw;
/// The test oracle of the raw-byte redaction (tests and benches only).
#[cfg(any(test, feature = "test-support"))]
mod tree;

/// The transcript convention's keys: every [`Redactor`] removes them, whatever else it removes.
pub const TRANSCRIPT_KEYS: &[&str] = &["promptText", "responseText"];

/// Removes the transcript keys, and any extra configured keys, from JSON objects at any depth.
///
/// A `Redactor` that lacks [`TRANSCRIPT_KEYS`] cannot be built: the only constructors are
/// [`Redactor::default`] (the transcript keys) and [`Redactor::with_extra`] (the transcript keys
/// plus others), and the key list is private. Configuration can only ever add keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redactor {
    /// Lower-cased key names; always includes the transcript keys.
    keys: Vec<String>,
}

impl Redactor {
    /// The transcript keys plus `extra` (blank entries are ignored).
    pub fn with_extra<I, S>(extra: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut keys: Vec<String> = TRANSCRIPT_KEYS.iter().map(|k| k.to_lowercase()).collect();
        for key in extra {
            let key = key.as_ref().trim();
            if key.chars().any(char::is_control) {
                return Err("key names cannot contain control characters".into());
            }
            if !key.is_empty() {
                keys.push(key.to_lowercase());
            }
        }
        keys.sort();
        keys.dedup();
        Ok(Self { keys })
    }

    /// The transcript keys plus the comma-separated keys of `REDACT_KEYS`.
    pub fn from_list(list: &str) -> Result<Self, String> {
        Self::with_extra(list.split(','))
    }

    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    fn matches(&self, key: &str) -> bool {
        // Full case folding, not lower-casing: `ſ` (U+017F) and `K` (U+212A) fold to ASCII
        // letters. `unicase` compares ASCII-only pairs without folding tables.
        self.keys.iter().any(|k| unicase::eq(k.as_str(), key))
    }

    /// Step 3 for a row: `privateMetadata` without the configured keys, written in one pass over
    /// its published JSON text as the row's column (a JSON string literal), with the removed paths
    /// in document order and the nesting of what was kept. The original is neither copied nor
    /// changed (`to-gcs` and dead letters need it as published), and a removed value is never
    /// copied.
    pub fn redact_private(&self, private_metadata: Option<&PrivateMetadata>) -> Redacted {
        let Some(original) = private_metadata else {
            return Redacted::default();
        };
        let walked = raw::walk(self, original.json());
        Redacted {
            literal: Some(walked.literal),
            removed: walked.removed,
            depth: walked.depth,
            whole_depth: walked.whole_depth,
        }
    }

    /// Removes the configured keys from `object` (a `privateMetadata` object), in place. Returns the
    /// removed paths, e.g. `promptText`, `turns[2].responseText`, in document order.
    pub fn redact(&self, object: &mut Map<String, Value>) -> Vec<String> {
        let mut removed = Vec::new();
        self.redact_object(object, "", &mut removed);
        removed
    }

    fn redact_object(&self, object: &mut Map<String, Value>, path: &str, out: &mut Vec<String>) {
        let doomed: Vec<String> = object.keys().filter(|k| self.matches(k)).cloned().collect();
        for key in doomed {
            object.remove(&key);
            record(out, join(path, &key));
        }
        for (key, value) in object.iter_mut() {
            self.redact_value(value, &join(path, key), out);
        }
    }

    fn redact_value(&self, value: &mut Value, path: &str, out: &mut Vec<String>) {
        let (red_zone, growth) = (crate::limits::STACK_RED_ZONE, crate::limits::STACK_GROWTH);
        stacker::maybe_grow(red_zone, growth, || {
            self.redact_value_here(value, path, out)
        })
    }

    fn redact_value_here(&self, value: &mut Value, path: &str, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => self.redact_object(map, path, out),
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.redact_value(item, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
}

/// `privateMetadata` after redaction: only a [`Redactor`] makes one, and a BigQuery row can only
/// be built from one, so no row can skip redaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redacted {
    /// The column as a JSON string literal, quotes included (`None`: no `privateMetadata`).
    literal: Option<String>,
    removed: Vec<String>,
    depth: usize,
    /// The nesting of the original, removed members included.
    whole_depth: usize,
}

impl Redacted {
    /// The column as the row carries it: a JSON string literal holding the redacted object's JSON
    /// text (`None` when the event had no `privateMetadata`).
    pub fn literal(&self) -> Option<&str> {
        self.literal.as_deref()
    }

    /// The redacted object's JSON text (decoded from the literal; for tests and tools).
    pub fn json(&self) -> Option<String> {
        serde_json::from_str(self.literal.as_deref()?).ok()
    }

    /// The removed paths, e.g. `promptText`, `turns[2].responseText`, in document order.
    pub fn removed(&self) -> &[String] {
        &self.removed
    }

    /// How deep the redacted object is nested (`{}` is 1).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// How deep the original object was nested, removed members included.
    pub fn whole_depth(&self) -> usize {
        self.whole_depth
    }

    pub fn into_parts(self) -> (Option<String>, Vec<String>, usize) {
        (self.literal, self.removed, self.depth)
    }
}

impl Default for Redactor {
    /// The transcript keys only.
    fn default() -> Self {
        Self {
            keys: TRANSCRIPT_KEYS.iter().map(|k| k.to_lowercase()).collect(),
        }
    }
}

/// Records a removed path: at most [`MAX_REDACTED_PATHS`] of them, each cut to
/// [`MAX_REDACTED_PATH_CHARS`] (a deep event with the key at every level would otherwise record
/// paths quadratic in its size). The keys themselves are removed all the same.
fn record(out: &mut Vec<String>, mut path: String) {
    if out.len() >= MAX_REDACTED_PATHS {
        return;
    }
    if let Some((cut, _)) = path.char_indices().nth(MAX_REDACTED_PATH_CHARS) {
        path.truncate(cut);
        path.push('…');
    }
    out.push(path);
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn removes_keys_at_any_depth_and_in_any_case() {
        let mut m = obj(json!({
            "promptText": "a", "chatModel": "m",
            "nested": {"ResponseText": "b", "keep": 1},
            "turns": [{"PROMPTTEXT": "c"}, {"other": [{"responsetext": {"deep": "d"}}]}],
        }));
        let removed = Redactor::default().redact(&mut m);
        assert_eq!(
            m,
            obj(json!({"chatModel": "m", "nested": {"keep": 1},
                       "turns": [{}, {"other": [{}]}]}))
        );
        assert_eq!(
            removed,
            vec![
                "promptText",
                "nested.ResponseText",
                "turns[0].PROMPTTEXT",
                "turns[1].other[0].responsetext"
            ]
        );
    }

    #[test]
    fn extra_keys_add_to_the_transcript_keys_and_never_replace_them() {
        for list in ["", " ", ",,", "diff", "PROMPTTEXT", "diff, Prediction ,"] {
            let r = Redactor::from_list(list).unwrap();
            let mut m = obj(json!({"promptText": "p", "ResponseText": "r", "keep": 1}));
            r.redact(&mut m);
            assert_eq!(m, obj(json!({"keep": 1})), "REDACT_KEYS={list:?}");
        }
        let r = Redactor::from_list("diff, Prediction").unwrap();
        assert_eq!(
            r.keys(),
            ["diff", "prediction", "prompttext", "responsetext"]
        );
        let mut m = obj(json!({"diff": "x", "promptText": "t", "Prediction": "y", "k": 0}));
        assert_eq!(r.redact(&mut m), vec!["Prediction", "diff", "promptText"]);
        assert_eq!(m, obj(json!({"k": 0})));
        assert!(Redactor::from_list("a\nb").is_err());
        assert_eq!(Redactor::from_list("").unwrap(), Redactor::default());
    }

    #[test]
    fn the_single_pass_the_tree_walk_and_in_place_redaction_agree() {
        let r = Redactor::from_list("diff").unwrap();
        let original = obj(json!({
            "promptText": "a", "chatModel": "m", "Diff": [1, {"diff": 2}],
            "nested": {"ResponseText": "b", "keep": [{"promptText": {"x": 1}}, 3, "s"]},
            "turns": [{"PROMPTTEXT": "c"}, {"other": [{"responsetext": {"deep": "d"}}]}],
        }));
        let mut in_place = original.clone();
        let removed = r.redact(&mut in_place);
        let (tree_json, tree_removed) = r.redact_private_tree(&original);
        let tree: Value = serde_json::from_str(&tree_json).unwrap();
        assert_eq!(tree, Value::Object(in_place.clone()));
        assert_eq!(tree_removed, removed);
        let text = serde_json::to_string(&original).unwrap();
        let single = r.redact_private(Some(&PrivateMetadata::from_json(&text).unwrap()));
        let json: Value = serde_json::from_str(&single.json().unwrap()).unwrap();
        assert_eq!(json, Value::Object(in_place));
        let (mut a, mut b) = (single.removed().to_vec(), removed);
        a.sort();
        b.sort();
        assert_eq!(
            a, b,
            "the same paths (the single pass records them in document order)"
        );
        assert_eq!(r.redact_private(None), Redacted::default());
    }

    #[test]
    fn unicode_case_folding() {
        let r = Redactor::with_extra(["straße"]).unwrap();
        let mut m = obj(json!({"STRAßE": 1, "STRASSE": 3, "keep": 2}));
        assert_eq!(r.redact(&mut m), vec!["STRASSE", "STRAßE"]);
        assert_eq!(m, obj(json!({"keep": 2})));
    }

    #[test]
    fn keys_that_fold_to_the_transcript_keys_are_removed_by_every_walk() {
        // U+017F LATIN SMALL LETTER LONG S folds to `s`, U+212A KELVIN SIGN to `k`; lower-casing
        // leaves `ſ` as it is, so `responſeText` went to BigQuery.
        let r = Redactor::default();
        let original =
            obj(json!({"responſeText": "a", "nested": [{"promptText": "b"}], "keep": 1}));
        let mut in_place = original.clone();
        assert_eq!(
            r.redact(&mut in_place),
            vec!["responſeText", "nested[0].promptText"]
        );
        assert_eq!(in_place, obj(json!({"nested": [{}], "keep": 1})));
        let text = serde_json::to_string(&original).unwrap();
        let single = r.redact_private(Some(&PrivateMetadata::from_json(&text).unwrap()));
        let json: Value = serde_json::from_str(&single.json().unwrap()).unwrap();
        assert_eq!(json, Value::Object(in_place));
        // Not folded together: other letters that merely look alike.
        let mut m = obj(json!({"ｐromptText": 1, "promptTеxt": 2}));
        assert!(
            r.redact(&mut m).is_empty(),
            "fullwidth p and Cyrillic е are other keys"
        );
    }
}
