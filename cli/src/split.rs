//! `--split-max-size SIZE` / `--split-max-tensors N`: GGUF output as llama.cpp's split set, with
//! the options and units of `llama-gguf-split --split`.

use anyhow::{Result, anyhow};
use wharf_converters::gguf::split::{SplitBy, parse_size};

#[derive(clap::Args, Debug, Default, Clone)]
pub struct SplitArgs {
    /// Write the GGUF as llama.cpp's split set (`NAME-00001-of-0000N.gguf` ...): a new file when
    /// the next tensor would take this one's tensor data past SIZE (`M` or `G`, decimal, as
    /// llama-gguf-split: `50G`, the Hub's per-file limit).
    #[arg(long, value_name = "SIZE")]
    pub split_max_size: Option<String>,
    /// Write the GGUF as llama.cpp's split set with at most N tensors per file.
    #[arg(long, value_name = "N", conflicts_with = "split_max_size")]
    pub split_max_tensors: Option<usize>,
}

impl SplitArgs {
    /// How to cut the output, if asked.
    pub fn by(&self) -> Result<Option<SplitBy>> {
        if let Some(s) = &self.split_max_size {
            return Ok(Some(SplitBy::Size(parse_size(s).map_err(|e| anyhow!(e))?)));
        }
        match self.split_max_tensors {
            Some(0) => Err(anyhow!("--split-max-tensors must be at least 1")),
            Some(n) => Ok(Some(SplitBy::Tensors(n))),
            None => Ok(None),
        }
    }
}
