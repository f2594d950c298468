//! One decoder for every supported architecture. What differs is small and visible here:
//! attention is GQA or MLA ([`crate::attention`]), a layer's MLP is dense or MoE
//! ([`crate::moe`]), the rotary table follows the model's scaling rule ([`crate::rope`]).

use std::path::Path;

use wharf_converters::AnySource;
use wharf_core::model::ModelSpec;

use crate::attention::{self, Geometry, LayerCache};
use crate::kernels::{matmul, rms_norm};
use crate::moe::{mlp, moe_block};
use crate::rope::{RopeTable, softmax_scale};
use crate::weights::{GgufWeights, HfWeights, Weights, whole};
use crate::{Error, Result};

/// Logits of `n_pos` positions, row-major `[n_pos, vocab]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Logits {
    /// Positions.
    pub n_pos: usize,
    /// Vocabulary size (rows of the output projection).
    pub vocab: usize,
    /// `n_pos * vocab` values.
    pub data: Vec<f32>,
}

impl Logits {
    /// The logits of position `i`.
    pub fn row(&self, i: usize) -> Option<&[f32]> {
        self.data.get(i * self.vocab..(i + 1) * self.vocab)
    }

    /// The highest-scoring id of each position (ties: lowest id).
    pub fn argmax(&self) -> Vec<u32> {
        self.data
            .chunks_exact(self.vocab.max(1))
            .map(crate::metrics::argmax)
            .collect()
    }
}

/// The KV cache of one sequence.
#[derive(Debug, Clone, Default)]
pub struct Cache {
    layers: Vec<LayerCache>,
    len: usize,
}

impl Cache {
    /// Positions already processed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was processed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A model ready to run: its weights (memory-mapped, any storage) and rotary table.
#[derive(Debug)]
pub struct Model {
    weights: Box<dyn Weights>,
    geometry: Geometry,
    lm_head: &'static str,
    vocab: usize,
}

impl Model {
    /// Opens an HF folder (with `config.json`) or a GGUF file.
    pub fn open(path: &Path) -> Result<Model> {
        Model::from_source(AnySource::open(path)?)
    }

    /// [`Model::open`], with the HF config of an ONNX export ([`AnySource::open_with_config`]).
    pub fn open_with_config(path: &Path, config: Option<&Path>) -> Result<Model> {
        Model::from_source(AnySource::open_with_config(path, config)?)
    }

    /// Wraps an already opened input.
    pub fn from_source(src: AnySource) -> Result<Model> {
        match src {
            AnySource::Gguf(g) => Model::from_weights(Box::new(GgufWeights::new(g)?)),
            AnySource::Safetensors {
                config: Some((ref config, ref spec)),
                ..
            } => {
                let (config, spec) = (config.clone(), spec.clone());
                Model::from_weights(Box::new(HfWeights::new(src, Some(&config), spec)?))
            }
            other => match other.spec().cloned() {
                Some(spec) => Model::from_weights(Box::new(HfWeights::new(other, None, spec)?)),
                None => Err(Error::Spec(
                    "a safetensors or PyTorch input needs its config.json (open the HF folder); \
                     an ONNX export needs --config"
                        .into(),
                )),
            },
        }
    }

    /// Drops each weight's cached pages after it is used, so resident memory stays near the
    /// largest weight instead of the whole mapped model (export and verify run models larger
    /// than the memory they are allowed; `infer` keeps pages for speed).
    pub fn release_pages(&mut self, on: bool) {
        self.weights.set_release_pages(on);
    }

    /// Builds a model over any [`Weights`].
    pub fn from_weights(weights: Box<dyn Weights>) -> Result<Model> {
        let spec = weights.spec().clone();
        let factors = weights.rope_freq_factors()?;
        let rope = RopeTable::new(&spec, factors.as_deref());
        let lm_head = if weights.shape("lm_head.weight").is_some() {
            "lm_head.weight"
        } else {
            "model.embed_tokens.weight"
        };
        let [vocab, cols] = weights
            .shape(lm_head)
            .ok_or_else(|| Error::MissingWeight(lm_head.to_owned()))?;
        if cols as u64 != spec.hidden_size {
            return Err(Error::Shape {
                name: lm_head.into(),
                expected: vec![vocab, spec.hidden_size as usize],
                actual: vec![vocab, cols],
            });
        }
        let geometry = Geometry {
            heads: spec.num_heads as usize,
            kv_heads: spec.num_kv_heads as usize,
            qk_dim: spec.qk_head_dim() as usize,
            v_dim: spec.v_head_dim() as usize,
            rope_dim: spec.rope.dim as usize,
            scale: softmax_scale(&spec),
            window: spec.sliding_window.map(|w| w as usize),
            rope,
        };
        Ok(Model {
            weights,
            geometry,
            lm_head,
            vocab,
        })
    }

    /// The model description.
    pub fn spec(&self) -> &ModelSpec {
        self.weights.spec()
    }

    /// The weights.
    pub fn weights(&self) -> &dyn Weights {
        self.weights.as_ref()
    }

    /// Vocabulary size of the logits.
    pub fn vocab_size(&self) -> usize {
        self.vocab
    }

    /// An empty KV cache.
    pub fn new_cache(&self) -> Cache {
        Cache {
            layers: vec![LayerCache::default(); self.spec().num_layers as usize],
            len: 0,
        }
    }

    /// Logits of every position of `ids`, from an empty cache.
    pub fn logits(&self, ids: &[u32]) -> Result<Logits> {
        self.forward(ids, &mut self.new_cache(), true)
    }

    /// Greedy decoding: `max_new` tokens after `ids` (fewer if the end-of-sequence id comes).
    pub fn generate(&self, ids: &[u32], max_new: usize) -> Result<Vec<u32>> {
        let mut cache = self.new_cache();
        let mut out = Vec::with_capacity(max_new);
        let mut next = ids.to_vec();
        for _ in 0..max_new {
            let logits = self.forward(&next, &mut cache, false)?;
            let id = logits.argmax().last().copied().unwrap_or(0);
            out.push(id);
            if self.spec().eos_token_id == Some(u64::from(id)) {
                break;
            }
            next = vec![id];
        }
        Ok(out)
    }

    /// Runs `ids` after what `cache` holds; logits of every new position or only of the last.
    pub fn forward(&self, ids: &[u32], cache: &mut Cache, all: bool) -> Result<Logits> {
        let spec = self.spec();
        let n = ids.len();
        if n == 0 {
            return Err(Error::Request("no input tokens".into()));
        }
        let hidden = spec.hidden_size as usize;
        let w = self.weights.as_ref();
        let mut h = vec![0f32; n * hidden];
        for (&id, row) in ids.iter().zip(h.chunks_exact_mut(hidden)) {
            if id as usize >= self.vocab {
                return Err(Error::TokenOutOfRange {
                    id,
                    vocab: self.vocab,
                });
            }
            w.read_rows("model.embed_tokens.weight", id as usize, row)?;
        }
        let start = cache.len;
        for (l, lc) in cache.layers.iter_mut().enumerate() {
            self.layer(l, &mut h, n, start, lc)?;
        }
        cache.len += n;
        let mut last = if all {
            h
        } else {
            h.split_off((n - 1) * hidden)
        };
        let rows = last.len() / hidden;
        rms_norm(
            &mut last,
            &whole(w, "model.norm.weight")?,
            spec.rms_norm_eps as f32,
        );
        let data = matmul(w, self.lm_head, &last, rows)?;
        Ok(Logits {
            n_pos: rows,
            vocab: self.vocab,
            data,
        })
    }

    /// One pre-norm decoder layer: `h += attn(norm(h)); h += mlp(norm(h))`.
    fn layer(
        &self,
        l: usize,
        h: &mut [f32],
        n: usize,
        start: usize,
        cache: &mut LayerCache,
    ) -> Result<()> {
        let w = self.weights.as_ref();
        let spec = w.spec();
        let eps = spec.rms_norm_eps as f32;
        let p = format!("model.layers.{l}");
        let mut x = h.to_vec();
        rms_norm(
            &mut x,
            &whole(w, &format!("{p}.input_layernorm.weight"))?,
            eps,
        );
        let a = if spec.mla.is_some() {
            attention::mla(w, l, &x, n, start, cache, &self.geometry)?
        } else {
            attention::gqa(w, l, &x, n, start, cache, &self.geometry)?
        };
        h.iter_mut().zip(&a).for_each(|(h, a)| *h += a);
        let mut x = h.to_vec();
        rms_norm(
            &mut x,
            &whole(w, &format!("{p}.post_attention_layernorm.weight"))?,
            eps,
        );
        let m = if spec.is_moe_layer(l as u64) {
            moe_block(w, l, &x, n)?
        } else {
            mlp(w, &format!("{p}.mlp"), &x, n)?
        };
        h.iter_mut().zip(&m).for_each(|(h, m)| *h += m);
        Ok(())
    }
}
