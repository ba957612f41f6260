//! The documentation, checked against the repository (no network, no emulator):
//!
//! 1. every relative markdown link in `README.md`, `docs/*.md`, `tests/README.md` and
//!    `terraform/README.md` points at a file or directory that exists (anchors are not checked);
//! 2. `terraform/README.md`'s Inputs and Outputs tables name exactly the module's `variable` and
//!    `output` blocks;
//! 3. `README.md` stays a short page for newcomers.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use e2e::emulators::repo_root;

/// The longest `README.md` may get: everything in depth belongs in `docs/` and the other pages.
const README_MAX_LINES: usize = 160;

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// The pages whose links are checked.
fn pages() -> Result<Vec<PathBuf>> {
    let root = repo_root();
    let mut pages = vec![
        root.join("README.md"),
        root.join("tests/README.md"),
        root.join("terraform/README.md"),
    ];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .context("reading docs/")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    ensure!(!docs.is_empty(), "no pages in docs/");
    pages.extend(docs);
    Ok(pages)
}

/// Removes inline code spans (`` `...` ``) from a line, keeping everything else, so that
/// `[text](path)` written as code is not taken for a link. A link's text may itself be code
/// (`` [`file`](file) ``): that leaves `[](file)`, still a link.
fn strip_code_spans(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            out.push(c);
        }
    }
    out
}

/// Every inline link target `[text](target)` of a markdown page, with its line number, outside
/// fenced code blocks. A title (`[text](target "title")`) is dropped.
fn link_targets(markdown: &str) -> Vec<(usize, String)> {
    let mut targets = Vec::new();
    let mut fenced = false;
    for (n, line) in markdown.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let line = strip_code_spans(line);
        let mut rest = line.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].split_whitespace().next().unwrap_or("");
            targets.push((n + 1, target.to_owned()));
            rest = &after[end..];
        }
    }
    targets
}

/// The path a link points at, or `None` for links that leave the repository or stay on the page.
fn local_path(target: &str) -> Option<&str> {
    let lower = target.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("mailto:")
    {
        return None;
    }
    let path = target.split('#').next().unwrap_or("");
    (!path.is_empty()).then_some(path)
}

#[test]
fn link_targets_are_found_and_filtered() {
    let page = "See [a](docs/a.md), [`b`](b.rs#L1) and [c](https://x.example/y) or [d](#here).\n\
                `[not](a-link.md)` and ![img](img.png \"title\")\n\
                ```\n[in](code.md)\n```\n";
    let targets: Vec<String> = link_targets(page).into_iter().map(|(_, t)| t).collect();
    assert_eq!(
        targets,
        [
            "docs/a.md",
            "b.rs#L1",
            "https://x.example/y",
            "#here",
            "img.png"
        ]
    );
    let local: Vec<&str> = targets.iter().filter_map(|t| local_path(t)).collect();
    assert_eq!(local, ["docs/a.md", "b.rs", "img.png"]);
}

#[test]
fn every_relative_link_points_at_something_that_exists() -> Result<()> {
    let root = repo_root();
    let mut broken = Vec::new();
    for page in pages()? {
        let text = read(&page)?;
        let dir = page.parent().context("a page has a directory")?;
        let name = page
            .strip_prefix(&root)
            .unwrap_or(&page)
            .display()
            .to_string();
        let targets = link_targets(&text);
        ensure!(!targets.is_empty(), "{name} has no links at all");
        for (line, target) in &targets {
            let Some(path) = local_path(target) else {
                continue;
            };
            if !dir.join(path).exists() {
                broken.push(format!("{name}:{line}: {target}"));
            }
        }
    }
    ensure!(
        broken.is_empty(),
        "links to files that do not exist:\n{}",
        broken.join("\n")
    );
    Ok(())
}

/// Names of the top-level `KIND "name"` blocks of a Terraform file (`variable`, `output`).
fn block_names(hcl: &str, kind: &str) -> Vec<String> {
    let prefix = format!("{kind} \"");
    hcl.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// The first column of the markdown table under the `## {heading}` heading (header and separator
/// rows skipped, backquotes removed).
fn table_names(markdown: &str, heading: &str) -> Result<Vec<String>> {
    let mut lines = markdown
        .lines()
        .skip_while(|l| l.trim() != format!("## {heading}"));
    ensure!(lines.next().is_some(), "no `## {heading}` section");
    let rows: Vec<&str> = lines
        .take_while(|l| !l.starts_with('#'))
        .map(str::trim)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .collect();
    ensure!(
        rows.len() > 2 && rows[1].replace(['|', '-', ':', ' '], "").is_empty(),
        "the {heading} section has no table (a header, a separator and at least one row)"
    );
    Ok(rows[2..]
        .iter()
        .map(|row| {
            row.trim_start_matches('|')
                .split('|')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('`')
                .to_owned()
        })
        .collect())
}

fn same_names(documented: &[String], declared: &[String], what: &str) -> Result<()> {
    same_names_in(
        "terraform/README.md",
        "terraform/",
        documented,
        declared,
        what,
    )
}

/// `documented` (a table of `page`) names exactly `declared` (found in `source`), once each.
fn same_names_in(
    page: &str,
    source: &str,
    documented: &[String],
    declared: &[String],
    what: &str,
) -> Result<()> {
    let mut seen = BTreeSet::new();
    let duplicates: Vec<&String> = documented.iter().filter(|n| !seen.insert(*n)).collect();
    let declared: BTreeSet<&String> = declared.iter().collect();
    let missing: Vec<&&String> = declared.difference(&seen).collect();
    let unknown: Vec<&&String> = seen.difference(&declared).collect();
    ensure!(
        !declared.is_empty(),
        "no {what} found in {source} (has the file moved?)"
    );
    ensure!(
        missing.is_empty() && unknown.is_empty() && duplicates.is_empty(),
        "{page} {what}: missing {missing:?}, not in {source} {unknown:?}, \
         listed twice {duplicates:?}"
    );
    Ok(())
}

#[test]
fn tests_readme_lists_exactly_the_calls_to_google_and_the_documents_revisions() -> Result<()> {
    let root = repo_root();
    let readme = read(&root.join("tests/README.md"))?;
    let calls: Vec<String> = pipeline::google::CALLS
        .iter()
        .map(|c| c.id.to_string())
        .collect();
    let documented = table_names(&readme, "Requests to Google's APIs")?;
    same_names_in(
        "tests/README.md",
        "pipeline::google::CALLS",
        &documented,
        &calls,
        "calls",
    )?;
    // The line that says where the discovery documents come from names each one's revision.
    let flat = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    for (_, file) in e2e::contract::discovery::DOCUMENTS {
        let doc: serde_json::Value =
            serde_json::from_str(&read(&root.join("tests/discovery").join(file))?)?;
        let revision = doc["revision"].as_str().unwrap_or_default();
        ensure!(
            flat.contains(&format!("`{file}` (revision {revision})")),
            "tests/README.md does not give {file}'s revision {revision}"
        );
    }
    Ok(())
}

#[test]
fn terraform_readme_lists_exactly_the_inputs_and_outputs() -> Result<()> {
    let root = repo_root();
    let readme = read(&root.join("terraform/README.md"))?;
    let variables = block_names(&read(&root.join("terraform/variables.tf"))?, "variable");
    let outputs = block_names(&read(&root.join("terraform/outputs.tf"))?, "output");
    same_names(&table_names(&readme, "Inputs")?, &variables, "Inputs")?;
    same_names(&table_names(&readme, "Outputs")?, &outputs, "Outputs")?;
    Ok(())
}

#[test]
fn table_names_reads_the_first_column_of_its_own_section() -> Result<()> {
    let page = "## Inputs\n\ntext\n\n| Name | Type |\n|---|---|\n| `a` | string |\n| b | number |\n\n\
                ## Outputs\n\n| Name |\n|---|\n| `c` |\n";
    ensure!(table_names(page, "Inputs")? == ["a", "b"]);
    ensure!(table_names(page, "Outputs")? == ["c"]);
    ensure!(table_names(page, "Missing").is_err());
    ensure!(
        block_names(
            "variable \"x\" {\n}\n  # variable \"y\"\noutput \"z\" {}\n",
            "variable"
        ) == ["x"]
    );
    ensure!(
        same_names(&["x".into()], &["x".into(), "y".into()], "Inputs").is_err(),
        "a missing name must fail"
    );
    ensure!(
        same_names(&["x".into(), "x".into()], &["x".into()], "Inputs").is_err(),
        "a duplicate must fail"
    );
    Ok(())
}

#[test]
fn readme_stays_short() -> Result<()> {
    let lines = read(&repo_root().join("README.md"))?.lines().count();
    ensure!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines (at most {README_MAX_LINES}): move detail to docs/ and link to it"
    );
    Ok(())
}
