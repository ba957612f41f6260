//! Code ⊆ list: every environment variable the services' code names is in `config::VARIABLES`
//! (which the README's Configuration table and Terraform's service environments are held to, in
//! `tests/tests/docs.rs` and `tests/tests/terraform.rs`). Read from the non-test code of
//! `shared/src` and `functions/*/src`: every string literal shaped like a variable name
//! (`WORD_WORD…`, capitals, digits and underscores) is one, except in `src/google/`, the Google
//! layer, which reads no environment and names Google's status codes (`NOT_FOUND`, …) instead.
//! Single-word variables (`PORT`, `HOST`) cannot be told from other words by shape; they are read
//! in `config.rs` next to the others.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

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

/// The literals of `code` shaped like variable names, its unit tests and comments left out.
fn variable_names(code: &str) -> BTreeSet<String> {
    let code = code.split("#[cfg(test)]").next().unwrap_or("");
    let mut names = BTreeSet::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, literal) in line.split('"').enumerate() {
            // Odd pieces are inside quotes.
            let shaped = literal.contains('_')
                && literal.starts_with(|c: char| c.is_ascii_uppercase())
                && literal
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if i % 2 == 1 && shaped {
                names.insert(literal.to_owned());
            }
        }
    }
    names
}

#[test]
fn every_variable_the_code_reads_is_listed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("../functions"), &mut files);
    let google = root.join("src/google");
    let mut found = BTreeSet::new();
    for file in files
        .iter()
        .filter(|f| !f.starts_with(&google) && *f != &root.join("src/google.rs"))
    {
        let text = std::fs::read_to_string(file).expect("readable source");
        found.extend(variable_names(&text));
    }
    assert!(
        found.contains("SINK_TIMEOUT_SECONDS") && found.len() > 20,
        "read too little: {found:?}"
    );
    let unlisted: Vec<_> = found
        .iter()
        .filter(|v| !pipeline::config::VARIABLES.contains(&v.as_str()))
        .collect();
    assert!(
        unlisted.is_empty(),
        "read by the code but missing from config::VARIABLES (and so from the README and Terraform's checks): {unlisted:?}"
    );
}

#[test]
fn the_check_finds_a_new_variable() {
    let code = r#"
        // env.get("IN_A_COMMENT")
        let a = env.get("NEW_SETTING").unwrap_or("x_y");
        let b = "Mixed_Case";
        #[cfg(test)]
        let c = env.get("ONLY_IN_TESTS");
    "#;
    assert_eq!(
        variable_names(code),
        BTreeSet::from(["NEW_SETTING".to_owned()])
    );
}
