//! The terminal progress bar (indicatif) for quantize, convert and export: tensors done and
//! output bytes. Drawn only when stderr is a terminal, so pipes, logs and tests stay quiet.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use wharf_core::TensorMeta;
use wharf_targets::Step;

/// A bar that starts on the first step and clears itself when dropped.
#[derive(Debug)]
pub struct Bar {
    bar: Option<ProgressBar>,
    label: &'static str,
}

impl Bar {
    /// A bar for `label` (e.g. "quantizing"); hidden unless stderr is a terminal.
    pub fn new(label: &'static str) -> Bar {
        Bar { bar: None, label }
    }

    /// Records one finished tensor.
    pub fn step(&mut self, s: Step) {
        if !std::io::stderr().is_terminal() {
            return;
        }
        let label = self.label;
        let bar = self.bar.get_or_insert_with(|| {
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {binary_bytes}/{binary_total_bytes} {msg} ({elapsed})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            let bar = ProgressBar::new(s.bytes).with_style(style);
            bar.set_prefix(label);
            bar
        });
        bar.set_position(s.bytes_done);
        bar.set_message(format!("{}/{} tensors", s.tensors_done, s.tensors));
    }

    /// The pipeline's per-index callback for a plan whose output tensors are `metas`.
    pub fn for_metas<'a>(&'a mut self, metas: &[TensorMeta]) -> impl FnMut(usize) + 'a {
        let sizes: Vec<u64> = metas.iter().map(|m| m.nbytes().unwrap_or(0)).collect();
        let bytes = sizes.iter().sum();
        let mut bytes_done = 0;
        move |i| {
            bytes_done += sizes.get(i).copied().unwrap_or(0);
            self.step(Step {
                tensors_done: i + 1,
                tensors: sizes.len(),
                bytes_done,
                bytes,
            });
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
