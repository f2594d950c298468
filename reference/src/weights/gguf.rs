//! Weights of a GGUF file, presented under their HF names.
//!
//! The model description comes from the file's own metadata, so a GGUF runs without its HF
//! folder. Three llama.cpp layouts are undone on the way out (all from its converter,
//! `convert_hf_to_gguf.py` / `conversion/llama.py`, `conversion/deepseek.py`):
//! - Llama-family `attn_q` / `attn_k` rows are permuted per head so adjacent pairs rotate
//!   (`LlamaModel.permute`); we read them back in HF order and rotate halves as HF does.
//! - DeepSeek's `kv_b_proj` is split into `attn_k_b` `[heads, lora, nope]` (transposed) and
//!   `attn_v_b` `[heads, v, lora]`; we reassemble `[heads * (nope + v), lora]` rows.
//! - Routed experts are stacked into `ffn_{gate,up,down}_exps` `[experts, rows, cols]`.

use wharf_converters::gguf::GgufFile;
use wharf_converters::hf::gguf_block_name as block_name;
use wharf_core::model::ModelSpec;
use wharf_core::{Access, TensorSource};

use super::{StoredRows, Weights, decode_rows, matrix_shape};
use crate::{Error, Result};

mod spec;

/// A GGUF file read in place.
#[derive(Debug)]
pub struct GgufWeights {
    file: GgufFile,
    spec: ModelSpec,
    /// Q/K rows were permuted by llama.cpp's converter (`general.architecture` = llama).
    permuted_qk: bool,
    /// Drop a weight's cached pages after each matmul ([`Weights::release`]).
    release_pages: bool,
}

/// Where a logical weight's rows live.
enum Loc {
    /// Rows `offset ..` of a stored tensor.
    Rows { tensor: String, offset: usize },
    /// A llama.cpp-permuted Q or K projection with `heads` heads.
    Unpermute { tensor: String, heads: usize },
    /// DeepSeek's `kv_b_proj`, rebuilt from `attn_k_b` and `attn_v_b`.
    KvB { k_b: String, v_b: String },
}

impl GgufWeights {
    /// Wraps an opened GGUF file; fails when its metadata does not describe a supported model.
    pub fn new(file: GgufFile) -> Result<Self> {
        let (spec, permuted_qk) = spec::from_metadata(&file)?;
        Ok(GgufWeights {
            file,
            spec,
            permuted_qk,
            release_pages: false,
        })
    }

    fn stored_shape(&self, tensor: &str) -> Option<[usize; 2]> {
        self.file.meta(tensor).and_then(matrix_shape)
    }

    fn locate(&self, name: &str) -> Option<(Loc, [usize; 2])> {
        let plain = |t: String| {
            let shape = self.stored_shape(&t)?;
            Some((
                Loc::Rows {
                    tensor: t,
                    offset: 0,
                },
                shape,
            ))
        };
        match name {
            "model.embed_tokens.weight" => return plain("token_embd.weight".into()),
            "model.norm.weight" => return plain("output_norm.weight".into()),
            "lm_head.weight" => return plain("output.weight".into()),
            _ => {}
        }
        let rest = name.strip_prefix("model.layers.")?;
        let (bid, tail) = rest.split_once('.')?;
        let bid: usize = bid.parse().ok()?;
        if let Some(e) = tail.strip_prefix("mlp.experts.") {
            let (expert, proj) = e.split_once('.')?;
            let expert: usize = expert.parse().ok()?;
            let stem = proj.strip_suffix("_proj.weight")?;
            let tensor = format!("blk.{bid}.ffn_{stem}_exps.weight");
            let [rows, cols] = self.stored_shape(&tensor)?;
            let n = usize::try_from(self.spec.moe.as_ref()?.n_routed_experts).ok()?;
            let per = rows.checked_div(n)?;
            if expert >= n {
                return None;
            }
            let offset = expert * per;
            return Some((Loc::Rows { tensor, offset }, [per, cols]));
        }
        if tail == "self_attn.kv_b_proj.weight" {
            let mla = self.spec.mla.as_ref()?;
            let rows =
                usize::try_from(self.spec.num_heads * (mla.qk_nope_head_dim + mla.v_head_dim));
            let loc = Loc::KvB {
                k_b: format!("blk.{bid}.attn_k_b.weight"),
                v_b: format!("blk.{bid}.attn_v_b.weight"),
            };
            return Some((loc, [rows.ok()?, usize::try_from(mla.kv_lora_rank).ok()?]));
        }
        if tail == "mlp.gate.e_score_correction_bias" {
            return plain(format!("blk.{bid}.exp_probs_b.bias"));
        }
        let (stem, suffix) = tail.rsplit_once('.')?;
        let tensor = format!("blk.{bid}.{}.{suffix}", block_name(stem)?);
        let heads = match stem {
            "self_attn.q_proj" => self.spec.num_heads,
            "self_attn.k_proj" => self.spec.num_kv_heads,
            _ => return plain(tensor),
        };
        if !self.permuted_qk {
            return plain(tensor);
        }
        let shape = self.stored_shape(&tensor)?;
        let heads = usize::try_from(heads).ok()?;
        Some((Loc::Unpermute { tensor, heads }, shape))
    }

    fn read_kv_b(&self, k_b: &str, v_b: &str, start: usize, out: &mut [f32]) -> Result<()> {
        let mla = self.spec.mla.as_ref().ok_or_else(|| missing(k_b))?;
        let (nope, vd, lora) = (
            to_usize(mla.qk_nope_head_dim)?,
            to_usize(mla.v_head_dim)?,
            to_usize(mla.kv_lora_rank)?,
        );
        let per_head = nope + vd;
        // One head's `attn_k_b` block `[lora, nope]`, decoded once per head touched.
        let mut k_head: Option<(usize, Vec<f32>)> = None;
        for (i, row) in out.chunks_exact_mut(lora).enumerate() {
            let r = start + i;
            let (h, j) = (r / per_head, r % per_head);
            if j >= nope {
                decode_rows(&self.file, v_b, h * vd + (j - nope), row)?;
                continue;
            }
            if k_head.as_ref().is_none_or(|(kh, _)| *kh != h) {
                let mut buf = vec![0f32; lora * nope];
                decode_rows(&self.file, k_b, h * lora, &mut buf)?;
                k_head = Some((h, buf));
            }
            if let Some((_, buf)) = &k_head {
                for (l, x) in row.iter_mut().enumerate() {
                    *x = buf.get(l * nope + j).copied().unwrap_or(0.0);
                }
            }
        }
        Ok(())
    }
}

/// The stored row of HF row `r` of a Q/K projection with `rows` rows in `heads` heads:
/// `LlamaModel.permute` sent HF row `i * half + j` of each head to `2 * j + i`.
pub(super) fn llama_qk_row(r: usize, rows: usize, heads: usize) -> usize {
    let hd = rows / heads.max(1);
    let half = hd / 2;
    let (h, within) = (r / hd.max(1), r % hd.max(1));
    let (i, j) = (within / half.max(1), within % half.max(1));
    h * hd + 2 * j + i
}

fn missing(name: &str) -> Error {
    Error::MissingWeight(name.to_owned())
}

fn to_usize(v: u64) -> Result<usize> {
    usize::try_from(v).map_err(|_| Error::Spec(format!("{v} does not fit in usize")))
}

impl Weights for GgufWeights {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn shape(&self, name: &str) -> Option<[usize; 2]> {
        self.locate(name).map(|(_, s)| s)
    }

    fn read_rows(&self, name: &str, start: usize, out: &mut [f32]) -> Result<()> {
        let (loc, [rows, cols]) = self.locate(name).ok_or_else(|| missing(name))?;
        if cols == 0
            || !out.len().is_multiple_of(cols)
            || start.saturating_add(out.len() / cols) > rows
        {
            return Err(Error::Decode {
                name: name.to_owned(),
                reason: format!("rows {start}.. out of {rows}"),
            });
        }
        match loc {
            Loc::Rows { tensor, offset } => decode_rows(&self.file, &tensor, offset + start, out),
            Loc::Unpermute { tensor, heads } => {
                for (k, row) in out.chunks_exact_mut(cols).enumerate() {
                    let stored = llama_qk_row(start + k, rows, heads);
                    decode_rows(&self.file, &tensor, stored, row)?;
                }
                Ok(())
            }
            Loc::KvB { k_b, v_b } => self.read_kv_b(&k_b, &v_b, start, out),
        }
    }

    fn stored_rows(&self, name: &str) -> Option<StoredRows<'_>> {
        let (loc, shape) = self.locate(name)?;
        let (tensor, first, heads) = match loc {
            Loc::Rows { tensor, offset } => (tensor, offset, None),
            Loc::Unpermute { tensor, heads } => (tensor, 0, Some(heads)),
            Loc::KvB { .. } => return None,
        };
        let dtype = self.file.meta(&tensor)?.dtype;
        let bytes = self.file.bytes(&tensor).ok()?;
        StoredRows::new(dtype, bytes, first, shape, heads)
    }

    fn release(&self, name: &str) {
        if !self.release_pages {
            return;
        }
        match self.locate(name).map(|(l, _)| l) {
            Some(Loc::Rows { tensor, .. } | Loc::Unpermute { tensor, .. }) => {
                self.file.advise(&tensor, Access::Done)
            }
            Some(Loc::KvB { k_b, v_b }) => {
                self.file.advise(&k_b, Access::Done);
                self.file.advise(&v_b, Access::Done);
            }
            None => {}
        }
    }

    fn set_release_pages(&mut self, on: bool) {
        self.release_pages = on;
    }

    fn rope_freq_factors(&self) -> Result<Option<Vec<f32>>> {
        let name = "rope_freqs.weight";
        let Some([rows, cols]) = self.stored_shape(name) else {
            return Ok(None);
        };
        let mut out = vec![0f32; rows * cols];
        decode_rows(&self.file, name, 0, &mut out)?;
        Ok(Some(out))
    }
}
