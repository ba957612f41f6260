use crate::*;

pub(crate) fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

/// A fraction as a percentage, to two decimals at most: 0.01 → "1", 0.075 → "7.5".
pub(crate) fn percent(fraction: f64) -> String {
    let text = format!("{:.2}", fraction * 100.0);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

pub(crate) fn usd(v: f64) -> String {
    if v.abs() < 5e-7 {
        return "–".into();
    }
    if v >= 100.0 {
        return format!("${}", thousands(v));
    }
    let decimals = (2 - v.log10().floor() as i32).max(2) as usize;
    format!("${v:.decimals$}")
}

pub(crate) fn micros(s: f64) -> String {
    format!("{:.1} µs", s * 1e6)
}

/// Seconds as µs, or ms from a millisecond up.
pub(crate) fn duration(s: f64) -> String {
    if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        micros(s)
    }
}

/// A table row; a `|` inside a cell (a page title) is escaped.
pub(crate) fn row(cells: &[String]) -> String {
    let cells = cells
        .iter()
        .map(|c| c.replace('|', "\\|"))
        .collect::<Vec<_>>();
    format!("| {} |\n", cells.join(" | "))
}

pub(crate) fn header(cells: &[String]) -> String {
    let mut out = row(cells);
    out.push_str(&row(&vec!["---".to_string(); cells.len()]));
    out
}

/// A per-million table: one row per line, one column per kind, and the total.
pub(crate) fn cost_table(out: &mut String, title: &str, kinds: &[Kind], usages: &[Usage], c: &Ctx) {
    let heading = format!("**{title}**, USD per million events:");
    lines_table(out, &heading, kinds, usages, usages, c);
}

/// The lines of `lines` (one column per kind) under `heading`, and the totals of `totals`.
pub(crate) fn lines_table(
    out: &mut String,
    heading: &str,
    kinds: &[Kind],
    lines: &[Usage],
    totals: &[Usage],
    c: &Ctx,
) {
    let _ = writeln!(out, "{heading}\n");
    let mut head = vec!["item".to_string(), "from".to_string()];
    head.extend(kinds.iter().map(|k| k.title.clone()));
    out.push_str(&header(&head));
    for (i, l) in lines[0].lines.iter().enumerate() {
        let mut cells = vec![l.label.clone(), l.basis.to_string()];
        cells.extend(
            lines
                .iter()
                .map(|u| usd(line_cost(&u.lines[i], c) * MILLION)),
        );
        out.push_str(&row(&cells));
    }
    let mut total = vec!["**total**".to_string(), String::new()];
    total.extend(
        totals
            .iter()
            .map(|u| format!("**{}**", usd(per_million(u, c)))),
    );
    out.push_str(&row(&total));
    out.push('\n');
}
