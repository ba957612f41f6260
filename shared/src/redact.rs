//! Step 3, redact: remove the transcript keys from `privateMetadata` before a row is built.
//!
//! Every BigQuery row goes through here, whatever its route: a transcript can arrive unflagged
//! (`cody.fixup.response` sends `responseText` with no flag) or from a customer instance that
//! allowlisted `promptText`, and the BigQuery handlers cannot tell those apart from the attributes.
//!
//! Matching is on the key name, case-insensitively (Unicode lower case), at any depth: keys of
//! nested objects and of objects inside arrays are removed too, with their whole value. The keys
//! are the convention's two transcript keys, `promptText` and `responseText`, always, plus any
//! listed in `REDACT_KEYS` (other `privateMetadata` keys that carry code or prose, see the README,
//! "Redaction"): the variable adds keys, it can never remove the transcript ones.
//!
//! The result lists the JSON paths that were removed, so each row records what was redacted
//! without recording any of it.

use serde_json::{Map, Value};

/// The default keys: the transcript convention's `promptText` and `responseText`.
pub const DEFAULT_REDACT_KEYS: &[&str] = &["promptText", "responseText"];

/// Removes a configured set of keys from JSON objects at any depth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redactor {
    /// Lower-cased key names.
    keys: Vec<String>,
}

impl Redactor {
    /// At least one non-empty key is required: a redactor that removes nothing is a configuration
    /// error, never a default.
    pub fn new<I, S>(keys: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut lowered: Vec<String> = keys
            .into_iter()
            .map(|k| k.as_ref().trim().to_lowercase())
            .filter(|k| !k.is_empty())
            .collect();
        lowered.sort();
        lowered.dedup();
        if lowered.is_empty() {
            return Err("must name at least one key to redact".into());
        }
        Ok(Self { keys: lowered })
    }

    /// The default keys plus the comma-separated `extra` ones (`REDACT_KEYS`).
    pub fn with_defaults(extra: &str) -> Result<Self, String> {
        if extra.chars().any(char::is_control) {
            return Err("key names cannot contain control characters".into());
        }
        Self::new(DEFAULT_REDACT_KEYS.iter().copied().chain(extra.split(',')))
    }

    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    fn matches(&self, key: &str) -> bool {
        // Cheap ASCII check first; full Unicode lower-casing only when it could matter.
        self.keys.iter().any(|k| k.eq_ignore_ascii_case(key))
            || (!key.is_ascii() && self.keys.contains(&key.to_lowercase()))
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
            out.push(join(path, &key));
        }
        for (key, value) in object.iter_mut() {
            self.redact_value(value, &join(path, key), out);
        }
    }

    fn redact_value(&self, value: &mut Value, path: &str, out: &mut Vec<String>) {
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

impl Default for Redactor {
    fn default() -> Self {
        Self::new(DEFAULT_REDACT_KEYS).expect("the default keys are not empty")
    }
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
    fn keys_are_configurable_and_never_empty() {
        assert!(Redactor::new(Vec::<String>::new()).is_err());
        assert!(Redactor::new([" ", ""]).is_err());
        let r = Redactor::new(["diff", " prediction "]).unwrap();
        let mut m = obj(json!({"diff": "x", "promptText": "kept", "Prediction": "y"}));
        assert_eq!(r.redact(&mut m), vec!["Prediction", "diff"]);
        assert_eq!(m, obj(json!({"promptText": "kept"})));
    }

    #[test]
    fn unicode_case_folding() {
        let r = Redactor::new(["straße"]).unwrap();
        let mut m = obj(json!({"STRAßE": 1, "keep": 2}));
        assert_eq!(r.redact(&mut m), vec!["STRAßE"]);
    }
}
