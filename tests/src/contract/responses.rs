//! The response side of the contract: every field a response type of the pipeline deserialises
//! must be declared in the response schema of the method it reads.
//!
//! The fields come from the types themselves, not from a list: [`fields_of`] runs a type's
//! `Deserialize` against a tracing deserializer that offers every field the type asks for and
//! records its JSON path (`items[].name`, `rows[].f[].v`, `metadata{}`). That covers the
//! pipeline's own types and those of `gcp-bigquery-client` alike. [`undeclared`] then walks each
//! path down the discovery schema.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, Visitor};
use serde_json::Value;

use super::Discovery;

/// The JSON paths `T` reads: struct fields joined by `.`, `[]` for an array's elements, `{}` for a
/// map's values. Recursive types are followed to a fixed depth.
pub fn fields_of<T: DeserializeOwned>() -> Result<BTreeSet<String>, String> {
    let mut out = BTreeSet::new();
    let tracer = Tracer {
        path: String::new(),
        depth: 0,
        out: &mut out,
    };
    T::deserialize(tracer).map_err(|e| e.0)?;
    Ok(out)
}

/// The paths of `fields` that `schema` (of `api`) does not declare.
pub fn undeclared(
    discovery: &Discovery,
    api: &str,
    schema: &str,
    fields: &BTreeSet<String>,
) -> Result<Vec<String>, String> {
    let root = discovery.schema(api, schema).map_err(|e| e.to_string())?;
    Ok(fields
        .iter()
        .filter(|path| !declared(discovery, api, root, path))
        .cloned()
        .collect())
}

fn declared(discovery: &Discovery, api: &str, root: &Value, path: &str) -> bool {
    let mut schema = discovery.resolve(api, root);
    for step in steps(path) {
        let next = match step {
            Step::Items => &schema["items"],
            Step::Values => &schema["additionalProperties"],
            Step::Field(name) => &schema["properties"][name],
        };
        if next.is_null() {
            // `type: any` (a JSON value) holds whatever is below it.
            return schema["type"] == "any";
        }
        schema = discovery.resolve(api, next);
    }
    true
}

enum Step<'a> {
    Field(&'a str),
    Items,
    Values,
}

fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let name = part.trim_end_matches("[]").trim_end_matches("{}");
        if !name.is_empty() {
            out.push(Step::Field(name));
        }
        let mut rest = &part[name.len()..];
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("[]") {
                out.push(Step::Items);
                rest = r;
            } else if let Some(r) = rest.strip_prefix("{}") {
                out.push(Step::Values);
                rest = r;
            } else {
                break;
            }
        }
    }
    out
}

/// How deep a recursive type is followed.
const MAX_DEPTH: usize = 8;

#[derive(Debug)]
struct TraceError(String);

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TraceError {}

impl de::Error for TraceError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        TraceError(msg.to_string())
    }
}

/// Offers every field, one element per array and one entry per map, and records the paths.
struct Tracer<'a> {
    path: String,
    depth: usize,
    out: &'a mut BTreeSet<String>,
}

impl<'a> Tracer<'a> {
    fn child(&mut self, suffix: &str) -> Tracer<'_> {
        Tracer {
            path: format!("{}{suffix}", self.path),
            depth: self.depth + 1,
            out: self.out,
        }
    }

    fn leaf(self) {
        if !self.path.is_empty() {
            self.out.insert(self.path);
        }
    }
}

macro_rules! leaf {
    ($($method:ident => $visit:ident($($value:expr)?)),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
            self.leaf();
            visitor.$visit($($value)?)
        })*
    };
}

impl<'de> Deserializer<'de> for Tracer<'_> {
    type Error = TraceError;

    leaf! {
        deserialize_any => visit_unit(),
        deserialize_ignored_any => visit_unit(),
        deserialize_unit => visit_unit(),
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i8(0),
        deserialize_i16 => visit_i16(0),
        deserialize_i32 => visit_i32(0),
        deserialize_i64 => visit_i64(0),
        deserialize_u8 => visit_u8(0),
        deserialize_u16 => visit_u16(0),
        deserialize_u32 => visit_u32(0),
        deserialize_u64 => visit_u64(0),
        deserialize_f32 => visit_f32(0.0),
        deserialize_f64 => visit_f64(0.0),
        deserialize_char => visit_char('0'),
        deserialize_str => visit_str("0"),
        deserialize_string => visit_string("0".to_string()),
        deserialize_bytes => visit_bytes(&[]),
        deserialize_byte_buf => visit_byte_buf(Vec::new()),
        deserialize_identifier => visit_str(""),
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        if self.depth > MAX_DEPTH {
            return visitor.visit_none();
        }
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.leaf();
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, TraceError> {
        let n = usize::from(self.depth <= MAX_DEPTH);
        let element = self.child("[]");
        visitor.visit_seq(Elements {
            left: n,
            tracer: Some(element),
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, TraceError> {
        let n = usize::from(self.depth <= MAX_DEPTH);
        let value = self.child("{}");
        visitor.visit_map(Entries {
            fields: Vec::new(),
            left: n,
            value: Some(value),
            prefix: String::new(),
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let prefix = if self.path.is_empty() {
            String::new()
        } else {
            format!("{}.", self.path)
        };
        visitor.visit_map(Entries {
            fields: fields.to_vec(),
            left: fields.len(),
            value: Some(Tracer {
                path: String::new(),
                depth: self.depth + 1,
                out: self.out,
            }),
            prefix,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.leaf();
        let first = variants.first().copied().unwrap_or_default();
        visitor.visit_enum(first.into_deserializer())
    }
}

/// One element of a traced array.
struct Elements<'a> {
    left: usize,
    tracer: Option<Tracer<'a>>,
}

impl<'de> de::SeqAccess<'de> for Elements<'_> {
    type Error = TraceError;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, TraceError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        match self.tracer.take() {
            Some(t) => seed.deserialize(t).map(Some),
            None => Ok(None),
        }
    }
}

/// A traced struct's fields, or a traced map's one entry.
struct Entries<'a> {
    /// The struct's field names (empty for a map).
    fields: Vec<&'static str>,
    left: usize,
    /// The tracer the values are read with (re-pathed per field).
    value: Option<Tracer<'a>>,
    prefix: String,
}

impl<'de> de::MapAccess<'de> for Entries<'_> {
    type Error = TraceError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, TraceError> {
        if self.left == 0 {
            return Ok(None);
        }
        let key = if self.fields.is_empty() {
            "key"
        } else {
            self.fields[self.fields.len() - self.left]
        };
        seed.deserialize(de::value::StrDeserializer::<TraceError>::new(key))
            .map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, TraceError> {
        let field = if self.fields.is_empty() {
            None
        } else {
            Some(self.fields[self.fields.len() - self.left])
        };
        self.left -= 1;
        let Some(tracer) = self.value.as_mut() else {
            return Err(TraceError("no tracer".into()));
        };
        let path = match field {
            Some(f) => {
                let path = format!("{}{f}", self.prefix);
                tracer.out.insert(path.clone());
                path
            }
            None => tracer.path.clone(),
        };
        let value = Tracer {
            path,
            depth: tracer.depth,
            out: tracer.out,
        };
        seed.deserialize(value)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use gcp_bigquery_client::model as bq;
    use pipeline::google::{CALLS, Call, calls, pubsub, storage};
    use serde::Deserialize;

    use super::*;

    /// The type each call's answer is read into; the calls whose answer no type of the pipeline
    /// or of `gcp-bigquery-client` reads are listed after it, with the reason.
    fn readers() -> Vec<(Call, Result<BTreeSet<String>, String>)> {
        vec![
            (calls::OBJECTS_LIST, fields_of::<storage::Objects>()),
            (
                calls::BUCKETS_TEST_IAM_PERMISSIONS,
                fields_of::<storage::TestIamPermissionsResponse>(),
            ),
            (calls::BUCKETS_GET, fields_of::<storage::BucketResource>()),
            (calls::TABLES_GET, fields_of::<bq::table::Table>()),
            (
                calls::TABLEDATA_INSERT_ALL,
                fields_of::<bq::table_data_insert_all_response::TableDataInsertAllResponse>(),
            ),
            (
                calls::JOBS_QUERY,
                fields_of::<bq::query_response::QueryResponse>(),
            ),
            (
                calls::JOBS_GET_QUERY_RESULTS,
                fields_of::<bq::get_query_results_response::GetQueryResultsResponse>(),
            ),
            (
                calls::SUBSCRIPTIONS_PULL,
                fields_of::<pubsub::PullResponse>(),
            ),
            (
                calls::SUBSCRIPTIONS_ACKNOWLEDGE,
                fields_of::<pubsub::Empty>(),
            ),
            (
                calls::SUBSCRIPTIONS_MODIFY_ACK_DEADLINE,
                fields_of::<pubsub::Empty>(),
            ),
        ]
    }

    /// Answers read by Google's own generated clients (or not as JSON at all).
    const NOT_OURS: [(Call, &str); 5] = [
        (
            calls::OBJECTS_INSERT,
            "read by google-cloud-storage, generated from Google's protos",
        ),
        (
            calls::OBJECTS_GET,
            "alt=media: the object's bytes, not JSON",
        ),
        (
            calls::TOPICS_PUBLISH,
            "gRPC, read by google-cloud-pubsub, generated from Google's protos",
        ),
        (
            calls::STORAGE_WRITE_APPEND_ROWS,
            "gRPC, read by google-cloud-bigquery, generated from Google's protos",
        ),
        (
            calls::STORAGE_WRITE_GET_WRITE_STREAM,
            "gRPC, read by google-cloud-bigquery, generated from Google's protos",
        ),
    ];

    /// Where `gcp-bigquery-client` 0.28's models depart from Google's description, in fields the
    /// pipeline never reads (of a table it reads `schema` only). Listed so that a new departure,
    /// after an upgrade, fails this test, and a fixed one is noticed.
    const CRATE_DEPARTURES: [&str; 1] = [
        "bigquery.tables.get: `externalDataConfiguration.googleSheetsOptions.skip_leading_rows` is not in Table",
    ];

    #[test]
    fn every_response_field_the_pipeline_reads_is_declared() {
        let d = crate::contract::discovery().unwrap();
        let readers = readers();
        for call in CALLS {
            let covered =
                readers.iter().any(|(c, _)| *c == call) || NOT_OURS.iter().any(|(c, _)| *c == call);
            assert!(covered, "{}: which type reads its answer?", call.id);
        }
        let mut problems = Vec::new();
        for (call, fields) in readers {
            let fields = fields.unwrap_or_else(|e| panic!("{}: {e}", call.id));
            assert!(!fields.is_empty() || call.id.contains("ck"), "{}", call.id);
            let method = d.method(call.api(), call.id).unwrap();
            let schema = method.response.clone().unwrap_or_else(|| "Empty".into());
            for path in undeclared(&d, call.api(), &schema, &fields).unwrap() {
                problems.push(format!("{}: `{path}` is not in {schema}", call.id));
            }
        }
        let known: Vec<String> = CRATE_DEPARTURES.iter().map(|s| s.to_string()).collect();
        let new: Vec<&String> = problems.iter().filter(|p| !known.contains(p)).collect();
        assert!(new.is_empty(), "{new:#?}");
        let gone: Vec<&String> = known.iter().filter(|k| !problems.contains(k)).collect();
        assert!(
            gone.is_empty(),
            "fixed upstream, remove from CRATE_DEPARTURES: {gone:#?}"
        );
    }

    #[test]
    fn a_field_google_does_not_send_is_found() {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        #[allow(dead_code)]
        struct Misread {
            items: Vec<storage::ListedObject>,
            next_page_tokens: Option<String>,
        }
        let d = crate::contract::discovery().unwrap();
        let fields = fields_of::<Misread>().unwrap();
        let wrong = undeclared(&d, "storage", "Objects", &fields).unwrap();
        assert_eq!(wrong, ["nextPageTokens"]);
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Page {
        items: Vec<Item>,
        next_page_token: Option<String>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Item {
        name: String,
        metadata: BTreeMap<String, String>,
        any: Option<serde_json::Value>,
    }

    #[test]
    fn the_tracer_finds_every_path_a_type_reads() {
        let found = fields_of::<Page>().unwrap();
        let expected: BTreeSet<String> = [
            "items",
            "items[].name",
            "items[].metadata",
            "items[].metadata{}",
            "items[].any",
            "nextPageToken",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert!(expected.is_subset(&found), "{found:?}");
    }
}
