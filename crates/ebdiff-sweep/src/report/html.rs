//! `index.html`: the page skeleton and style are `template.html`, one panel's section (table,
//! plots, samples of the first seed of every group) is `panel.html`; both are filled by
//! `{{name}}` substitution ([`fill`]).

use super::tables::Table;
use super::{CellState, Report};
use crate::cell::STATUS_OK;
use crate::cell_dir;
use anyhow::Result;
use ebdiff_eval::html::{escape as esc, fill};
use std::fmt::Write as _;

const PAGE: &str = include_str!("template.html");
const PANEL: &str = include_str!("panel.html");

/// The page: the sweep's description and counts, then one section per panel.
pub(super) fn index_html(
    report: &Report,
    command: &str,
    counts: &str,
    tables: &[Table],
    plots: &[Vec<(String, String)>],
) -> Result<String> {
    let mut panels = String::new();
    for ((panel, table), files) in report.panels.iter().zip(tables).zip(plots) {
        let header: String = table
            .header
            .iter()
            .map(|h| format!("<th>{}</th>", esc(h)))
            .collect();
        let mut rows = String::new();
        for row in &table.rows {
            rows.push_str(if row.exact {
                "<tr class=\"exact\">"
            } else {
                "<tr>"
            });
            for c in &row.cells {
                let _ = write!(rows, "<td>{}</td>", esc(c));
            }
            rows.push_str("</tr>\n");
        }
        let plots_html: String = files
            .iter()
            .map(|(f, t)| {
                format!(
                    "<figure><img class=\"plot\" src=\"plots/{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>\n",
                    esc(f),
                    esc(t),
                    esc(t)
                )
            })
            .collect();
        // Samples of the first seed of every group.
        let mut gallery = String::new();
        for g in &panel.groups {
            let first_ok = g.cells.iter().find(|(c, s)| {
                matches!(s, CellState::Done(r) if r.status == STATUS_OK)
                    && cell_dir(report.out, c).join("samples.png").exists()
            });
            if let Some((c, _)) = first_ok {
                let rel = format!("../cells/{}/samples.png", c.dir_name());
                let _ = writeln!(
                    gallery,
                    "<figure><img src=\"{}\" alt=\"samples of {}\" width=\"192\" height=\"192\"><figcaption>{}</figcaption></figure>",
                    esc(&rel),
                    esc(&c.name),
                    esc(&c.name)
                );
            }
        }
        panels.push_str(&fill(
            PANEL,
            &[
                ("panel", &esc(&panel.name)),
                ("header", &header),
                ("rows", &rows),
                ("plots", &plots_html),
                ("gallery", &gallery),
            ],
        )?);
    }
    fill(
        PAGE,
        &[
            ("name", &esc(&report.sweep.name)),
            ("description", &esc(&report.sweep.description)),
            ("command", &esc(command)),
            ("counts", &esc(counts)),
            ("panels", &panels),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_every_placeholder_once_and_refuses_mismatches() {
        let page = fill("<b>{{a}}</b>{{b}}{{a}}", &[("a", "{{b}}"), ("b", "x&y")]).unwrap();
        assert_eq!(page, "<b>{{b}}</b>x&y{{b}}");
        let missing = fill("{{a}}{{c}}", &[("a", "")]).unwrap_err().to_string();
        assert!(missing.contains("`{{c}}` has no value"), "{missing}");
        let unused = fill("{{a}}", &[("a", ""), ("b", "")])
            .unwrap_err()
            .to_string();
        assert!(unused.contains("no `{{b}}`"), "{unused}");
        assert!(fill("{{a", &[]).is_err());
    }

    #[test]
    fn both_templates_hold_exactly_the_placeholders_filled_here() {
        let page = ["name", "description", "command", "counts", "panels"].map(|k| (k, ""));
        assert!(fill(PAGE, &page).is_ok());
        let panel = ["panel", "header", "rows", "plots", "gallery"].map(|k| (k, ""));
        assert!(fill(PANEL, &panel).is_ok());
    }
}
