//! Progress bars and Ctrl-C handling shared by the commands.

use ebdiff_sampler::Progress;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Ctrl-C sets the returned flag (long jobs then checkpoint and stop); a second Ctrl-C exits.
pub fn stop_on_ctrl_c() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(stop)
}

/// A bar over `len` items with `unit` in its label and an ETA.
pub fn bar(len: usize, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(ProgressStyle::with_template(template).expect("static template"));
    bar
}

/// A bar over the levels of a sampler.
pub fn level_bar(levels: usize) -> ProgressBar {
    bar(
        levels,
        "{bar:30} level {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
    )
}

/// Shows a sampler's [`Progress`] on a level bar.
pub fn show_level(bar: &ProgressBar, p: &Progress) {
    bar.set_length(p.levels_total as u64);
    bar.set_position(p.levels_done as u64);
    let mut msg = Vec::new();
    if let Some(a) = p.acceptance {
        msg.push(format!("acceptance {a:.2}"));
    }
    if let Some(e) = p.ess {
        msg.push(format!("ESS {:.0}%", 100.0 * e));
    }
    if !msg.is_empty() {
        bar.set_message(msg.join("  "));
    }
}

/// One bar per stage of an FID pipeline ([`ebdiff_eval::pipeline::Progress`]), replaced when
/// the stage changes and cleared when it completes.
#[derive(Default)]
pub struct StageBars {
    current: Option<(String, ProgressBar)>,
    /// Ranks other than 0 draw nothing (rank 0's bar shows its own share).
    hidden: bool,
}

impl StageBars {
    pub fn for_rank(group: &dyn ebdiff_core::Collective) -> Self {
        StageBars {
            current: None,
            hidden: !group.is_root(),
        }
    }

    pub fn show(&mut self, p: ebdiff_eval::pipeline::Progress) {
        if self.hidden {
            return;
        }
        if self
            .current
            .as_ref()
            .is_none_or(|(stage, _)| stage != p.stage)
        {
            self.finish();
            let bar = ProgressBar::new(p.total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {pos}/{len} images ({per_sec}, eta {eta})",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar.set_message(p.stage.to_string());
            self.current = Some((p.stage.to_string(), bar));
        }
        let (_, bar) = self.current.as_ref().expect("set above");
        bar.set_position(p.done as u64);
        if p.done >= p.total {
            self.finish();
        }
    }

    fn finish(&mut self) {
        if let Some((_, bar)) = self.current.take() {
            bar.finish_and_clear();
        }
    }
}
