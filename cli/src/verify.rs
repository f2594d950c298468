//! `wharf verify BUNDLE_OR_ZIP [--json]`.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;
use wharf_targets::verify::verify;

use crate::CheckFailed;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Bundle folder or zip.
    bundle: PathBuf,
    /// Per-file and per-metric results as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let v = verify(&args.bundle)?;
    let r = &v.manifest.reference;
    if args.json {
        let files: Vec<_> = v
            .hashes
            .files
            .iter()
            .map(|f| json!({"path": f.path, "ok": f.status == wharf_manifests::FileStatus::Ok, "status": f.status.to_string()}))
            .collect();
        let out = json!({
            "ok": v.ok(),
            "files": files,
            "reference": v.metrics.as_ref().map(|m| json!({
                "passed": m.passed,
                "top1": m.top1,
                "top1_decisive": m.top1_decisive,
                "decisive_positions": m.decisive_positions,
                "mean_kl": m.mean_kl,
                "max_kl": m.max_kl,
                "greedy": m.greedy,
                "greedy_agreement": m.greedy_agreement,
                "greedy_as_recorded": m.greedy == r.metrics.greedy,
                "thresholds": r.thresholds,
            })),
        });
        crate::emit(&format!("{}\n", serde_json::to_string_pretty(&out)?))?;
    } else {
        let mut s = String::new();
        for f in v.hashes.failures() {
            s.push_str(&format!("FAIL {}: {}\n", f.path, f.status));
        }
        s.push_str(&format!(
            "files: {} of {} intact\n",
            v.hashes.files.len() - v.hashes.failures().count(),
            v.hashes.files.len()
        ));
        if let Some(m) = &v.metrics {
            s.push_str(&format!(
                "reference: top-1 {:.3}, decisive top-1 {:.3} over {} positions (min {}), mean KL {:.5} nats (max {}), max KL {:.5} (max {}), greedy {:?}{}\n",
                m.top1,
                m.top1_decisive,
                m.decisive_positions,
                r.thresholds.min_top1,
                m.mean_kl,
                r.thresholds.max_mean_kl,
                m.max_kl,
                r.thresholds.max_kl,
                m.greedy,
                if m.greedy == r.metrics.greedy {
                    " as recorded"
                } else {
                    " (differs from export)"
                }
            ));
        }
        crate::emit(&s)?;
    }
    if v.ok() {
        Ok(())
    } else if !v.hashes.ok() {
        let names: Vec<_> = v.hashes.failures().map(|f| f.path.as_str()).collect();
        Err(CheckFailed(format!(
            "{}: files fail the manifest: {}",
            args.bundle.display(),
            names.join(", ")
        ))
        .into())
    } else {
        Err(CheckFailed(format!(
            "{}: the reference check is beyond the thresholds",
            args.bundle.display()
        ))
        .into())
    }
}
