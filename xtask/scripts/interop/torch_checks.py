"""Consumers that need torch (issues 4 and 6): transformers loads wharf's BF16 dequantization of
DeepSeek's FP8 and the h800 bundles; the compressed-tensors library decompresses wharf's
compressed-tensors FP8 and INT4 folders. Both run on CPU, f32."""

import contextlib
import io
import json
from pathlib import Path

import numpy as np

from . import fp8_rule
from .common import greedy_report, manifest, require, top2_margin

# Two f32 CPU forward passes over the same weights differ only in summation order (measured
# 4e-6 to 6e-6 on these fixtures); the same bound as the mlx-lm checks.
LOGIT_TOL = 1e-4
CT_MODELS = ["llama", "qwen2", "mistral_bf16", "deepseek_v3"]
CT_SCHEMES = ["fp8", "fp8-channel", "ct-fp8-block", "int4", "int4-asym"]
H800_MODELS = ["llama", "deepseek_v3"]


def transformers_forward(folder, ids, load_dtype="float32", **kwargs):
    """transformers loads `folder` on CPU (weights in `load_dtype`): the model, cast to f32, and
    the logits of every prompt position."""
    import torch
    from transformers import AutoModelForCausalLM

    with contextlib.redirect_stderr(io.StringIO()):  # its loading bars and CPU-fallback notices
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=getattr(torch, load_dtype), **kwargs)
    weights = {k: v.float().numpy() for k, v in model.state_dict().items()}
    model = model.float().eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float().numpy()
    return model, weights, logits


def transformers_greedy(model, ids, n_new):
    """Free-running greedy continuation, one token per step through transformers' KV cache."""
    import torch

    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=n_new, do_sample=False, min_new_tokens=n_new)
    return [int(t) for t in out[0, len(ids):]]


def dense_tensors(folder):
    """Every tensor of a dense folder as f32 numpy (BF16 widened exactly)."""
    from safetensors.torch import load_file

    out = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        out.update({k: v.float().numpy() for k, v in load_file(str(f)).items()})
    return out


def fuse_experts(tensors):
    """HF per-expert weights in transformers 5's fused layout: `experts.gate_up_proj[e]` is expert
    e's gate rows then up rows, `experts.down_proj[e]` its down projection."""
    out, experts = {}, {}
    for k, v in tensors.items():
        head, sep, tail = k.partition(".experts.")
        if not sep or not tail.split(".")[0].isdigit():
            out[k] = v
            continue
        e, proj = tail.split(".")[:2]
        experts.setdefault(head, {}).setdefault(int(e), {})[proj] = v
    for head, per in experts.items():
        order = sorted(per)
        out[f"{head}.experts.gate_up_proj"] = np.stack([np.concatenate([per[e]["gate_proj"], per[e]["up_proj"]]) for e in order])
        out[f"{head}.experts.down_proj"] = np.stack([per[e]["down_proj"] for e in order])
    return out


def logit_gap(label, a, b, tol):
    require(a.shape == b.shape, f"{label}: logits shape {a.shape} vs {b.shape}")
    err = float(np.abs(a - b).max())
    require(err <= tol, f"{label}: max |logit difference| {err:.3e} > {tol:.0e}")
    return err


def ct_library_decompress(folder):
    """The compressed-tensors library's own decompression of a folder: the compressor registered
    for the config's `format`, given each module's stored tensors (`weight` or `weight_packed`,
    `weight_scale`, `weight_zero_point`, `weight_shape`) and the scheme its QuantizationConfig
    parses from config.json. Returns the compressor's name and every tensor as f32 numpy."""
    from compressed_tensors.compressors import BaseCompressor
    from compressed_tensors.quantization import QuantizationConfig
    from safetensors.torch import load_file

    qc = QuantizationConfig.model_validate(json.loads((Path(folder) / "config.json").read_text())["quantization_config"])
    (scheme,) = qc.config_groups.values()
    compressor = BaseCompressor.get_value_from_registry(qc.format)
    stored = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        stored.update(load_file(str(f)))
    modules = {k[: -len(".weight_scale")] for k in stored if k.endswith(".weight_scale")}
    params = ("weight", "weight_packed", "weight_scale", "weight_zero_point", "weight_shape")
    local = {m: {} for m in modules}
    out = {}
    for k, v in stored.items():
        m, _, leaf = k.rpartition(".")
        if m in modules and leaf in params:
            local[m][leaf] = v
        else:
            out[k] = v  # dense tensors, biases of quantized modules included
    for m in sorted(modules):
        out[f"{m}.weight"] = compressor.decompress(local[m], scheme)["weight"]
    return compressor.__name__, {k: v.float().numpy() for k, v in out.items()}


def same_weights(label, theirs, ours):
    missing = sorted(set(ours) ^ set(theirs))
    require(not missing, f"{label}: tensors in only one of the two: {missing[:5]}")
    differ = [k for k in sorted(ours) if theirs[k].shape != ours[k].shape or not np.array_equal(theirs[k], ours[k])]
    require(not differ, f"{label}: {len(differ)} tensors differ from wharf's dequantizer, first {differ[:1]}")


# transformers 5.23 fuses MoE experts into 3-D parameters, and its compressed-tensors dequantizer
# for fused experts multiplies by the scales without expanding 128x128 blocks and drops the zero
# points ("Asymmetric quant requires zero-point values" though the checkpoint has them): it raises
# on these two folders. The library's own decompression covers them.
TRANSFORMERS_SKIPS = {("deepseek_v3", "ct-fp8-block"), ("deepseek_v3", "int4-asym")}


def check_compressed_tensors(ctx):
    """wharf's compressed-tensors folders decompressed by the compressed-tensors library give
    exactly the dense weights of wharf's own dequantizer (`wharf convert --dtype` the model's
    dtype: compressed-tensors multiplies codes by scales in the model dtype, so a BF16 model's
    weights are the products rounded to BF16). transformers (CompressedTensorsConfig(dequantize=
    True), which calls the same library) loads them too: the same weights, and the same logits as
    `wharf infer`."""
    from transformers.utils.quantization_config import CompressedTensorsConfig

    for model in CT_MODELS:
        ids = ctx.prompt_ids(model)
        dtype = json.loads((ctx.model(model) / "config.json").read_text()).get("torch_dtype", "float32")
        for scheme in CT_SCHEMES:
            label = f"{model}/{scheme}"
            q = ctx.path("ct", f"{model}-{scheme}")
            dense = ctx.path("ct", f"{model}-{scheme}-dense")
            ctx.wharf("quantize", ctx.model(model), "-o", q, "--scheme", scheme)
            ctx.wharf("convert", q, "-o", dense, "--dtype", {"float32": "f32", "bfloat16": "bf16"}[dtype])
            ours = dense_tensors(dense)
            compressor, lib = ct_library_decompress(q)
            same_weights(f"{label} (compressed-tensors {compressor})", lib, ours)
            line = f"  {label}: {len(ours)} {dtype} tensors from compressed-tensors' {compressor} equal wharf's bit for bit"
            if (model, scheme) in TRANSFORMERS_SKIPS:
                print(line + "; transformers' fused-expert dequantizer not run (see TRANSFORMERS_SKIPS)")
                continue
            ct = CompressedTensorsConfig(dequantize=True)
            _, theirs, logits = transformers_forward(q, ids, load_dtype=dtype, quantization_config=ct)
            same_weights(f"{label} (transformers)", theirs, fuse_experts(ours))
            # wharf's reference pass multiplies codes by scales in f32 (as vLLM's FP8 GEMM does), so
            # for a BF16 model it is compared on the BF16 dequantization that transformers runs.
            err = logit_gap(label, ctx.wharf_logits(q if dtype == "float32" else dense, ids), logits, LOGIT_TOL)
            print(line + f"; in transformers too, max |wharf infer - transformers| = {err:.2e}")


def check_fp8_to_bf16(ctx):
    """`wharf convert deepseek_v3_fp8 --dtype bf16|f32` (the CPU fp8_cast_bf16.py): transformers and
    mlx-lm load the folders; the f32 one reproduces golden/deepseek_v3_fp8 (dequantized fp8 * scale,
    f32), the bf16 one runs the same in transformers, mlx-lm and wharf."""
    golden_dir = ctx.golden("deepseek_v3_fp8")
    golden = np.load(golden_dir / "logits_all.npy").reshape(-1, 1024).astype(np.float32)
    ids = json.loads((golden_dir / "golden.json").read_text())["input_ids"]
    for dtype in ["f32", "bf16"]:
        out = ctx.path("fp8cast", f"deepseek_v3_fp8-{dtype}")
        ctx.wharf("convert", ctx.model("deepseek_v3_fp8"), "-o", out, "--dtype", dtype)
        cfg = json.loads((out / "config.json").read_text())
        require("quantization_config" not in cfg, f"{dtype}: quantization_config left in config.json")
        _, _, tf = transformers_forward(out, ids)
        wharf = ctx.wharf_logits(out, ids)
        err_w = logit_gap(f"{dtype}: wharf vs transformers", wharf, tf, LOGIT_TOL)
        gold = float(np.abs(tf - golden).max())
        top1 = float((tf.argmax(-1) == golden.argmax(-1)).mean())
        if dtype == "f32":
            logit_gap("f32: transformers vs golden", tf, golden, LOGIT_TOL)
            print(f"  f32 folder in transformers: max |logit - golden/deepseek_v3_fp8| = {gold:.2e}; "
                  f"wharf infer on it {err_w:.2e} from transformers")
            continue
        mx_logits = mlx_f32_forward(out, ids)
        err_m = logit_gap("bf16: wharf vs mlx-lm", wharf, mx_logits, LOGIT_TOL)
        # BF16 keeps 8 significant bits of fp8 * scale, so the logits move off the f32 golden;
        # the bound is loose and the top-1 agreement is printed.
        require(gold <= 0.05 and top1 >= 0.9, f"bf16: {gold:.3e} off golden, top-1 {top1:.2f}")
        print(f"  bf16 folder: transformers vs wharf {err_w:.2e}, mlx-lm vs wharf {err_m:.2e}; "
              f"max |transformers - golden/deepseek_v3_fp8| = {gold:.2e} (BF16 rounding), top-1 {top1:.3f}")


def mlx_f32_forward(folder, ids):
    """mlx-lm loads `folder`, its parameters cast to f32 (it would compute in the folder's BF16)."""
    import mlx.core as mx
    from mlx_lm import load

    model, _ = load(str(folder))
    model.set_dtype(mx.float32)
    return np.array(model(mx.array(ids)[None]).astype(mx.float32))[0]


def check_h800(ctx):
    """h800 bundles in transformers on CPU (its FineGrainedFP8 loader dequantizes without a GPU):
    teacher-forced along the manifest's greedy continuation, the same logits as `wharf infer` on
    the bundle, and transformers' own greedy tokens at every decisive position."""
    for model in H800_MODELS:
        out = ctx.path("torch-h800", f"{model}-h800")
        ctx.wharf("export", ctx.model(model), "--target", "h800", "-o", out)
        ctx.wharf("verify", out)
        ref = manifest(out)["reference"]
        ids, greedy = ref["prompt_ids"], ref["metrics"]["greedy"]
        seq = ids + greedy[:-1]
        # transformers' CPU FP8 loader mis-reads partial 128x128 blocks (see fp8_rule.py): give it
        # DeepSeek's own dequantization of the bundle then; the blocks themselves are checked there.
        partial = fp8_rule.partial_blocks(out)
        folder = fp8_rule.h800_for_transformers(out, ctx.path("torch-h800", f"{model}-deq")) if partial else out
        loaded, _, theirs = transformers_forward(folder, seq)
        ours = ctx.wharf_logits(out, seq)
        require(
            [int(t) for t in ours[len(ids) - 1 :].argmax(-1)] == greedy,
            f"{model}/h800: manifest greedy {greedy} is not wharf infer's argmax on the bundle",
        )
        err = logit_gap(f"{model}/h800", ours, theirs, LOGIT_TOL)
        how = f", {len(partial)} weights with partial blocks dequantized by DeepSeek's rule" if partial else ""
        print(f"  {model}/h800 in transformers ({type(loaded).__name__}{how}): max |wharf infer - transformers| = "
              f"{err:.2e} (tolerance {LOGIT_TOL:.0e})")
        margins = top2_margin(ours[len(ids) - 1 :])
        greedy_report("transformers", transformers_greedy(loaded, ids, len(greedy)), greedy, margins, LOGIT_TOL)
