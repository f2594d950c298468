//! Tokens/s of the reference forward pass on a random model of SmolLM2-135M's shape
//! (30 layers, hidden 576, 9/3 heads, ffn 1536, vocab 49152, tied embeddings) stored as GGUF
//! F32, Q8_0 and Q4_0: `cargo run --release -p wharf-reference --example bench [DIR]`.
//! Threads follow `RAYON_NUM_THREADS`.

// An example program reports on stdout.
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::time::Instant;

use wharf_converters::gguf::{GgufWriter, Value};
use wharf_core::{DType, TensorMeta, TensorSink};
use wharf_reference::Model;

const LAYERS: usize = 30;
const HIDDEN: usize = 576;
const FFN: usize = 1536;
const VOCAB: usize = 49152;
const KV: usize = 192;

fn tensors() -> Vec<(String, Vec<usize>)> {
    let mut t = vec![
        ("token_embd.weight".to_owned(), vec![VOCAB, HIDDEN]),
        ("output_norm.weight".to_owned(), vec![HIDDEN]),
    ];
    for l in 0..LAYERS {
        for (n, s) in [
            ("attn_norm", vec![HIDDEN]),
            ("attn_q", vec![HIDDEN, HIDDEN]),
            ("attn_k", vec![KV, HIDDEN]),
            ("attn_v", vec![KV, HIDDEN]),
            ("attn_output", vec![HIDDEN, HIDDEN]),
            ("ffn_norm", vec![HIDDEN]),
            ("ffn_gate", vec![FFN, HIDDEN]),
            ("ffn_up", vec![FFN, HIDDEN]),
            ("ffn_down", vec![HIDDEN, FFN]),
        ] {
            t.push((format!("blk.{l}.{n}.weight"), s));
        }
    }
    t
}

fn write(path: &Path, dtype: DType) {
    let kv = |k: &str, v: Value| (k.to_owned(), v);
    let kvs = vec![
        kv("general.architecture", Value::String("llama".into())),
        kv("llama.block_count", Value::U32(LAYERS as u32)),
        kv("llama.embedding_length", Value::U32(HIDDEN as u32)),
        kv("llama.feed_forward_length", Value::U32(FFN as u32)),
        kv("llama.attention.head_count", Value::U32(9)),
        kv("llama.attention.head_count_kv", Value::U32(3)),
        kv("llama.rope.freq_base", Value::F32(10_000.0)),
        kv("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        kv("llama.vocab_size", Value::U32(VOCAB as u32)),
    ];
    let list = tensors();
    let metas: Vec<TensorMeta> = list
        .iter()
        .map(|(n, s)| {
            let d = if s.len() == 1 { DType::F32 } else { dtype };
            TensorMeta::new(
                n.clone(),
                d,
                s.iter().map(|&x| x as u64).collect::<Vec<_>>(),
            )
        })
        .collect();
    let mut w = GgufWriter::create(path, &kvs, &metas, None).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for m in &metas {
        let n: usize = m.shape.dims().iter().map(|&d| d as usize).product();
        let vals: Vec<f32> = (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let u = (seed >> 40) as f32 / (1u64 << 24) as f32;
                if m.shape.rank() == 1 {
                    1.0
                } else {
                    (u - 0.5) * 0.1
                }
            })
            .collect();
        let mut bytes = vec![0u8; m.nbytes().unwrap() as usize];
        let row = m.shape.row_len() as usize;
        wharf_quantizers::ggml::quantize(m.dtype, &vals, row, None, &mut bytes).unwrap();
        w.write(&m.name, &bytes).unwrap();
    }
    w.commit().unwrap();
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| std::env::temp_dir().display().to_string());
    let prompt: Vec<u32> = (0..64).map(|i| (i * 7919 + 13) % VOCAB as u32).collect();
    for (name, dtype) in [
        ("F32", DType::F32),
        ("Q8_0", DType::Q8_0),
        ("Q4_0", DType::Q4_0),
    ] {
        let path = Path::new(&dir).join(format!("smollm2-shape-{name}.gguf"));
        if !path.exists() {
            write(&path, dtype);
        }
        let model = Model::open(&path).unwrap();
        let mut cache = model.new_cache();
        let t = Instant::now();
        let logits = model.forward(&prompt, &mut cache, false).unwrap();
        let pp = prompt.len() as f64 / t.elapsed().as_secs_f64();
        let mut next = logits.argmax()[0];
        let steps = 32;
        let t = Instant::now();
        for _ in 0..steps {
            next = model.forward(&[next], &mut cache, false).unwrap().argmax()[0];
        }
        let tg = steps as f64 / t.elapsed().as_secs_f64();
        println!("{name:5} prompt {pp:8.1} tok/s   generation {tg:7.2} tok/s");
    }
}
