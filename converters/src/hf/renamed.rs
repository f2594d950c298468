//! A checkpoint whose tensor names carry an exporter's prefix, presented under HF names.
//!
//! `torch.onnx.export` names each initializer by its module path from the exported module, so a
//! wrapper adds a prefix (`m.model.layers.0.self_attn.q_proj.weight`) and non-parameter buffers
//! (`rotary_emb.inv_freq`) come along. With the model's `config.json` known, the prefix is found
//! from the token embedding, stripped, and every remaining weight name is checked against the
//! HF → GGUF mapping, so a name that cannot be placed is an error here rather than a silently
//! missing weight later.

use std::borrow::Cow;
use std::collections::HashMap;

use wharf_core::model::ModelSpec;
use wharf_core::{Access, TensorMeta, TensorSource};

use super::to_gguf::is_mapped;
use crate::error::{Error, ErrorKind, Result};

const EMBED: &str = "model.embed_tokens.weight";

/// `inner` under HF names (or under its own names, for [`HfRenamed::identity`]).
#[derive(Debug)]
pub struct HfRenamed<S> {
    inner: S,
    metas: Vec<TensorMeta>,
    /// HF name → (the inner source's name, index in `metas`).
    to_inner: HashMap<String, (String, usize)>,
    /// Initializers that are not weights (graph constants), left out.
    dropped: Vec<String>,
}

impl<S: TensorSource> HfRenamed<S> {
    /// Every tensor under its own name.
    pub fn identity(inner: S) -> Self {
        let metas = inner.tensors().to_vec();
        let to_inner = metas
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), (m.name.clone(), i)))
            .collect();
        HfRenamed {
            inner,
            metas,
            to_inner,
            dropped: Vec::new(),
        }
    }

    /// The weights of `inner` under the HF names of the model `spec` describes.
    pub fn for_spec(inner: S, spec: &ModelSpec) -> Result<Self> {
        let prefix = find_prefix(inner.tensors())?;
        let mut metas = Vec::new();
        let mut to_inner = HashMap::new();
        let mut dropped = Vec::new();
        for m in inner.tensors() {
            let hf = m.name.strip_prefix(prefix.as_str()).unwrap_or(&m.name);
            let is_weight = hf.starts_with("model.") || hf.starts_with("lm_head.");
            if hf.ends_with("rotary_emb.inv_freq") || !is_weight {
                dropped.push(m.name.clone());
                continue;
            }
            if !m.name.starts_with(prefix.as_str()) || !is_mapped(hf, spec) {
                return Err(Error::new(ErrorKind::Unconvertible(format!(
                    "initializer `{}` has no HF name in a {} model",
                    m.name,
                    spec.arch.hf_class()
                )))
                .in_tensor(&m.name));
            }
            let mut meta = m.clone();
            meta.name = hf.to_owned();
            let prev = to_inner.insert(meta.name.clone(), (m.name.clone(), metas.len()));
            if prev.is_some() {
                return Err(Error::new(ErrorKind::Duplicate {
                    what: "weight after removing the export prefix",
                    name: meta.name,
                }));
            }
            metas.push(meta);
        }
        Ok(HfRenamed {
            inner,
            metas,
            to_inner,
            dropped,
        })
    }

    /// The wrapped source.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Names of the inner source left out as not weights (rope tables, graph constants).
    pub fn dropped(&self) -> &[String] {
        &self.dropped
    }

    fn inner_name<'a>(&'a self, name: &'a str) -> &'a str {
        self.to_inner.get(name).map_or(name, |(n, _)| n.as_str())
    }
}

/// The prefix before `model.embed_tokens.weight`, which every weight shares.
fn find_prefix(metas: &[TensorMeta]) -> Result<String> {
    metas
        .iter()
        .find_map(|m| {
            let p = m.name.strip_suffix(EMBED)?;
            (p.is_empty() || p.ends_with('.')).then(|| p.to_owned())
        })
        .ok_or_else(|| {
            Error::new(ErrorKind::Unconvertible(format!(
                "no tensor named `{EMBED}` (or `<prefix>.{EMBED}`): the export did not keep \
                 module names (torch.onnx's TorchScript exporter with constant folding names \
                 weights `onnx::MatMul_N`; export with `dynamo=True`)"
            )))
        })
}

impl<S: TensorSource> TensorSource for HfRenamed<S> {
    fn tensors(&self) -> &[TensorMeta] {
        &self.metas
    }
    fn bytes(&self, name: &str) -> wharf_core::Result<Cow<'_, [u8]>> {
        self.inner.bytes(self.inner_name(name))
    }
    fn advise(&self, name: &str, access: Access) {
        self.inner.advise(self.inner_name(name), access)
    }
    fn stored(&self, name: &str) -> Option<wharf_core::Stored> {
        self.inner.stored(self.inner_name(name))
    }
    fn meta(&self, name: &str) -> Option<&TensorMeta> {
        self.to_inner
            .get(name)
            .and_then(|&(_, i)| self.metas.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_core::{DType, Shape};

    #[derive(Debug)]
    struct Names(Vec<TensorMeta>);
    impl TensorSource for Names {
        fn tensors(&self) -> &[TensorMeta] {
            &self.0
        }
        fn bytes(&self, name: &str) -> wharf_core::Result<Cow<'_, [u8]>> {
            Ok(Cow::Owned(name.as_bytes().to_vec()))
        }
    }

    fn source(names: &[&str]) -> Names {
        Names(
            names
                .iter()
                .map(|n| TensorMeta::new(*n, DType::F32, Shape::new(vec![4])))
                .collect(),
        )
    }

    fn spec() -> ModelSpec {
        let cfg = serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
            "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 4,
            "rms_norm_eps": 1e-5, "max_position_embeddings": 16
        });
        crate::hf::parse_config(&cfg).expect("config")
    }

    #[test]
    fn strips_the_wrapper_prefix_and_drops_buffers() {
        let s = source(&[
            "m.model.embed_tokens.weight",
            "m.model.layers.0.self_attn.q_proj.weight",
            "m.model.rotary_emb.inv_freq",
            "val_3",
        ]);
        let r = HfRenamed::for_spec(s, &spec()).expect("renamed");
        let names: Vec<_> = r.tensors().iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "model.embed_tokens.weight",
                "model.layers.0.self_attn.q_proj.weight"
            ]
        );
        assert_eq!(r.dropped(), ["m.model.rotary_emb.inv_freq", "val_3"]);
        let b = r
            .bytes("model.layers.0.self_attn.q_proj.weight")
            .expect("bytes");
        assert_eq!(&*b, b"m.model.layers.0.self_attn.q_proj.weight");
        assert!(r.meta("m.model.embed_tokens.weight").is_none());
    }

    #[test]
    fn an_unplaceable_weight_is_named() {
        let s = source(&[
            "model.embed_tokens.weight",
            "model.layers.0.self_attn.qkv.weight",
        ]);
        let e = HfRenamed::for_spec(s, &spec()).expect_err("refused");
        assert!(
            e.to_string()
                .contains("model.layers.0.self_attn.qkv.weight"),
            "{e}"
        );
    }

    #[test]
    fn folded_legacy_names_are_explained() {
        let e = HfRenamed::for_spec(source(&["onnx::MatMul_12"]), &spec()).expect_err("refused");
        assert!(e.to_string().contains("dynamo=True"), "{e}");
    }
}
