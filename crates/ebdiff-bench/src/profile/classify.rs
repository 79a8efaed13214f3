//! What the samples of a profiled energy step mean: each `perf script` sample's phase (from the
//! time windows the child marked), op, op kind (as `scripts/bench/torch_bench.py --profile`
//! groups PyTorch's), model layer and leaf kernel (from its call stack).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The phases of one energy step, in order (the names torch_bench.py's record_function uses).
pub const PHASES: [&str; 5] = [
    "noise batch",
    "energy forward",
    "∇ₓE (VJP)",
    "loss + backward",
    "optimizer",
];

/// What the child writes: per timed step, per phase, [start, end) in CLOCK_MONOTONIC ns.
#[derive(Debug, Serialize, Deserialize)]
pub struct Marks {
    pub windows: Vec<(usize, u64, u64)>,
    pub step_seconds: Vec<f64>,
}

/// The op kinds of `torch_bench.py --profile`, in its order, so the tables line up.
pub const KINDS: [&str; 7] = [
    "conv forward",
    "conv backward / weight grads",
    "norms (GroupNorm/LayerNorm)",
    "attention / matmul",
    "elementwise & reductions",
    "optimizer",
    "other",
];

/// Sample counts of the profiled steps by phase, op, kind, layer and leaf kernel.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Profile {
    /// Samples inside the timed steps' phase windows.
    pub samples: usize,
    /// Phase (`PHASES`) → samples.
    pub phases: BTreeMap<String, usize>,
    /// Op (finer than a kind: which conv, whose gradient) → samples.
    pub ops: BTreeMap<String, usize>,
    /// Kind (`KINDS`) → samples.
    pub kinds: BTreeMap<String, usize>,
    /// Model layer (forward and ∇ₓE phases only; backward samples carry no layer) → samples.
    pub layers: BTreeMap<String, usize>,
    /// Leaf kernel family → samples.
    pub kernels: BTreeMap<String, usize>,
}

/// Counts the samples of `perf script -F tid,time,ip,sym --ns` output that fall in a marked
/// phase window.
pub fn classify(text: &str, marks: &Marks) -> Profile {
    let mut p = Profile::default();
    for sample in parse_samples(text) {
        let Some(phase) = phase_at(marks, sample.time_ns) else {
            continue;
        };
        p.samples += 1;
        let op = op_of(phase, &sample.frames);
        *p.phases.entry(PHASES[phase].into()).or_default() += 1;
        *p.kinds.entry(kind_of(op).into()).or_default() += 1;
        *p.ops.entry(op.into()).or_default() += 1;
        if let Some(layer) = layer_of(&sample.frames) {
            *p.layers.entry(layer).or_default() += 1;
        }
        *p.kernels
            .entry(kernel_of(&sample.frames).into())
            .or_default() += 1;
    }
    p
}

/// The op a sample works for, read from its stack (any frame, leaf first).
fn op_of(phase: usize, frames: &[String]) -> &'static str {
    let has = |needle: &str| frames.iter().any(|f| f.contains(needle));
    // Burn's default conv backward helpers (burn-backend modules/conv.rs) name the gradient.
    if PHASES[phase] == "optimizer" || has("burn_optim::") {
        "optimizer (Adam)"
    } else if has("conv2d_weight_backward") || has("conv_transpose2d_weight_backward") {
        "conv weight gradients"
    } else if has("conv2d_bias_backward") || has("conv_transpose2d_bias_backward") {
        "conv bias gradients"
    } else if has("conv2d_x_backward") || has("conv_transpose2d_x_backward") {
        "conv input gradients (backward)"
    } else if has(">::conv_transpose2d") || has(">::conv2d") {
        match PHASES[phase] {
            "energy forward" => "conv forward",
            "∇ₓE (VJP)" => "conv VJP (∇ₓ, in the graph)",
            _ => "conv, other",
        }
    } else if has("ebdiff_model::layers::norm::") && PHASES[phase] != "loss + backward" {
        "norms (forward and VJP)"
    } else if has("burn_flex::ops::matmul") {
        "matmul (attention, linear)"
    } else if has("burn_flex::ops::") {
        "elementwise & reductions"
    } else if has("burn_autodiff::") {
        "autodiff bookkeeping"
    } else {
        "other"
    }
}

fn kind_of(op: &str) -> &'static str {
    match op {
        "conv forward" => KINDS[0],
        o if o.starts_with("conv") => KINDS[1],
        o if o.starts_with("norms") => KINDS[2],
        o if o.starts_with("matmul") => KINDS[3],
        "elementwise & reductions" => KINDS[4],
        o if o.starts_with("optimizer") => KINDS[5],
        _ => KINDS[6],
    }
}

/// `ebdiff_model::layers::conv::…` → `conv`, from the innermost model-layer frame.
fn layer_of(frames: &[String]) -> Option<String> {
    frames.iter().find_map(|f| {
        let rest = &f[f.find("ebdiff_model::layers::")? + "ebdiff_model::layers::".len()..];
        Some(rest.split("::").next()?.to_string())
    })
}

/// The family of the leaf symbol: what the CPU was executing.
fn kernel_of(frames: &[String]) -> &'static str {
    // Closures that rayon calls (flex's parallel loops, inlined) are named by the frame that
    // made them; gemm's thread-local buffers likewise.
    let generic = |f: &&String| {
        ["core::ops::function", "rayon", "std::thread::local"]
            .iter()
            .any(|g| f.contains(g))
    };
    let leaf = frames
        .iter()
        .find(|f| !generic(f))
        .or(frames.first())
        .map(String::as_str)
        .unwrap_or("");
    let any = |needles: &[&str]| needles.iter().any(|n| leaf.contains(n));
    if any(&["gemm_f32", "gemm_common", "gemm::"]) {
        "gemm (matrix multiply)"
    } else if any(&["burn_flex::ops::conv"]) {
        "direct conv loops (im2col, col2im)"
    } else if any(&[
        "memcpy",
        "memmove",
        "copy_2d_tiled",
        "StridedIter",
        "Clone>::clone",
    ]) {
        "copies & layout changes"
    } else if any(&[
        "malloc",
        "free",
        "memset",
        "page",
        "clear_page",
        "mem_cgroup",
        "memcg",
        "mm_",
    ]) {
        "allocation, zeroing & page faults"
    } else if any(&[
        "burn_flex::",
        "macerator",
        "expf",
        "asuint",
        "FnMut<A> for &F",
        "zip",
    ]) {
        "elementwise & reduction loops"
    } else if any(&["rayon", "futex", "sched", "LocalKey"]) {
        "threads & scheduling"
    } else if any(&[
        "burn_autodiff",
        "hashbrown",
        "Arc<",
        "btree",
        "burn_tensor",
        "burn_dispatch",
    ]) {
        "autodiff graph & dispatch"
    } else {
        "other"
    }
}

struct Sample {
    time_ns: u64,
    /// Symbols, leaf first.
    frames: Vec<String>,
}

/// `perf script -F tid,time,ip,sym --ns`: a header line `TID SECONDS.NANOS:` then one line per
/// frame (`ADDR SYMBOL+OFF`), then a blank line.
fn parse_samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut current: Option<Sample> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            out.extend(current.take());
            continue;
        }
        if !line.starts_with(char::is_whitespace) || trimmed.ends_with(':') && current.is_none() {
            out.extend(current.take());
            let time = trimmed
                .split_whitespace()
                .nth(1)
                .and_then(|t| t.trim_end_matches(':').split_once('.'))
                .and_then(|(s, ns)| {
                    Some(s.parse::<u64>().ok()? * 1_000_000_000 + ns.parse::<u64>().ok()?)
                });
            current = time.map(|time_ns| Sample {
                time_ns,
                frames: Vec::new(),
            });
            continue;
        }
        if let Some(s) = current.as_mut() {
            let sym = trimmed
                .split_once(' ')
                .map(|(_, s)| s)
                .unwrap_or("[unknown]");
            let sym = sym.rsplit_once("+0x").map(|(s, _)| s).unwrap_or(sym);
            s.frames.push(sym.to_string());
        }
    }
    out.extend(current);
    out
}

fn phase_at(marks: &Marks, t: u64) -> Option<usize> {
    marks
        .windows
        .iter()
        .find(|(_, a, b)| *a <= t && t < *b)
        .map(|(phase, _, _)| *phase)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two samples as `perf script -F tid,time,ip,sym --ns` prints them (frames abridged from a
    /// real run): a weight gradient in the backward, a conv VJP from the model.
    const SCRIPT: &str = "\
24795 56363.000000100: 
\t         16fbad3 gemm_f32::microkernel::fma::f32::x2x6+0x13
\t         1167f2f core::ops::function::impls::<impl core::ops::function::FnMut<A> for &F>::call_mut
\t         11adf89 burn_flex::ops::conv::gemm_f32
\t         11c0037 burn_flex::ops::module::<impl burn_backend::backend::ops::modules::base::ModuleOps<burn_flex::backend::Flex> for burn_flex::backend::Flex>::conv2d
\t         11c0040 burn_backend::backend::ops::modules::conv::conv2d_weight_backward
\t         10ec60b <burn_autodiff::ops::module::<impl burn_backend::backend::ops::modules::base::ModuleOps<burn_autodiff::backend::Autodiff<B,C>> for burn_autodiff::backend::Autodiff<B,C>>::conv2d::Conv2DWithBias as burn_autodiff::ops::backward::Backward<B,3_usize>>::backward

24795 56363.000000200: 
\t         15e4766 burn_flex::ops::conv_transpose::conv_transpose3d_impl::{{closure}}
\t         11c0037 burn_flex::ops::module::<impl burn_backend::backend::ops::modules::base::ModuleOps<burn_flex::backend::Flex> for burn_flex::backend::Flex>::conv_transpose2d
\t         10a5aef burn_tensor::tensor::module::conv_transpose2d
\t          edf0f1 <ebdiff_model::layers::conv::Conv2d as ebdiff_model::vjp::Vjp<burn_tensor::tensor::api::base::Tensor<4_usize>>>::vjp
\t          eab3dc ebdiff_model::model::DiffusionModel::head_grad

24795 56363.000000300: 
\t         16fbad3 __memset_avx512_unaligned_erms
";

    #[test]
    fn samples_are_parsed_with_their_time_and_frames_leaf_first() {
        let s = parse_samples(SCRIPT);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].time_ns, 56_363_000_000_100);
        assert_eq!(s[0].frames[0], "gemm_f32::microkernel::fma::f32::x2x6");
        assert_eq!(s[1].frames.len(), 5);
        assert_eq!(s[2].frames, ["__memset_avx512_unaligned_erms"]);
    }

    #[test]
    fn phase_comes_from_the_time_op_kind_and_layer_from_the_stack() {
        let marks = Marks {
            // Sample 1 in "loss + backward", sample 2 in "∇ₓE (VJP)", sample 3 outside.
            windows: vec![
                (3, 56_363_000_000_050, 56_363_000_000_150),
                (2, 56_363_000_000_150, 56_363_000_000_250),
            ],
            step_seconds: vec![1.0],
        };
        let p = classify(SCRIPT, &marks);
        assert_eq!(p.samples, 2);
        assert_eq!(p.phases["loss + backward"], 1);
        assert_eq!(p.phases["∇ₓE (VJP)"], 1);
        assert_eq!(p.ops["conv weight gradients"], 1);
        assert_eq!(p.ops["conv VJP (∇ₓ, in the graph)"], 1);
        assert_eq!(p.kinds["conv backward / weight grads"], 2);
        assert_eq!(p.layers["conv"], 1);
        // The rayon closure is named by the frame that made it: gemm.
        assert_eq!(p.kernels["gemm (matrix multiply)"], 1);
        assert_eq!(p.kernels["direct conv loops (im2col, col2im)"], 1);
    }

    #[test]
    fn the_same_conv_is_forward_or_vjp_by_phase_and_kinds_match_torch_bench() {
        let conv =
            vec!["burn_flex::ops::module::<impl ModuleOps<Flex> for Flex>::conv2d".to_string()];
        assert_eq!(op_of(1, &conv), "conv forward");
        assert_eq!(kind_of(op_of(1, &conv)), KINDS[0]);
        assert_eq!(kind_of(op_of(2, &conv)), KINDS[1]);
        let adam = vec!["burn_optim::optim::adam::AdaptiveMomentum::transform".to_string()];
        assert_eq!(kind_of(op_of(3, &adam)), "optimizer");
        let norm = vec![
            "burn_flex::ops::binary::binary_op".to_string(),
            "ebdiff_model::layers::norm::GroupNorm::forward".to_string(),
        ];
        assert_eq!(kind_of(op_of(1, &norm)), KINDS[2]);
        // In the backward no model frame is on the stack: the norm's ops are elementwise there.
        assert_eq!(kind_of(op_of(3, &norm)), KINDS[4]);
    }
}
