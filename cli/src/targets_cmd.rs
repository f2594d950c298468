//! `wharf targets [--json]`: the target profiles and what each produces.

use anyhow::Result;
use wharf_targets::TARGETS;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print the profiles as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    if args.json {
        let all: Vec<_> = TARGETS.iter().map(|t| t.to_json()).collect();
        return crate::emit(&format!("{}\n", serde_json::to_string_pretty(&all)?));
    }
    let mut s = String::new();
    for t in TARGETS {
        s.push_str(&format!(
            "{:<14} {}\n{:<14} default {}, schemes {}; runtimes {}; memory {} GiB\n",
            t.name,
            t.summary,
            "",
            t.default_scheme,
            t.schemes.join(" "),
            t.runtimes.join(", "),
            t.memory_gib
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join("/"),
        ));
    }
    crate::emit(&s)
}
