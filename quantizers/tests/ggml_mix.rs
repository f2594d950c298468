//! llama-quantize's per-tensor type choice ([`wharf_quantizers::ggml::mix`]) against the
//! files llama.cpp wrote (`tests/data/fixtures/reference/gguf/gguf_layout.json`).

use std::collections::HashMap;

use serde_json::Value;
use wharf_core::DType;
use wharf_quantizers::ggml::mix::{Mix, MixOptions, ModelFacts, choose_types, pattern_matches};

const LAYOUT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/fixtures/reference/gguf/gguf_layout.json"
);

fn layout() -> Value {
    let text = std::fs::read_to_string(LAYOUT).expect("read gguf_layout.json");
    serde_json::from_str(&text).expect("parse gguf_layout.json")
}

fn kv_u32(kv: &Value, key: &str) -> Option<u32> {
    kv.get(key)?
        .as_u64()
        .map(|v| u32::try_from(v).expect("u32"))
}

fn facts(kv: &Value) -> ModelFacts {
    let arch = kv["general.architecture"]
        .as_str()
        .expect("arch")
        .to_string();
    let n_head = kv_u32(kv, &format!("{arch}.attention.head_count")).expect("head_count");
    ModelFacts {
        n_layer: kv_u32(kv, &format!("{arch}.block_count")).expect("block_count"),
        n_head,
        n_head_kv: kv_u32(kv, &format!("{arch}.attention.head_count_kv")).unwrap_or(n_head),
        n_expert: kv_u32(kv, &format!("{arch}.expert_count")).unwrap_or(0),
        is_70b: false,
        arch,
    }
}

/// Tensors as `choose_types` takes them.
type Tensors = Vec<(String, Vec<u64>)>;

/// `(name, outer-first shape)` and `name -> type name` of a layout entry.
fn tensors(entry: &Value) -> (Tensors, HashMap<String, String>) {
    let mut list = Vec::new();
    let mut types = HashMap::new();
    for t in entry["tensors"].as_array().expect("tensors") {
        let name = t[0].as_str().expect("name").to_string();
        let ne: Vec<u64> = t[2]
            .as_array()
            .expect("ne")
            .iter()
            .map(|d| d.as_u64().expect("dim"))
            .collect();
        types.insert(name.clone(), t[1].as_str().expect("type").to_string());
        list.push((name, ne.into_iter().rev().collect()));
    }
    (list, types)
}

#[test]
fn every_llamacpp_mix_matches() {
    let layout = layout();
    let files = layout.as_object().expect("object");
    let mut checked = Vec::new();
    for (file, entry) in files {
        let Some((model, mix)) = file
            .strip_suffix(".gguf")
            .and_then(|f| f.split_once("-llamacpp-"))
        else {
            continue;
        };
        let mix: Mix = mix.parse().expect("known mix");
        let input = &files[&format!("{model}-f32.gguf")];
        let (list, _) = tensors(input);
        let (_, want) = tensors(entry);
        assert_eq!(list.len(), want.len(), "{file}: tensor count");
        let got = choose_types(mix, &MixOptions::default(), &facts(&input["kv"]), &list);
        for ((name, _), ty) in list.iter().zip(&got) {
            assert_eq!(ty.name(), want[name], "{file}: {name}");
        }
        let ft = kv_u32(&entry["kv"], "general.file_type").expect("file_type");
        assert_eq!(mix.file_type(), ft, "{file}: file_type");
        checked.push(format!("{model}:{mix}"));
    }
    assert!(checked.len() >= 24, "only {checked:?}");
}

fn llama_input() -> (ModelFacts, Vec<(String, Vec<u64>)>) {
    let layout = layout();
    let input = &layout["llama-f32.gguf"];
    (facts(&input["kv"]), tensors(input).0)
}

fn type_of(list: &[(String, Vec<u64>)], got: &[DType], name: &str) -> DType {
    let i = list.iter().position(|(n, _)| n == name).expect("tensor");
    got[i]
}

#[test]
fn mix_names_and_ids() {
    assert_eq!("q4_k".parse::<Mix>().unwrap(), Mix::Q4_K_M);
    assert_eq!("Q3_K".parse::<Mix>().unwrap(), Mix::Q3_K_M);
    assert_eq!("Q5_K".parse::<Mix>().unwrap(), Mix::Q5_K_M);
    assert!("IQ2_XS".parse::<Mix>().is_err());
    assert_eq!(Mix::Q4_K_M.file_type(), 15);
    assert_eq!(Mix::BF16.file_type(), 32);
    assert_eq!(Mix::Q2_K.default_type(), DType::Q2K);
    for m in Mix::all() {
        assert_eq!(m.name().parse::<Mix>().unwrap(), m);
        assert_eq!(Mix::from_file_type(m.file_type()), Some(m));
    }
}

#[test]
fn pure_output_and_embedding_options() {
    let (facts, list) = llama_input();
    let pure = MixOptions {
        pure: true,
        ..MixOptions::default()
    };
    let got = choose_types(Mix::Q4_K_M, &pure, &facts, &list);
    assert_eq!(type_of(&list, &got, "output.weight"), DType::Q4K);
    assert_eq!(type_of(&list, &got, "blk.1.attn_v.weight"), DType::Q4K);
    assert_eq!(type_of(&list, &got, "blk.1.ffn_down.weight"), DType::Q4K);
    assert_eq!(type_of(&list, &got, "blk.0.attn_norm.weight"), DType::F32);

    let opts = MixOptions {
        output_tensor_type: Some(DType::Q8_0),
        token_embedding_type: Some(DType::F16),
        ..MixOptions::default()
    };
    let got = choose_types(Mix::Q4_K_M, &opts, &facts, &list);
    assert_eq!(type_of(&list, &got, "output.weight"), DType::Q8_0);
    assert_eq!(type_of(&list, &got, "token_embd.weight"), DType::F16);

    let leave = MixOptions {
        leave_output_tensor: true,
        ..MixOptions::default()
    };
    let got = choose_types(Mix::Q4_0, &leave, &facts, &list);
    assert_eq!(type_of(&list, &got, "output.weight"), DType::F32);
}

#[test]
fn tied_embeddings_follow_output_options() {
    let layout = layout();
    let input = &layout["llama_tied-f32.gguf"];
    let (facts, list) = (facts(&input["kv"]), tensors(input).0);
    let opts = MixOptions {
        output_tensor_type: Some(DType::Q5K),
        ..MixOptions::default()
    };
    let got = choose_types(Mix::Q4_0, &opts, &facts, &list);
    assert_eq!(type_of(&list, &got, "token_embd.weight"), DType::Q5K);
    let got = choose_types(Mix::Q4_0, &MixOptions::default(), &facts, &list);
    assert_eq!(type_of(&list, &got, "token_embd.weight"), DType::Q6K);
}

#[test]
fn tensor_type_overrides() {
    let (facts, list) = llama_input();
    let opts = MixOptions {
        tensor_type_overrides: vec![
            ("^blk.0.*ffn_".to_string(), DType::Q8_0),
            ("attn_q.weight$".to_string(), DType::Q2K),
        ],
        ..MixOptions::default()
    };
    let got = choose_types(Mix::Q4_K_M, &opts, &facts, &list);
    assert_eq!(type_of(&list, &got, "blk.0.ffn_up.weight"), DType::Q8_0);
    assert_eq!(type_of(&list, &got, "blk.0.ffn_down.weight"), DType::Q8_0);
    assert_eq!(type_of(&list, &got, "blk.1.ffn_up.weight"), DType::Q4K);
    assert_eq!(type_of(&list, &got, "blk.1.attn_q.weight"), DType::Q2K);
    // Overrides do nothing for the dense mixes, as in llama-quantize.
    let got = choose_types(Mix::F16, &opts, &facts, &list);
    assert_eq!(type_of(&list, &got, "blk.0.ffn_up.weight"), DType::F16);
    assert!(pattern_matches("ffn", "blk.3.ffn_down.weight"));
    assert!(!pattern_matches("^ffn", "blk.3.ffn_down.weight"));
    assert!(pattern_matches("^blk.*.weight$", "blk.3.ffn_down.weight"));
    assert!(!pattern_matches("down$", "blk.3.ffn_down.weight"));
}

#[test]
fn row_length_fallbacks() {
    let facts = ModelFacts {
        arch: "llama".into(),
        n_layer: 1,
        n_head: 4,
        n_head_kv: 4,
        ..ModelFacts::default()
    };
    let list = vec![
        ("output.weight".to_string(), vec![64, 96]),
        ("blk.0.attn_q.weight".to_string(), vec![96, 96]),
        ("blk.0.attn_k.weight".to_string(), vec![96, 100]),
        ("blk.0.ffn_down.weight".to_string(), vec![96, 96]),
    ];
    let got = choose_types(Mix::Q4_K_M, &MixOptions::default(), &facts, &list);
    // 96 is not a multiple of 256: output goes to Q8_0, Q4_K to Q5_0, Q6_K to Q8_0;
    // 100 is not even a multiple of 32: F16.
    assert_eq!(got, [DType::Q8_0, DType::Q5_0, DType::F16, DType::Q8_0]);
    let got = choose_types(Mix::Q3_K_M, &MixOptions::default(), &facts, &list);
    assert_eq!(got[1], DType::Q4_0);
}
