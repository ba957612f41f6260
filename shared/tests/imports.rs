//! The crate's modules import each other without a cycle: read from `shared/src`, every
//! `crate::module` a module's code names (its `use`s and paths; comments and its unit tests left
//! out) is an edge, and the graph of top-level modules must be acyclic. A cycle means two
//! modules are one in all but name: one of them should own the shared part (as `error` owns the
//! retry-or-not error and `limits` every limit).
//!
//! And the layers point down: `google` (the clients of Google's APIs) is the bottom layer. It
//! names only leaves, modules that name no other module (`error`, `limits`, `schema`), never
//! rows, events, redaction, sinks or handlers: it takes insert ids and JSON text, or Arrow
//! bytes, and returns Google's verdicts, which the sinks map.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module → the top-level modules its code names.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module names a piece of code reaches through `crate::`: `crate::a::b` names `a`,
/// `crate::{a, b::c}` names `a` and `b`.
fn named_modules(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group, split at commas outside nested braces.
            let mut depth = 0usize;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        names.insert(ident(&group[start..i]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        names.insert(ident(&group[start..i]));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            names.insert(ident(rest));
        }
    }
    names.remove("");
    names
}

/// The code of a file without its comments and its unit tests.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn graph_of(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("under src");
        let first = rel.components().next().expect("a file");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable source");
        let edges = graph.entry(module.clone()).or_default();
        edges.extend(named_modules(&code_of(&text)));
        edges.remove(&module);
    }
    graph
}

/// A cycle of the graph, if it has one (depth-first search; the path to the repeated module).
fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        graph: &Graph,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if graph.contains_key(next)
                && let Some(found) = visit(graph, next, path, done)
            {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(graph, n, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_of_the_shared_crate_import_each_other_without_a_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph_of(&src);
    assert!(
        graph.len() > 10 && graph.values().any(|e| !e.is_empty()),
        "read too little of {}: {graph:?}",
        src.display()
    );
    if let Some(c) = cycle(&graph) {
        panic!(
            "the modules import each other in a cycle: {}",
            c.join(" -> ")
        );
    }
}

/// The modules `bottom` names that are not leaves of `graph` (each with what it names).
fn above_the_bottom(graph: &Graph, bottom: &str) -> Vec<String> {
    graph
        .get(bottom)
        .into_iter()
        .flatten()
        .filter(|m| graph.get(*m).is_some_and(|e| !e.is_empty()))
        .map(|m| format!("{bottom} names {m}, which names {:?}", graph[m]))
        .collect()
}

#[test]
fn the_google_layer_names_only_leaves() {
    let graph = graph_of(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(
        graph.get("google").is_some_and(|e| !e.is_empty()),
        "google names nothing? {graph:?}"
    );
    let wrong = above_the_bottom(&graph, "google");
    assert!(wrong.is_empty(), "the layers point up: {wrong:?}");
}

#[test]
fn the_layer_rule_fails_when_broken() {
    let graph: Graph = [
        ("google", vec!["limits", "row"]),
        ("row", vec!["event"]),
        ("limits", vec![]),
        ("event", vec![]),
    ]
    .into_iter()
    .map(|(m, e)| (m.to_owned(), e.into_iter().map(String::from).collect()))
    .collect();
    let wrong = above_the_bottom(&graph, "google");
    assert_eq!(wrong.len(), 1, "{wrong:?}");
    assert!(wrong[0].starts_with("google names row"), "{wrong:?}");
}

#[test]
fn the_check_finds_imports_and_cycles() {
    assert_eq!(
        named_modules("use crate::a::B;\nuse crate::{b::{C, D}, c};\nlet x = crate::d::f();"),
        ["a", "b", "c", "d"].map(String::from).into()
    );
    assert_eq!(
        code_of("// crate::a\nuse crate::b;\n#[cfg(test)]\nuse crate::c;"),
        "use crate::b;"
    );
    let graph: Graph = [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")]
        .into_iter()
        .map(|(from, to)| (from.to_owned(), BTreeSet::from([to.to_owned()])))
        .collect();
    let found = cycle(&graph).expect("a -> b -> c -> a");
    assert_eq!(found.first(), found.last());
    assert_eq!(found.len(), 4);
    let mut acyclic = graph.clone();
    acyclic.remove("c");
    assert_eq!(cycle(&acyclic), None);
}
