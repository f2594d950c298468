//! `RUN.md`: the exact commands to run a bundle on its target's runtime and to verify it there.

use std::fmt::Write;

use crate::profile::{Container, TargetProfile};

/// What RUN.md needs to know about the bundle.
#[derive(Debug)]
pub struct RunInfo<'a> {
    /// The bundle's folder name.
    pub bundle: &'a str,
    /// The model file (GGUF) or `.` for folder bundles.
    pub model: &'a str,
    /// The greedy test prompt as token ids.
    pub prompt_ids: &'a [u32],
    /// The greedy tokens the bundle's own weights produce.
    pub greedy: &'a [u32],
    /// Smallest tensor-parallel size that loads (GPU targets).
    pub tp: Option<u64>,
}

/// The text of RUN.md.
pub fn render(profile: &TargetProfile, info: &RunInfo<'_>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {} — {}\n", info.bundle, profile.name);
    let _ = writeln!(s, "{}\n", profile.summary);
    let _ = writeln!(s, "## Check the bundle\n");
    let _ = writeln!(s, "```sh\nwharf verify {}\n```\n", info.bundle);
    let _ = writeln!(
        s,
        "`verify` re-hashes every file against `manifest.json`, then runs wharf's reference \
         forward pass on these bytes and compares it with `reference.json` (exit 0 only when both pass).\n"
    );
    let _ = writeln!(s, "## Run it\n");
    match profile.container {
        Container::Gguf => {
            let _ = writeln!(
                s,
                "```sh\nllama-cli -m {0}/{1} -p \"Hello\" -n 64\nllama-server -m {0}/{1} --port 8080\n```\n",
                info.bundle, info.model
            );
        }
        Container::Mlx => {
            let _ = writeln!(
                s,
                "```sh\npip install mlx-lm\nmlx_lm.generate --model {} --prompt \"Hello\" --max-tokens 64\n```\n",
                info.bundle
            );
        }
        Container::HfFp8 => {
            let tp = info.tp.unwrap_or(1);
            let _ = writeln!(
                s,
                "```sh\nvllm serve {0} --tensor-parallel-size {tp}\n\
                 python -m sglang.launch_server --model-path {0} --tp {tp}\n```\n",
                info.bundle
            );
        }
    }
    let _ = writeln!(
        s,
        "Greedy decoding of the prompt ids `{:?}` gives `{:?}` with these weights.",
        info.prompt_ids, info.greedy
    );
    s
}
