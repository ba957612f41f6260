//! `terraform/` held to the google provider's own schema, offline.
//!
//! `terraform validate` needs the provider, which cannot be downloaded here
//! (`scripts/terraform-check.sh` reports it SKIPPED), so without this a misspelt argument would pass
//! every test and fail the first `terraform apply`. This test reads every `terraform/**/*.tf` (each
//! directory is a module; `terraform/examples/` holds no `.tf` today and is checked when it does)
//! and fails, naming file and line, on:
//!
//! - a `resource` or `data` type the provider does not have (or that the vendored schema lacks: then
//!   re-run the script below);
//! - an argument or nested block the type does not have, `dynamic "x"` blocks included (their
//!   `content` is checked as block `x`); a block written as an argument or the other way round;
//! - a missing required argument, a missing required block (`min_items` ≥ 1), a block that may
//!   appear once given twice;
//! - a computed-only attribute set;
//! - a reference `google_x.name.attr`, `google_x.name[...].attr` or `data.google_x.name.attr` to an
//!   address the module does not declare, or to an attribute the type does not have (only the first
//!   segment after the address is checked: `template[0].containers` checks `template`).
//!
//! Meta-arguments (`count`, `for_each`, `depends_on`, `provider`, `lifecycle`, `provisioner`,
//! `connection`) are allowed on every resource and data source. The `provider "google"` block
//! itself, expression types and values are not checked.
//!
//! The schema is [`SCHEMA`], vendored: the types `terraform/` declares, from PyPI's
//! `cdktf-cdktf-provider-google` 16.12.1, the CDK for Terraform bindings generated from
//! hashicorp/google 6.50.0 (its jsii assembly says which properties are optional, its generated
//! JavaScript maps them to Terraform names and blocks, and lists the computed attributes). After
//! declaring a type `terraform/` did not use before, regenerate it (needs PyPI, not the tests):
//!
//! ```text
//! scripts/vendor-provider-schema.sh     # writes terraform/schema/google-6.50.0.json
//! ```
//!
//! Lines come from the spans of `hcl::edit`, the parser `hcl::parse` is built on (re-exported by
//! hcl-rs), which keeps each attribute's, block's and expression's byte range.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use e2e::emulators::repo_root;
use hcl::edit::expr::{Expression, Traversal, TraversalOperator};
use hcl::edit::structure::{Block, Body};
use hcl::edit::visit::{Visit, visit_traversal};
use hcl::edit::{Decorated, Ident, Span};
use serde::Deserialize;

/// The vendored provider schema, relative to the repository root (named after its provider
/// version; `scripts/vendor-provider-schema.sh` writes it).
const SCHEMA: &str = "terraform/schema/google-6.50.0.json";

const META_ARGUMENTS: [&str; 4] = ["count", "for_each", "depends_on", "provider"];
const META_BLOCKS: [&str; 3] = ["lifecycle", "provisioner", "connection"];

// --- the schema file -----------------------------------------------------------------------------

#[derive(Deserialize)]
struct Schema {
    source: SchemaSource,
    all_resource_types: BTreeSet<String>,
    all_data_source_types: BTreeSet<String>,
    resources: BTreeMap<String, BlockSchema>,
    data_sources: BTreeMap<String, BlockSchema>,
}

#[derive(Deserialize)]
struct SchemaSource {
    package: String,
    package_version: String,
    provider: String,
    provider_version: String,
}

/// A resource's, data source's or nested block's body.
#[derive(Deserialize)]
struct BlockSchema {
    attributes: BTreeMap<String, Flag>,
    blocks: BTreeMap<String, BlockSchema>,
    /// Nested blocks only (the file also says their nesting: `single`, `list` or `set`).
    #[serde(default)]
    min_items: u32,
    #[serde(default)]
    max_items: Option<u32>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Flag {
    Required,
    Optional,
    ComputedOnly,
}

fn load_schema() -> Result<Schema> {
    let path = repo_root().join(SCHEMA);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (regenerate it with scripts/vendor-provider-schema.sh)",
            path.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

impl Schema {
    fn version(&self) -> String {
        format!("google {}", self.source.provider_version)
    }
}

// --- the check -----------------------------------------------------------------------------------

/// One `.tf` file: the name it is reported by, and its text.
struct TfFile {
    name: String,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Problem {
    file: String,
    line: usize,
    message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// What was checked, for the report.
#[derive(Default)]
struct Tally {
    resources: usize,
    types: BTreeSet<String>,
    blocks: usize,
    dynamic_blocks: usize,
    arguments: usize,
    references: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Resource,
    Data,
}

impl Kind {
    fn of(keyword: &str) -> Option<Kind> {
        match keyword {
            "resource" => Some(Kind::Resource),
            "data" => Some(Kind::Data),
            _ => None,
        }
    }
}

/// `google_x.name` or `data.google_x.name`.
fn address(kind: Kind, ty: &str, name: &str) -> String {
    match kind {
        Kind::Resource => format!("{ty}.{name}"),
        Kind::Data => format!("data.{ty}.{name}"),
    }
}

/// The one-based line of a byte offset's span (0 when the parser gave none: it always does).
fn line_of(text: &str, span: Option<Range<usize>>) -> usize {
    span.map_or(0, |s| {
        text.get(..s.start)
            .map_or(0, |t| t.bytes().filter(|&b| b == b'\n').count() + 1)
    })
}

fn label(block: &Block, i: usize) -> Option<&str> {
    block.labels.get(i).map(|l| l.as_str())
}

/// The closest name of `names` to `wrong`, if it is close (a typo), for "did you mean".
fn closest<'a>(wrong: &str, names: impl Iterator<Item = &'a String>) -> String {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, &cb) in b.iter().enumerate() {
                let here = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(here + 1);
                prev = here;
            }
        }
        row[b.len()]
    }
    names
        .map(|n| (distance(wrong, n), n))
        .filter(|(d, n)| *d <= 2.max(n.len() / 4))
        .min()
        .map(|(_, n)| format!("; did you mean `{n}`?"))
        .unwrap_or_default()
}

/// Checks one module (the `.tf` files of one directory) against the schema.
fn check_module(files: &[TfFile], schema: &Schema, tally: &mut Tally) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut parsed = Vec::new();
    for file in files {
        match hcl::edit::parser::parse_body(&file.text) {
            Ok(body) => parsed.push((file, body)),
            Err(e) => problems.push(Problem {
                file: file.name.clone(),
                line: e.location().line(),
                message: format!("does not parse as HCL: {e}"),
            }),
        }
    }
    let mut declared = BTreeSet::new();
    for (_, body) in &parsed {
        for block in body.blocks() {
            if let (Some(kind), Some(ty), Some(name)) = (
                Kind::of(block.ident.as_str()),
                label(block, 0),
                label(block, 1),
            ) {
                declared.insert((kind, ty.to_owned(), name.to_owned()));
            }
        }
    }
    for (file, body) in &parsed {
        let mut checker = Checker {
            schema,
            file,
            problems: &mut problems,
            tally,
        };
        for block in body.blocks() {
            if let Some(kind) = Kind::of(block.ident.as_str()) {
                checker.resource(kind, block);
            }
        }
        let mut refs = References {
            schema,
            file,
            declared: &declared,
            problems: &mut problems,
            count: 0,
        };
        refs.visit_body(body);
        tally.references += refs.count;
    }
    problems.sort();
    problems
}

struct Checker<'a> {
    schema: &'a Schema,
    file: &'a TfFile,
    problems: &'a mut Vec<Problem>,
    tally: &'a mut Tally,
}

impl Checker<'_> {
    fn report(&mut self, span: Option<Range<usize>>, message: String) {
        self.problems.push(Problem {
            file: self.file.name.clone(),
            line: line_of(&self.file.text, span),
            message,
        });
    }

    fn resource(&mut self, kind: Kind, block: &Block) {
        let (Some(ty), Some(name)) = (label(block, 0), label(block, 1)) else {
            self.report(
                block.ident.span(),
                format!("`{}` needs a type and a name", block.ident.as_str()),
            );
            return;
        };
        let at = address(kind, ty, name);
        let (types, all, what) = match kind {
            Kind::Resource => (
                &self.schema.resources,
                &self.schema.all_resource_types,
                "resource",
            ),
            Kind::Data => (
                &self.schema.data_sources,
                &self.schema.all_data_source_types,
                "data source",
            ),
        };
        self.tally.resources += 1;
        let Some(body_schema) = types.get(ty) else {
            let message = if all.contains(ty) {
                format!(
                    "{at}: {ty} is a {what} of {} but not in {SCHEMA}: run \
                     scripts/vendor-provider-schema.sh",
                    self.schema.version()
                )
            } else {
                format!(
                    "{at}: {ty} is not a {what} type of {}{}",
                    self.schema.version(),
                    closest(ty, all.iter())
                )
            };
            self.report(block.ident.span(), message);
            return;
        };
        self.tally.types.insert(format!("{what} {ty}"));
        self.body(&block.body, body_schema, &at, block.ident.span(), true);
    }

    /// Checks a body against its schema; `header` is where a missing item is reported.
    fn body(
        &mut self,
        body: &Body,
        schema: &BlockSchema,
        path: &str,
        header: Option<Range<usize>>,
        top: bool,
    ) {
        let mut set = BTreeSet::new();
        for attr in body.attributes() {
            let key = attr.key.as_str();
            set.insert(key.to_owned());
            if top && META_ARGUMENTS.contains(&key) {
                continue;
            }
            self.tally.arguments += 1;
            match schema.attributes.get(key) {
                Some(Flag::Required | Flag::Optional) => {}
                Some(Flag::ComputedOnly) => self.report(
                    attr.key.span(),
                    format!(
                        "{path}: `{key}` is computed by the provider and cannot be set ({})",
                        self.schema.version()
                    ),
                ),
                None if schema.blocks.contains_key(key) => self.report(
                    attr.key.span(),
                    format!("{path}: `{key}` is a block: write `{key} {{ ... }}`, not `{key} =`"),
                ),
                None => {
                    let names = schema
                        .attributes
                        .iter()
                        .filter(|(_, f)| **f != Flag::ComputedOnly);
                    let hint = closest(key, names.map(|(n, _)| n));
                    self.report(
                        attr.key.span(),
                        format!(
                            "{path}: unknown argument `{key}` ({} has no such argument here){hint}",
                            self.schema.version()
                        ),
                    );
                }
            }
        }
        // Block name → the spans of its blocks, static and dynamic, in order.
        let mut given: BTreeMap<String, Vec<Option<Range<usize>>>> = BTreeMap::new();
        for block in body.blocks() {
            let ident = block.ident.as_str();
            if top && META_BLOCKS.contains(&ident) {
                continue;
            }
            let (name, content, dynamic) = if ident == "dynamic" {
                let Some(name) = label(block, 0) else {
                    self.report(
                        block.ident.span(),
                        format!("{path}: `dynamic` without a name"),
                    );
                    continue;
                };
                match self.dynamic(block, path, name) {
                    Some(content) => (name, content, true),
                    None => continue,
                }
            } else {
                (ident, block, false)
            };
            self.tally.blocks += 1;
            self.tally.dynamic_blocks += usize::from(dynamic);
            let Some(nested) = schema.blocks.get(name) else {
                let span = if dynamic {
                    block.labels.first().and_then(Span::span)
                } else {
                    block.ident.span()
                };
                let message = if schema.attributes.contains_key(name) {
                    format!("{path}: `{name}` is an argument, not a block: write `{name} = ...`")
                } else {
                    format!(
                        "{path}: unknown block `{name}` ({} has no such block here){}",
                        self.schema.version(),
                        closest(name, schema.blocks.keys())
                    )
                };
                self.report(span, message);
                continue;
            };
            given
                .entry(name.to_owned())
                .or_default()
                .push(block.ident.span());
            self.body(
                &content.body,
                nested,
                &format!("{path}.{name}"),
                content.ident.span(),
                false,
            );
        }
        for (key, flag) in &schema.attributes {
            if *flag == Flag::Required && !set.contains(key) {
                self.report(
                    header.clone(),
                    format!(
                        "{path}: missing required argument `{key}` ({})",
                        self.schema.version()
                    ),
                );
            }
        }
        for (name, nested) in &schema.blocks {
            let spans = given.get(name).map_or(&[][..], Vec::as_slice);
            if spans.is_empty() && nested.min_items >= 1 {
                self.report(
                    header.clone(),
                    format!(
                        "{path}: missing required block `{name}` ({})",
                        self.schema.version()
                    ),
                );
            }
            if let Some(max) = nested.max_items
                && spans.len() > max as usize
            {
                self.report(
                    spans[max as usize].clone(),
                    format!(
                        "{path}: block `{name}` given {} times, {} allows at most {max}",
                        spans.len(),
                        self.schema.version()
                    ),
                );
            }
        }
    }

    /// A `dynamic "name"` block's own shape; its `content` block, to be checked as `name`.
    fn dynamic<'b>(&mut self, block: &'b Block, path: &str, name: &str) -> Option<&'b Block> {
        for attr in block.body.attributes() {
            let key = attr.key.as_str();
            if !["for_each", "iterator", "labels"].contains(&key) {
                self.report(
                    attr.key.span(),
                    format!("{path}: dynamic \"{name}\": unexpected `{key}` (put it in `content`)"),
                );
            }
        }
        if !block.body.has_attribute("for_each") {
            self.report(
                block.ident.span(),
                format!("{path}: dynamic \"{name}\" has no for_each"),
            );
        }
        let mut contents = block.body.blocks().filter(|b| b.has_ident("content"));
        let content = contents.next();
        if content.is_none() || contents.next().is_some() {
            self.report(
                block.ident.span(),
                format!("{path}: dynamic \"{name}\" needs exactly one `content` block"),
            );
        }
        for other in block.body.blocks().filter(|b| !b.has_ident("content")) {
            self.report(
                other.ident.span(),
                format!(
                    "{path}: dynamic \"{name}\": unexpected block `{}` (put it in `content`)",
                    other.ident.as_str()
                ),
            );
        }
        content
    }
}

/// Every `google_x.name…` and `data.google_x.name…` traversal, anywhere in a file.
struct References<'a> {
    schema: &'a Schema,
    file: &'a TfFile,
    declared: &'a BTreeSet<(Kind, String, String)>,
    problems: &'a mut Vec<Problem>,
    count: usize,
}

fn get_attr(op: &Decorated<TraversalOperator>) -> Option<&Ident> {
    match op.value() {
        TraversalOperator::GetAttr(ident) => Some(ident.value()),
        _ => None,
    }
}

impl Visit for References<'_> {
    fn visit_traversal(&mut self, node: &Traversal) {
        self.reference(node);
        visit_traversal(self, node);
    }
}

impl References<'_> {
    fn reference(&mut self, node: &Traversal) {
        let Expression::Variable(root) = &node.expr else {
            return;
        };
        let ops = &node.operators;
        let (kind, ty, rest) = match root.as_str() {
            "data" => match ops.first().and_then(get_attr) {
                Some(ty) if ty.starts_with("google") => (Kind::Data, ty.as_str(), &ops[1..]),
                _ => return,
            },
            ty if ty.starts_with("google_") => (Kind::Resource, ty, &ops[..]),
            _ => return,
        };
        self.count += 1;
        let mut report = |message: String| {
            self.problems.push(Problem {
                file: self.file.name.clone(),
                line: line_of(&self.file.text, node.span()),
                message,
            });
        };
        let Some(name) = rest.first().and_then(get_attr) else {
            report(format!(
                "a reference to {} without a resource name",
                address(kind, ty, "…")
            ));
            return;
        };
        let at = address(kind, ty, name.as_str());
        if !self
            .declared
            .contains(&(kind, ty.to_owned(), name.as_str().to_owned()))
        {
            report(format!(
                "a reference to {at}, which this module does not declare"
            ));
            return;
        }
        // The attribute: the first name after the address and any index or splat.
        let Some(attr) = rest[1..].iter().find_map(|op| match op.value() {
            TraversalOperator::GetAttr(ident) => Some(ident.as_str()),
            _ => None,
        }) else {
            return;
        };
        let types = match kind {
            Kind::Resource => &self.schema.resources,
            Kind::Data => &self.schema.data_sources,
        };
        // An unknown type is reported at its declaration.
        let Some(schema) = types.get(ty) else { return };
        if !schema.attributes.contains_key(attr) && !schema.blocks.contains_key(attr) {
            let names = schema.attributes.keys().chain(schema.blocks.keys());
            report(format!(
                "{at}.{attr}: {ty} has no attribute `{attr}` ({}){}",
                self.schema.version(),
                closest(attr, names)
            ));
        }
    }
}

// --- the module's files --------------------------------------------------------------------------

/// `.tf` files under `dir`, grouped by directory (one module each); hidden directories skipped.
fn modules(dir: &Path) -> Result<BTreeMap<PathBuf, Vec<PathBuf>>> {
    let mut out: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if hidden {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "tf") {
                out.entry(d.clone()).or_default().push(path);
            }
        }
    }
    for files in out.values_mut() {
        files.sort();
    }
    Ok(out)
}

fn read_tf(path: &Path) -> Result<TfFile> {
    let root = repo_root();
    Ok(TfFile {
        name: path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string(),
        text: std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?,
    })
}

fn terraform_modules() -> Result<Vec<Vec<TfFile>>> {
    modules(&repo_root().join("terraform"))?
        .values()
        .map(|files| files.iter().map(|p| read_tf(p)).collect())
        .collect()
}

// --- tests -------------------------------------------------------------------------------------

#[test]
fn terraform_matches_the_google_provider_schema() -> Result<()> {
    let schema = load_schema()?;
    let mut tally = Tally::default();
    let mut problems = Vec::new();
    let modules = terraform_modules()?;
    for files in &modules {
        problems.extend(check_module(files, &schema, &mut tally));
    }
    let report: Vec<String> = problems.iter().map(Problem::to_string).collect();
    ensure!(
        problems.is_empty(),
        "terraform/ departs from the google provider's schema ({} {}, {}):\n{}",
        schema.source.package,
        schema.source.package_version,
        schema.version(),
        report.join("\n")
    );
    ensure!(
        tally.resources > 0 && tally.arguments > 0,
        "nothing was checked"
    );
    eprintln!(
        "checked {} module(s): {} resources and data sources of {} types, {} nested blocks \
         ({} dynamic), {} arguments, {} references against {}",
        modules.len(),
        tally.resources,
        tally.types.len(),
        tally.blocks,
        tally.dynamic_blocks,
        tally.arguments,
        tally.references,
        schema.version()
    );
    Ok(())
}

/// One planted error: `find` (unique in `file`) becomes `replace`, and the check must report a
/// problem containing `message` in `file`, `below` lines under the line of `at` (unique in the
/// original text).
struct Plant {
    file: &'static str,
    find: &'static str,
    replace: &'static str,
    at: &'static str,
    below: usize,
    message: &'static str,
}

fn unique_line(text: &str, needle: &str, file: &str) -> Result<usize> {
    let found: Vec<usize> = text.match_indices(needle).map(|(i, _)| i).collect();
    let [offset] = found[..] else {
        bail!(
            "`{needle}` occurs {} times in {file}: the planted error needs a unique anchor",
            found.len()
        );
    };
    Ok(line_of(text, Some(offset..offset)))
}

/// The check can fail: errors planted into in-memory copies of the real files are each reported,
/// with the file name and line, and nothing else changes.
#[test]
fn planted_errors_are_reported_with_file_and_line() -> Result<()> {
    let plants = [
        Plant {
            file: "storage.tf",
            find: "  uniform_bucket_level_access = true",
            replace: "  uniform_bucket_level_acess  = true",
            at: "uniform_bucket_level_access",
            below: 0,
            message: "google_storage_bucket.transcripts: unknown argument \
                      `uniform_bucket_level_acess` (google 6.50.0 has no such argument here); \
                      did you mean `uniform_bucket_level_access`?",
        },
        Plant {
            file: "pubsub.tf",
            find: "  retry_policy {",
            replace: "  retry_polcy {",
            at: "retry_policy {",
            below: 0,
            message: "unknown block `retry_polcy`",
        },
        Plant {
            file: "storage.tf",
            // In the dynamic block's content (indented deeper than the static rule's).
            find: "        type = \"Delete\"",
            replace: "        # type = \"Delete\"",
            at: "      action {",
            below: 0,
            message: "google_storage_bucket.transcripts.lifecycle_rule.action: missing required \
                      argument `type`",
        },
        Plant {
            file: "storage.tf",
            find: "  location = var.bucket_location",
            replace: "  # location = var.bucket_location",
            at: "resource \"google_storage_bucket\" \"transcripts\"",
            below: 0,
            message: "google_storage_bucket.transcripts: missing required argument `location`",
        },
        Plant {
            file: "storage.tf",
            find: "  force_destroy               = false",
            replace: "  self_link                   = \"x\"",
            at: "force_destroy",
            below: 0,
            message: "google_storage_bucket.transcripts: `self_link` is computed by the provider \
                      and cannot be set",
        },
        Plant {
            file: "pubsub.tf",
            find: "google_service_account.push.email",
            replace: "google_service_account.push.emial",
            at: "google_service_account.push.email",
            below: 0,
            message: "google_service_account.push.emial: google_service_account has no attribute \
                      `emial` (google 6.50.0); did you mean `email`?",
        },
        Plant {
            file: "pubsub.tf",
            find: "dead_letter_topic     = google_pubsub_topic.dead_letter[each.key].id",
            replace: "dead_letter_topic     = google_pubsub_topic.dead_letters[each.key].id",
            at: "dead_letter_topic     = google_pubsub_topic.dead_letter[each.key].id",
            below: 0,
            message: "a reference to google_pubsub_topic.dead_letters, which this module does not \
                      declare",
        },
        Plant {
            file: "storage.tf",
            find: "  versioning {\n    enabled = true\n  }\n",
            replace: "  versioning {\n    enabled = true\n  }\n  versioning {\n    enabled = true\n  }\n",
            at: "  versioning {",
            below: 3,
            message: "block `versioning` given 2 times, google 6.50.0 allows at most 1",
        },
        Plant {
            file: "storage.tf",
            find: "dynamic \"logging\"",
            replace: "dynamic \"loging\"",
            at: "dynamic \"logging\"",
            below: 0,
            message: "unknown block `loging`",
        },
        Plant {
            // A resource nothing refers to (a referenced one adds an error per reference).
            file: "monitoring.tf",
            find: "resource \"google_logging_project_exclusion\" \"successful_push_requests\"",
            replace: "resource \"google_logging_project_exclusions\" \"successful_push_requests\"",
            at: "resource \"google_logging_project_exclusion\" \"successful_push_requests\"",
            below: 0,
            message: "google_logging_project_exclusions.successful_push_requests: \
                      google_logging_project_exclusions is not a resource type of google 6.50.0; \
                      did you mean `google_logging_project_exclusion`?",
        },
    ];

    let schema = load_schema()?;
    let dir = repo_root().join("terraform");
    let files = modules(&dir)?
        .remove(&dir)
        .context("no .tf files in terraform/")?;
    let module: Vec<TfFile> = files.iter().map(|p| read_tf(p)).collect::<Result<_>>()?;
    let baseline = check_module(&module, &schema, &mut Tally::default());

    for plant in &plants {
        let name = format!("terraform/{}", plant.file);
        let mut planted: Vec<TfFile> = module
            .iter()
            .map(|f| TfFile {
                name: f.name.clone(),
                text: f.text.clone(),
            })
            .collect();
        let file = planted
            .iter_mut()
            .find(|f| f.name == name)
            .with_context(|| format!("no {name}"))?;
        let line = unique_line(&file.text, plant.at, &name)? + plant.below;
        unique_line(&file.text, plant.find, &name)?;
        file.text = file.text.replacen(plant.find, plant.replace, 1);

        let problems = check_module(&planted, &schema, &mut Tally::default());
        let new: Vec<&Problem> = problems.iter().filter(|p| !baseline.contains(p)).collect();
        let shown: Vec<String> = new.iter().map(|p| p.to_string()).collect();
        ensure!(
            new.len() == 1
                && new[0].file == name
                && new[0].line == line
                && new[0].message.contains(plant.message),
            "planting `{}` in {name}: want one problem at {name}:{line} containing \"{}\", got:\n{}",
            plant.replace,
            plant.message,
            shown.join("\n")
        );
        eprintln!("planted, and reported: {}", shown[0]);
    }
    Ok(())
}

/// Terraform's version constraint syntax, for the one constraint `versions.tf` sets: each of the
/// comma-separated parts must hold. `~> 6.0` means `>= 6.0, < 7.0`; `~> 6.50.0` means
/// `>= 6.50.0, < 6.51.0`.
fn satisfies(version: &str, constraint: &str) -> Result<bool> {
    fn parse(v: &str) -> Result<Vec<u64>> {
        v.trim()
            .trim_start_matches('v')
            .split('.')
            .map(|p| p.parse().with_context(|| format!("version `{v}`")))
            .collect()
    }
    fn padded(mut v: Vec<u64>) -> Vec<u64> {
        v.resize(3, 0);
        v
    }
    let have = padded(parse(version)?);
    for part in constraint.split(',') {
        let part = part.trim();
        let op_len = part
            .find(|c: char| c.is_ascii_digit() || c == 'v')
            .with_context(|| format!("constraint `{part}`"))?;
        let (op, want) = (part[..op_len].trim(), parse(&part[op_len..])?);
        let ok = match op {
            "" | "=" => have == padded(want),
            "!=" => have != padded(want),
            ">" => have > padded(want),
            ">=" => have >= padded(want),
            "<" => have < padded(want),
            "<=" => have <= padded(want),
            "~>" => {
                // The rightmost given component may grow; the ones before it are fixed.
                ensure!(
                    want.len() >= 2,
                    "`{part}`: write `~> MAJOR.MINOR` (a lone major is read differently by tools)"
                );
                let fixed = want.len() - 1;
                have >= padded(want.clone()) && have[..fixed] == want[..fixed]
            }
            _ => bail!("unknown constraint operator `{op}` in `{constraint}`"),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The schema is of a provider release that `terraform/versions.tf` accepts.
///
/// The constraint stays `~> 6.0` (any 6.x), while the arguments are checked against 6.50.0, the
/// release the bindings were generated from: the google provider removes arguments and blocks
/// only in major releases (deprecated ones keep working through the major), so a module valid for
/// 6.50.0 is valid for every later 6.x. An older 6.x (an old `.terraform.lock.hcl`) may lack an
/// argument added since; `~> 6.50` would rule that out, at the price of refusing older
/// installations the module may well work with. To check against a newer release, run
/// `PACKAGE_VERSION=... scripts/vendor-provider-schema.sh` and point [`SCHEMA`] at its output.
#[test]
fn the_schema_is_of_a_provider_version_the_module_accepts() -> Result<()> {
    // The evaluator itself.
    for (version, constraint, want) in [
        ("6.50.0", "~> 6.0", true),
        ("6.0.0", "~> 6.0", true),
        ("7.0.0", "~> 6.0", false),
        ("5.45.2", "~> 6.0", false),
        ("6.50.3", "~> 6.50.0", true),
        ("6.51.0", "~> 6.50.0", false),
        ("6.50.0", ">= 6.0, < 7.0", true),
        ("7.1.0", ">= 6.0, < 7.0", false),
        ("6.50.0", "!= 6.50.0", false),
    ] {
        ensure!(
            satisfies(version, constraint)? == want,
            "{version} against `{constraint}` should be {want}"
        );
    }

    let schema = load_schema()?;
    ensure!(
        schema.source.provider == "registry.terraform.io/hashicorp/google",
        "the schema is of {}",
        schema.source.provider
    );
    ensure!(
        SCHEMA.ends_with(&format!("google-{}.json", schema.source.provider_version)),
        "{SCHEMA} holds the schema of google {}",
        schema.source.provider_version
    );
    let path = repo_root().join("terraform/versions.tf");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let body: hcl::Body =
        hcl::parse(&text).with_context(|| format!("parsing {}", path.display()))?;
    let google = body
        .blocks()
        .filter(|b| b.identifier() == "terraform")
        .flat_map(|b| b.body().blocks())
        .filter(|b| b.identifier() == "required_providers")
        .flat_map(|b| b.body().attributes())
        .find(|a| a.key() == "google")
        .context("terraform/versions.tf has no required_providers.google")?;
    let hcl::Expression::Object(google) = google.expr() else {
        bail!("required_providers.google is not an object");
    };
    let field = |key: &str| -> Result<String> {
        google
            .iter()
            .find(|(k, _)| k.to_string() == key)
            .and_then(|(_, v)| match v {
                hcl::Expression::String(s) => Some(s.clone()),
                _ => None,
            })
            .with_context(|| format!("required_providers.google.{key} is not a plain string"))
    };
    ensure!(
        field("source")? == "hashicorp/google",
        "{}",
        field("source")?
    );
    let constraint = field("version")?;
    ensure!(
        satisfies(&schema.source.provider_version, &constraint)?,
        "the schema is of google {}, which terraform/versions.tf's `{constraint}` does not accept: \
         regenerate it (PACKAGE_VERSION=... scripts/vendor-provider-schema.sh) for a release it does",
        schema.source.provider_version
    );
    Ok(())
}
