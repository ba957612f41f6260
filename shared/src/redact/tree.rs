//! The test oracle of [`Redactor::redact_private`]: the same redaction over a parsed tree, while
//! serialising it. Built for tests and benches only (`test-support`), never into a service.

use std::cell::RefCell;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::{MAX_REDACTED_PATHS, Redactor, join, record};

impl Redactor {
    /// The test oracle of [`Redactor::redact_private`]: the same redaction over a parsed tree, while
    /// serialising it (keys in the tree's order, removed keys recorded before their siblings'
    /// descendants). Returns the redacted object's JSON text and the removed paths. Not used by the
    /// services.
    pub fn redact_private_tree(&self, original: &Map<String, Value>) -> (String, Vec<String>) {
        let walk = Walk {
            redactor: self,
            path: RefCell::new(Vec::new()),
            removed: RefCell::new(Vec::new()),
        };
        // Serialising JSON values to a string cannot fail.
        let json = serde_json::to_string(&Node {
            walk: &walk,
            value: NodeValue::Object(original),
        })
        .unwrap_or_default();
        (json, walk.removed.into_inner())
    }
}

/// The state of one redacting serialisation: where we are, and what was removed.
struct Walk<'a> {
    redactor: &'a Redactor,
    path: RefCell<Vec<Segment<'a>>>,
    removed: RefCell<Vec<String>>,
}

#[derive(Clone, Copy)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

impl Walk<'_> {
    /// The current path plus `key`, as [`Redactor::redact`] writes it.
    fn path_to(&self, key: &str) -> String {
        let mut out = String::new();
        for segment in self.path.borrow().iter() {
            match segment {
                Segment::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        join(&out, key)
    }
}

enum NodeValue<'a> {
    Object(&'a Map<String, Value>),
    Any(&'a Value),
}

/// A value serialised without the redacted keys of its objects, at any depth.
struct Node<'w, 'a> {
    walk: &'w Walk<'a>,
    value: NodeValue<'a>,
}

impl Serialize for Node<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Nesting can be as deep as the gateway allows (`limits::MAX_EVENT_DEPTH`): grow the
        // stack on the heap rather than overflow it.
        stacker::maybe_grow(
            crate::limits::STACK_RED_ZONE,
            crate::limits::STACK_GROWTH,
            || self.serialize_here(serializer),
        )
    }
}

impl Node<'_, '_> {
    fn serialize_here<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let walk = self.walk;
        let object = match self.value {
            NodeValue::Object(map) => map,
            NodeValue::Any(Value::Object(map)) => map,
            NodeValue::Any(Value::Array(items)) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for (i, item) in items.iter().enumerate() {
                    walk.path.borrow_mut().push(Segment::Index(i));
                    let done = seq.serialize_element(&Node {
                        walk,
                        value: NodeValue::Any(item),
                    });
                    walk.path.borrow_mut().pop();
                    done?;
                }
                return seq.end();
            }
            NodeValue::Any(other) => return other.serialize(serializer),
        };
        // Removed keys first, then the rest in order: the same order as `Redactor::redact`.
        for key in object.keys().filter(|k| walk.redactor.matches(k)) {
            if walk.removed.borrow().len() < MAX_REDACTED_PATHS {
                let path = walk.path_to(key);
                record(&mut walk.removed.borrow_mut(), path);
            }
        }
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in object.iter().filter(|(k, _)| !walk.redactor.matches(k)) {
            walk.path.borrow_mut().push(Segment::Key(key));
            let done = map.serialize_entry(
                key,
                &Node {
                    walk,
                    value: NodeValue::Any(value),
                },
            );
            walk.path.borrow_mut().pop();
            done?;
        }
        map.end()
    }
}
