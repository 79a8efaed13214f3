//! HTML pages from templates: escaping and `{{name}}` substitution, shared by the sweep report
//! and the run report.

use anyhow::{Context, Result, bail};

/// Text for HTML: `&`, `<`, `>` and `"` escaped.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `template` with every `{{key}}` replaced by its value, inserted as is (escape text first) and
/// not scanned again. A placeholder without a value, or a value without a placeholder, is an
/// error: the template and this code disagree.
pub fn fill(template: &str, values: &[(&str, &str)]) -> Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut used = vec![false; values.len()];
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .context("the report template has an unclosed `{{`")?;
        let key = &after[..end];
        let Some(i) = values.iter().position(|(k, _)| *k == key) else {
            bail!("the report template's `{{{{{key}}}}}` has no value");
        };
        used[i] = true;
        out.push_str(values[i].1);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    if let Some(i) = used.iter().position(|u| !u) {
        bail!("the report template has no `{{{{{}}}}}`", values[i].0);
    }
    Ok(out)
}
