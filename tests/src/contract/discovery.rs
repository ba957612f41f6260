//! Google's discovery documents ([`tests/discovery/`](../../discovery)), read as data: which
//! method a request calls, and whether its query and body are what that method declares.
//!
//! A request is matched by HTTP method and path against every method's `flatPath` (or `path`,
//! under the document's `servicePath`) and its media-upload paths. A `{name}` variable matches one path
//! segment, `{+name}` one or more (RFC 6570), so an object name sent with a raw `/` where it must be
//! `%2F` does not match. Of several matches the one with the most literal characters wins.
//!
//! Checks (each failure names the method and the parameter or field):
//! - every query parameter is the method's (location `query`) or one of the document's global
//!   parameters, given once unless `repeated`, with a value of the declared type and enum;
//! - every body field exists in the request schema at its place, with the declared JSON type
//!   (`$ref`s resolved, maps through `additionalProperties`, arrays through `items`). A string
//!   `int64`/`uint64` also accepts a JSON number and an `integer` a numeric string, as Google's
//!   JSON parser does; `null` is accepted anywhere (it means "unset");
//! - a `multipart/related` upload's first part (the object's metadata) against the request schema.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};

/// The discovery documents, by API name: the pipeline's calls are held to the first three.
pub const DOCUMENTS: [(&str, &str); 4] = [
    ("bigquery", "bigquery.v2.json"),
    ("storage", "storage.v1.json"),
    ("pubsub", "pubsub.v1.json"),
    // Not called by the pipeline: Terraform's dashboard JSON is held to its `Dashboard` schema.
    ("monitoring", "monitoring.v1.json"),
];

/// Every method of the APIs.
pub struct Discovery {
    apis: Vec<Api>,
}

struct Api {
    name: String,
    doc: Value,
    methods: Vec<Method>,
}

/// One method of a discovery document.
#[derive(Debug, Clone)]
pub struct Method {
    /// `storage.objects.list`, `bigquery.tabledata.insertAll`, …
    pub id: String,
    pub http_method: String,
    /// Absolute path templates: the method's own (`/` + servicePath + path) and its upload paths.
    templates: Vec<String>,
    parameters: Map<String, Value>,
    request: Option<String>,
    pub response: Option<String>,
    upload_protocols: Vec<String>,
}

/// A request as it was sent (path and query undecoded).
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Discovery {
    /// Reads the documents from `dir` (the repository's `tests/discovery`).
    pub fn load(dir: &Path) -> Result<Self> {
        let mut apis = Vec::new();
        for (name, file) in DOCUMENTS {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let doc: Value = serde_json::from_str(&text)?;
            let mut methods = Vec::new();
            let service_path = doc["servicePath"].as_str().unwrap_or_default().to_string();
            collect_methods(&doc["resources"], &service_path, &mut methods);
            if methods.is_empty() {
                bail!("{} declares no methods", path.display());
            }
            apis.push(Api {
                name: name.to_string(),
                doc,
                methods,
            });
        }
        Ok(Self { apis })
    }

    /// The documents of this repository.
    pub fn of_repo() -> Result<Self> {
        Self::load(&crate::emulators::repo_root().join("tests/discovery"))
    }

    fn api(&self, name: &str) -> Result<&Api> {
        self.apis
            .iter()
            .find(|a| a.name == name)
            .with_context(|| format!("no discovery document for `{name}`"))
    }

    /// `rootUrl` + `servicePath` of an API, as the document declares it.
    pub fn base_url(&self, api: &str) -> Result<String> {
        let doc = &self.api(api)?.doc;
        Ok(format!(
            "{}{}",
            doc["rootUrl"].as_str().unwrap_or_default(),
            doc["servicePath"].as_str().unwrap_or_default()
        ))
    }

    /// The method with this id.
    pub fn method(&self, api: &str, id: &str) -> Result<&Method> {
        self.api(api)?
            .methods
            .iter()
            .find(|m| m.id == id)
            .with_context(|| format!("{api} declares no method `{id}`"))
    }

    /// The response schema's name of a method, resolved.
    pub fn schema(&self, api: &str, name: &str) -> Result<&Value> {
        let s = &self.api(api)?.doc["schemas"][name];
        if s.is_null() {
            bail!("{api} declares no schema `{name}`");
        }
        Ok(s)
    }

    /// The method `request` calls on `api`, and every way it departs from the method's
    /// declaration (empty: it conforms). `Err` when no method matches at all.
    pub fn check(&self, api: &str, request: &Request) -> Result<(&Method, Vec<String>)> {
        let api = self.api(api)?;
        let method = api
            .methods
            .iter()
            .filter(|m| m.http_method.eq_ignore_ascii_case(&request.method))
            .filter_map(|m| m.matches(&request.path).map(|literal| (literal, m)))
            .max_by_key(|(literal, _)| *literal)
            .map(|(_, m)| m)
            .with_context(|| {
                format!(
                    "{} {} is not a method of {}'s discovery document",
                    request.method, request.path, api.name
                )
            })?;
        let mut problems = Vec::new();
        check_query(api, method, &request.query, &mut problems);
        check_body(api, method, request, &mut problems);
        let problems = problems
            .into_iter()
            .map(|p| format!("{}: {p}", method.id))
            .collect();
        Ok((method, problems))
    }

    /// The discovery method a gRPC call stands for: `/google.pubsub.v1.Publisher/Publish` is the
    /// one method of `api` named `publish`. (The REST and gRPC surfaces share their method names.)
    pub fn grpc_method(&self, api: &str, path: &str) -> Result<String> {
        let rpc = path.rsplit('/').next().unwrap_or_default();
        let mut chars = rpc.chars();
        let name: String = match chars.next() {
            Some(first) => first.to_lowercase().chain(chars).collect(),
            None => bail!("gRPC path `{path}` names no method"),
        };
        let suffix = format!(".{name}");
        let found: Vec<&Method> = self
            .api(api)?
            .methods
            .iter()
            .filter(|m| m.id.ends_with(&suffix))
            .collect();
        match found.as_slice() {
            [one] => Ok(one.id.clone()),
            [] => bail!("gRPC {path}: {api} declares no method `{name}`"),
            _ => bail!("gRPC {path}: several methods of {api} are named `{name}`"),
        }
    }

    /// Every way `value` departs from `schema` of `api` (for response shapes read by the code).
    pub fn conform(&self, api: &str, schema: &Value, value: &Value, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if let Ok(api) = self.api(api) {
            check_value(&api.doc, schema, value, at, &mut problems);
        }
        problems
    }

    /// The schema a `$ref` (or an inline schema) stands for.
    pub fn resolve<'a>(&'a self, api: &str, schema: &'a Value) -> &'a Value {
        match self.api(api) {
            Ok(api) => resolve(&api.doc, schema),
            Err(_) => schema,
        }
    }
}

fn collect_methods(resources: &Value, service_path: &str, out: &mut Vec<Method>) {
    let Some(resources) = resources.as_object() else {
        return;
    };
    for resource in resources.values() {
        if let Some(methods) = resource["methods"].as_object() {
            for m in methods.values() {
                // `flatPath` names every variable one segment (`{tablesId}`) where `path` may
                // let one take several (`{+tableId}`): the stricter of the two, when given.
                let path = m["flatPath"]
                    .as_str()
                    .or_else(|| m["path"].as_str())
                    .unwrap_or_default();
                let mut templates = vec![format!("/{service_path}{path}")];
                let mut upload_protocols = Vec::new();
                if let Some(protocols) = m["mediaUpload"]["protocols"].as_object() {
                    for (name, p) in protocols {
                        if let Some(path) = p["path"].as_str() {
                            templates.push(path.to_string());
                        }
                        upload_protocols.push(name.clone());
                    }
                }
                out.push(Method {
                    id: m["id"].as_str().unwrap_or_default().to_string(),
                    http_method: m["httpMethod"].as_str().unwrap_or_default().to_string(),
                    templates,
                    parameters: m["parameters"].as_object().cloned().unwrap_or_default(),
                    request: m["request"]["$ref"].as_str().map(str::to_string),
                    response: m["response"]["$ref"].as_str().map(str::to_string),
                    upload_protocols,
                });
            }
        }
        collect_methods(&resource["resources"], service_path, out);
    }
}

impl Method {
    /// The number of literal characters of the best template matching `path`, if one does.
    fn matches(&self, path: &str) -> Option<usize> {
        self.templates
            .iter()
            .filter_map(|t| template_match(t, path))
            .max()
    }

    /// Whether `path` is one of the upload paths (`/upload/...`).
    fn is_upload(&self, path: &str) -> bool {
        self.templates
            .iter()
            .skip(1)
            .any(|t| template_match(t, path).is_some())
    }
}

/// Matches `path` against an RFC 6570 level-2 template: `{x}` is one non-empty segment, `{+x}`
/// any non-empty text. Returns the count of literal characters matched.
pub fn template_match(template: &str, path: &str) -> Option<usize> {
    // Literal pieces and variables, in order.
    let mut pieces: Vec<(bool, bool, &str)> = Vec::new(); // (is_var, reserved, text)
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        pieces.push((false, false, &rest[..open]));
        let close = rest[open..].find('}')? + open;
        let var = &rest[open + 1..close];
        pieces.push((true, var.starts_with('+'), var));
        rest = &rest[close + 1..];
    }
    pieces.push((false, false, rest));
    let literal: usize = pieces.iter().filter(|p| !p.0).map(|p| p.2.len()).sum();
    matches_from(&pieces, path).then_some(literal)
}

fn matches_from(pieces: &[(bool, bool, &str)], path: &str) -> bool {
    let Some((&(is_var, reserved, text), rest)) = pieces.split_first() else {
        return path.is_empty();
    };
    if !is_var {
        return path
            .strip_prefix(text)
            .is_some_and(|p| matches_from(rest, p));
    }
    // A variable takes 1..n characters; a simple one stops at '/', and never takes '?'.
    let limit = if reserved {
        path.len()
    } else {
        path.find('/').unwrap_or(path.len())
    };
    (1..=limit)
        .rev()
        .filter(|&n| path.is_char_boundary(n))
        .any(|n| matches_from(rest, &path[n..]))
}

fn check_query(api: &Api, method: &Method, query: &str, problems: &mut Vec<String>) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(name);
        let value = decode(value);
        let declared = method
            .parameters
            .get(&name)
            .filter(|p| p["location"] == "query")
            .or_else(|| api.doc["parameters"].get(&name));
        let Some(declared) = declared else {
            problems.push(format!("query parameter `{name}` is not declared"));
            continue;
        };
        *seen.entry(name.clone()).or_default() += 1;
        if seen[&name] == 2 && declared["repeated"] != true {
            problems.push(format!("query parameter `{name}` is given more than once"));
        }
        if name == "uploadType" && !method.upload_protocols.is_empty() {
            let known = ["media", "multipart", "resumable"];
            if !known.contains(&value.as_str()) {
                problems.push(format!("uploadType `{value}` is not an upload protocol"));
            }
        }
        if let Err(why) = scalar_conforms(declared, &value) {
            problems.push(format!("query parameter `{name}`: {why}"));
        }
    }
    for (name, p) in &method.parameters {
        if p["location"] == "query" && p["required"] == true && !seen.contains_key(name) {
            problems.push(format!("required query parameter `{name}` is missing"));
        }
    }
}

/// A query value against its parameter's type, format and enum.
fn scalar_conforms(declared: &Value, value: &str) -> Result<(), String> {
    let ty = declared["type"].as_str().unwrap_or("string");
    let format = declared["format"].as_str().unwrap_or("");
    let ok = match (ty, format) {
        ("integer", _) | ("string", "int64" | "uint64" | "int32" | "uint32") => {
            value.parse::<i128>().is_ok()
        }
        ("number", _) => value.parse::<f64>().is_ok(),
        ("boolean", _) => value == "true" || value == "false",
        _ => true,
    };
    if !ok {
        return Err(format!("`{value}` is not a {ty} {format}"));
    }
    if let Some(values) = declared["enum"].as_array()
        && !values.iter().any(|v| v == value)
    {
        return Err(format!("`{value}` is not one of its enum values"));
    }
    Ok(())
}

fn check_body(api: &Api, method: &Method, request: &Request, problems: &mut Vec<String>) {
    let content_type = request.content_type.to_ascii_lowercase();
    let json: Option<Vec<u8>> = if method.is_upload(&request.path) {
        if content_type.starts_with("multipart/related") {
            match first_part(&request.content_type, &request.body) {
                Ok(part) => Some(part),
                Err(e) => {
                    problems.push(format!("multipart upload: {e}"));
                    return;
                }
            }
        } else {
            None // uploadType=media: the body is the object's bytes.
        }
    } else if request.body.is_empty() {
        None
    } else {
        Some(request.body.clone())
    };
    let Some(json) = json else {
        return;
    };
    let Some(schema) = &method.request else {
        problems.push("the method takes no request body, but one was sent".into());
        return;
    };
    let value: Value = match serde_json::from_slice(&json) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("the request body is not JSON: {e}"));
            return;
        }
    };
    let schema = serde_json::json!({"$ref": schema});
    check_value(&api.doc, &schema, &value, "body", problems);
}

/// The first part of a `multipart/related` body (the JSON metadata of an upload).
fn first_part(content_type: &str, body: &[u8]) -> Result<Vec<u8>, String> {
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"'))
        .ok_or("no boundary in the content type")?;
    let delimiter = format!("--{boundary}");
    let text = String::from_utf8_lossy(body);
    let mut parts = text.split(delimiter.as_str()).skip(1);
    let part = parts.next().ok_or("no part")?;
    let (_, content) = part
        .split_once("\r\n\r\n")
        .ok_or("a part without headers")?;
    Ok(content.trim_end_matches("\r\n").as_bytes().to_vec())
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    let mut s = schema;
    for _ in 0..16 {
        match s["$ref"].as_str() {
            Some(name) => s = &doc["schemas"][name],
            None => break,
        }
    }
    s
}

/// `value` at `at` against `schema`: every field declared, every type right.
fn check_value(doc: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if value.is_null() {
        return;
    }
    let ty = schema["type"].as_str().unwrap_or("any");
    let format = schema["format"].as_str().unwrap_or("");
    let wrong = |expected: &str, problems: &mut Vec<String>| {
        problems.push(format!(
            "`{at}` is {}, the schema declares {expected}",
            json_type(value)
        ));
    };
    match ty {
        "object" => {
            let Some(fields) = value.as_object() else {
                return wrong("an object", problems);
            };
            let properties = schema["properties"].as_object();
            let additional = &schema["additionalProperties"];
            for (name, v) in fields {
                let field_at = format!("{at}.{name}");
                match properties.and_then(|p| p.get(name)) {
                    Some(s) => check_value(doc, s, v, &field_at, problems),
                    None if !additional.is_null() => {
                        check_value(doc, additional, v, &field_at, problems);
                    }
                    None if properties.is_none() => {}
                    None => problems.push(format!(
                        "`{field_at}` is not a field of {}",
                        schema["id"].as_str().unwrap_or("its schema")
                    )),
                }
            }
        }
        "array" => {
            let Some(items) = value.as_array() else {
                return wrong("an array", problems);
            };
            for (i, v) in items.iter().enumerate() {
                check_value(doc, &schema["items"], v, &format!("{at}[{i}]"), problems);
            }
        }
        "string" => {
            let numeric = matches!(format, "int64" | "uint64");
            let ok = value.is_string() || (numeric && (value.is_i64() || value.is_u64()));
            if !ok {
                return wrong("a string", problems);
            }
            if let Some(s) = value.as_str() {
                if numeric && s.parse::<i128>().is_err() {
                    problems.push(format!("`{at}` is `{s}`, not an {format}"));
                }
                if format == "byte" && !is_base64(s) {
                    problems.push(format!("`{at}` is not base64 (format byte)"));
                }
                if let Some(values) = schema["enum"].as_array()
                    && !values.iter().any(|v| v == s)
                {
                    problems.push(format!("`{at}` is `{s}`, not one of its enum values"));
                }
            }
        }
        "integer" => {
            let ok = value.is_i64()
                || value.is_u64()
                || value.as_str().is_some_and(|s| s.parse::<i128>().is_ok());
            if !ok {
                wrong("an integer", problems);
            }
        }
        "number" if !value.is_number() => wrong("a number", problems),
        "boolean" if !value.is_boolean() => wrong("a boolean", problems),
        _ => {}
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn is_base64(s: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).is_ok()
        || base64::engine::general_purpose::URL_SAFE.decode(s).is_ok()
}

/// Percent-decodes a query component (`+` is a space).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs() -> Discovery {
        Discovery::of_repo().expect("tests/discovery holds the three documents")
    }

    fn request(method: &str, path_query: &str, body: &str) -> Request {
        let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
        Request {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            content_type: "application/json".into(),
            body: body.as_bytes().to_vec(),
        }
    }

    const INSERT_ALL: &str = "/bigquery/v2/projects/p/datasets/d/tables/t/insertAll";

    #[test]
    fn a_conforming_request_names_its_method_and_no_problem() {
        let d = docs();
        let body = r#"{"skipInvalidRows":true,"ignoreUnknownValues":false,
            "rows":[{"insertId":"e-1","json":{"event_id":"e-1","n":{"deep":[1]}}}]}"#;
        let (m, problems) = d
            .check("bigquery", &request("POST", INSERT_ALL, body))
            .unwrap();
        assert_eq!(m.id, "bigquery.tabledata.insertAll");
        assert!(problems.is_empty(), "{problems:?}");
        let list = "/storage/v1/b/bk/o?prefix=t%2F2026&maxResults=10&fields=items%2Fname";
        let (m, problems) = d.check("storage", &request("GET", list, "")).unwrap();
        assert_eq!((m.id.as_str(), problems.len()), ("storage.objects.list", 0));
        let iam = "/storage/v1/b/bk/iam/testPermissions?permissions=a&permissions=b";
        let (m, problems) = d.check("storage", &request("GET", iam, "")).unwrap();
        assert_eq!(m.id, "storage.buckets.testIamPermissions");
        assert!(problems.is_empty(), "repeated parameter: {problems:?}");
        let pull = "/v1/projects/p/subscriptions/s:pull";
        let (m, problems) = d
            .check(
                "pubsub",
                &request(
                    "POST",
                    pull,
                    r#"{"maxMessages":10,"returnImmediately":true}"#,
                ),
            )
            .unwrap();
        assert_eq!(
            (m.id.as_str(), problems.len()),
            ("pubsub.projects.subscriptions.pull", 0)
        );
    }

    #[test]
    fn a_misspelt_field_fails_naming_the_method_and_the_field() {
        let body = r#"{"skipInvalidRow":true,"rows":[{"insertID":"e-1","json":{}}]}"#;
        let (_, problems) = docs()
            .check("bigquery", &request("POST", INSERT_ALL, body))
            .unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("bigquery.tabledata.insertAll: "));
        assert!(problems.iter().any(|p| p.contains("`body.skipInvalidRow`")));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("`body.rows[0].insertID`"))
        );
    }

    #[test]
    fn a_wrong_type_an_unknown_parameter_or_a_bad_enum_fails() {
        let d = docs();
        let (_, p) = d
            .check(
                "bigquery",
                &request("POST", INSERT_ALL, r#"{"skipInvalidRows":"yes","rows":{}}"#),
            )
            .unwrap();
        assert!(
            p.iter()
                .any(|p| p.contains("`body.skipInvalidRows` is a string")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|p| p.contains("`body.rows` is an object")),
            "{p:?}"
        );
        let list = "/storage/v1/b/bk/o?prefix=a&maxResult=10&alt=xml&projection=most";
        let (_, p) = d.check("storage", &request("GET", list, "")).unwrap();
        assert!(
            p.iter().any(|p| p.contains("`maxResult` is not declared")),
            "{p:?}"
        );
        assert!(p.iter().any(|p| p.contains("`alt`")), "{p:?}");
        assert!(p.iter().any(|p| p.contains("`projection`")), "{p:?}");
        let publish = "/v1/projects/p/topics/t:publish";
        let (_, p) = d
            .check(
                "pubsub",
                &request("POST", publish, r#"{"messages":[{"data":"not base64!"}]}"#),
            )
            .unwrap();
        assert!(p.iter().any(|p| p.contains("not base64")), "{p:?}");
    }

    #[test]
    fn a_path_google_does_not_define_matches_no_method() {
        let d = docs();
        let e = d
            .check(
                "bigquery",
                &request("POST", "/bigquery/v2/projects/p/insertAll", "{}"),
            )
            .unwrap_err();
        assert!(e.to_string().contains("not a method"), "{e}");
        // An object name must be one path segment: a raw `/` makes it another path.
        let raw = "/storage/v1/b/bk/o/t/2026/e.json";
        assert!(d.check("storage", &request("GET", raw, "")).is_err());
        let encoded = "/storage/v1/b/bk/o/t%2F2026%2Fe.json?alt=media";
        let (m, p) = d.check("storage", &request("GET", encoded, "")).unwrap();
        assert_eq!((m.id.as_str(), p.len()), ("storage.objects.get", 0));
        // The right path with the wrong verb is not the method either.
        assert!(
            d.check("bigquery", &request("GET", INSERT_ALL, ""))
                .is_err()
        );
    }

    #[test]
    fn a_multipart_upload_is_checked_by_its_metadata_part() {
        let d = docs();
        let body = "--B\r\ncontent-type: application/json\r\n\r\n{\"name\":\"o\",\"metadata\":{\"event-id\":\"e\"},\"contentTypo\":\"x\"}\r\n--B\r\ncontent-type: application/json\r\n\r\n{\"anything\":1}\r\n--B--\r\n";
        let mut r = request(
            "POST",
            "/upload/storage/v1/b/bk/o?uploadType=multipart&ifGenerationMatch=0",
            body,
        );
        r.content_type = "multipart/related; boundary=B".into();
        let (m, p) = d.check("storage", &r).unwrap();
        assert_eq!(m.id, "storage.objects.insert");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("`body.contentTypo`"), "{p:?}");
    }

    #[test]
    fn grpc_calls_map_to_their_discovery_method() {
        let d = docs();
        assert_eq!(
            d.grpc_method("pubsub", "/google.pubsub.v1.Publisher/Publish")
                .unwrap(),
            "pubsub.projects.topics.publish"
        );
        assert!(
            d.grpc_method("pubsub", "/google.pubsub.v1.Publisher/Publishh")
                .is_err()
        );
    }

    #[test]
    fn the_layers_addresses_are_the_documents() {
        let d = docs();
        for (api, service) in [
            ("storage", pipeline::google::STORAGE),
            ("bigquery", pipeline::google::BIGQUERY),
            ("pubsub", pipeline::google::PUBSUB),
        ] {
            assert_eq!(
                d.base_url(api).unwrap(),
                format!("{}{}", service.root_url, service.service_path)
            );
        }
        // Every call of an API with a discovery document is a method of it; the others (gRPC
        // APIs described by protos only) are methods of their protos.
        let protos = crate::contract::protos().unwrap();
        for call in pipeline::google::CALLS {
            match crate::contract::grpc::APIS
                .iter()
                .find(|(a, _)| *a == call.api())
            {
                None => {
                    d.method(call.api(), call.id).unwrap();
                }
                Some((api, package)) => {
                    let (service, method) = call.id[api.len() + 1..].split_once('.').unwrap();
                    let m = protos
                        .method(api, &format!("/{package}.{service}/{method}"))
                        .unwrap();
                    assert_eq!(crate::contract::grpc::Protos::call_id(api, &m), call.id);
                }
            }
        }
    }
}
