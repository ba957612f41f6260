//! Redaction over arbitrary JSON: the configured keys are planted at random depths, in random
//! letter cases (and with letters swapped for others that fold to them, or only look like them),
//! inside objects and arrays; after redaction no such key and no value that was under one
//! survives, and everything else does.
//!
//! Which keys are redacted is decided here independently of the redactor: by `caseless`'s
//! Unicode default case folding (the redactor uses `unicase`), so a mistake the redactor and its
//! tree oracle share still shows.

use pipeline::event::PrivateMetadata;
use pipeline::redact::Redactor;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        "[a-z ]{0,8}".prop_map(Value::String),
        // Quotes, backslashes, control characters, any Unicode: escaping for the row's literal.
        ".{0,6}".prop_map(Value::String),
        // Fractions that parse back exactly (serde_json's default float parsing may be 1 ULP off
        // for others, which is not what this test is about).
        any::<i32>().prop_map(|n| json!(f64::from(n) / 64.0)),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z]{1,6}",
        1 => Just("promptText".to_string()),
        1 => Just("responseText".to_string()),
        1 => Just("chatModel".to_string()),
    ]
    .prop_flat_map(|k| {
        // Random letter case for every key, and now and then a letter swapped for another that
        // folds to it (`ſ` U+017F → s, `K` U+212A → k) or only looks like it (Cyrillic `е`,
        // fullwidth `ｐ`: not the same key).
        proptest::collection::vec(0..8u8, k.len()).prop_map(move |how| {
            k.chars()
                .zip(how)
                .map(|(c, h)| match (c.to_ascii_lowercase(), h) {
                    ('s', 0) => 'ſ',
                    ('k', 0) => '\u{212A}',
                    ('e', 0) => 'е',
                    ('p', 0) => 'ｐ',
                    (_, h) if h % 2 == 1 => c.to_ascii_uppercase(),
                    _ => c.to_ascii_lowercase(),
                })
                .collect()
        })
    })
}

fn json_tree() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// The oracle's own comparison: Unicode default case folding by another crate.
fn is_redacted_key(k: &str) -> bool {
    use caseless::Caseless;
    let folds_to = |key: &str| {
        k.chars()
            .default_case_fold()
            .eq(key.chars().default_case_fold())
    };
    folds_to("promptText") || folds_to("responseText")
}

#[test]
fn the_oracle_folds_case() {
    for key in ["promptText", "PROMPTTEXT", "responſeText", "RESPONSETEXT"] {
        assert!(is_redacted_key(key), "{key}");
    }
    for key in ["prompt", "ｐromptText", "promptTеxt", "promptTexts"] {
        assert!(!is_redacted_key(key), "{key}");
    }
}

/// Replaces every string leaf with a marker: `SECRET-n` under a redacted key, `KEEP-n` elsewhere.
/// Returns how many KEEP markers there are and how many redacted keys.
fn plant(v: &mut Value, under_secret: bool, n: &mut usize, keeps: &mut usize, keys: &mut usize) {
    match v {
        Value::String(s) => {
            *n += 1;
            *s = if under_secret {
                format!("SECRET-{n}")
            } else {
                format!("KEEP-{n}")
            };
            if !under_secret {
                *keeps += 1;
            }
        }
        Value::Array(items) => {
            for i in items {
                plant(i, under_secret, n, keeps, keys);
            }
        }
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                let secret = is_redacted_key(k);
                if secret && !under_secret {
                    *keys += 1;
                    // Make sure something secret is under every redacted key.
                    if !v.is_string() {
                        *v = json!([v.clone(), "x"]);
                    }
                }
                plant(v, under_secret || secret, n, keeps, keys);
            }
        }
        _ => {}
    }
}

fn count(v: &Value, prefix: &str) -> usize {
    match v {
        Value::String(s) => usize::from(s.starts_with(prefix)),
        Value::Array(a) => a.iter().map(|v| count(v, prefix)).sum(),
        Value::Object(m) => m.values().map(|v| count(v, prefix)).sum(),
        _ => 0,
    }
}

fn any_redacted_key(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.iter().any(any_redacted_key),
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| is_redacted_key(k) || any_redacted_key(v)),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_value_of_a_redacted_key_survives(entries in proptest::collection::vec((key(), json_tree()), 0..8), pretty in any::<bool>()) {
        let mut root = Value::Object(entries.into_iter().collect::<Map<_, _>>());
        let (mut n, mut keeps, mut keys) = (0, 0, 0);
        plant(&mut root, false, &mut n, &mut keeps, &mut keys);
        let Value::Object(mut map) = root else { unreachable!() };

        // The services' one-pass redaction over the published text, compact or not, gives what
        // the tree walk gives (the oracle), which gives exactly the in-place result.
        let r = Redactor::default();
        let (tree_json, tree_removed) = r.redact_private_tree(&map);
        let text = if pretty { serde_json::to_string_pretty(&map) } else { serde_json::to_string(&map) }.unwrap();
        let for_row = r.redact_private(Some(&PrivateMetadata::from_json(&text).unwrap()));
        let removed = r.redact(&mut map);
        let tree: Value = serde_json::from_str(&tree_json).unwrap();
        prop_assert_eq!(&tree, &Value::Object(map.clone()));
        prop_assert_eq!(&tree_removed, &removed);
        let row_json: Value = serde_json::from_str(&for_row.json().unwrap_or_default()).unwrap_or(Value::Null);
        prop_assert_eq!(&row_json, &tree);
        // The same paths; the one pass records them in document order.
        let (mut a, mut b) = (for_row.removed().to_vec(), tree_removed.clone());
        a.sort();
        b.sort();
        prop_assert_eq!(a, b);
        prop_assert_eq!(for_row.depth(), pipeline::limits::json_depth(tree_json.as_bytes()));
        let after = Value::Object(map);

        prop_assert!(!any_redacted_key(&after), "a redacted key survived: {after}");
        prop_assert_eq!(count(&after, "SECRET-"), 0, "a redacted value survived: {}", after);
        prop_assert_eq!(count(&after, "KEEP-"), keeps, "a value that is not redacted was lost");
        prop_assert_eq!(removed.len(), keys);
        for path in &removed {
            let last = path.rsplit('.').next().unwrap_or(path);
            prop_assert!(is_redacted_key(last), "path {path}");
        }
    }
}
