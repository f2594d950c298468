"""Bundles in their real consumers (issue 6): `wharf export` for pi5/pi4 (llama.cpp),
apple-silicon (mlx-lm) and h800 (vLLM's FP8 block loader conditions, safetensors), each also
re-checked by `wharf verify`."""

import json
import math
from pathlib import Path

import numpy as np

from .common import greedy_report, llama_cpp_greedy, llama_cpp_logits, manifest, require, top2_margin
from .mlx_checks import MLX_LOGIT_TOL, mlx_forward

GGUF_BUNDLES = [(m, t) for m in ["llama", "qwen2", "deepseek_v3"] for t in ["pi5", "pi4"]]
# llama.cpp quantizes the activations of every quantized matmul (Q8_0 for Q4_0, Q8_K for the
# K-quants) while wharf's reference multiplies f32 activations by the dequantized weights.
# Measured max |logit difference| on these bundles: 0.06-0.11 (llama 0.064/0.093, qwen2
# 0.063/0.089, deepseek_v3 with every expert active 0.085/0.109); the tolerance leaves about 2x.
GGUF_LOGIT_TOL = 0.25
H800_BUNDLES = ["llama", "deepseek_v3"]
APPLE_BUNDLES = ["llama", "deepseek_v3"]
FP8_BLOCK = 128
# E4M3 has 3 mantissa bits: round to nearest is within 2^-4 relative of the scaled value; the
# absolute floor covers values in the subnormal range of the block (scale * 2^-9 per step).
FP8_REL = 2.0**-4


def export(ctx, model, target, extra=()):
    out = ctx.path("bundles", f"{model}-{target}")
    ctx.wharf("export", ctx.model(model), "--target", target, "-o", out, *extra)
    verdict = ctx.wharf("verify", out).strip().splitlines()
    print(f"  wharf verify {out.name}: ok ({verdict[-1][:90] if verdict else ''})")
    return out, manifest(out)


def all_experts_copy(gguf_path, dest):
    """A copy of a DeepSeek GGUF that routes every token to every expert (one group, all 8 used):
    the routing top-k is a discontinuity, so llama.cpp's Q8 activation rounding can flip an expert
    near a tie and move the logits of that position by whole units; with all experts the
    comparison is continuous again."""
    import shutil

    import gguf

    shutil.copyfile(gguf_path, dest)
    r = gguf.GGUFReader(str(dest), "r+")
    arch = r.fields["general.architecture"].contents()
    n_expert = int(r.fields[f"{arch}.expert_count"].contents())
    for key, value in [("expert_used_count", n_expert), ("expert_group_count", 1), ("expert_group_used_count", 1)]:
        f = r.fields[f"{arch}.{key}"]
        f.parts[f.data[0]][0] = value
    del r
    return dest


def check_gguf_bundle(ctx, model, target):
    out, m = export(ctx, model, target)
    ref = m["reference"]
    ids, greedy = ref["prompt_ids"], ref["metrics"]["greedy"]
    gguf_path = out / ref["model"]
    seq = ids + greedy[:-1]  # teacher-forced along wharf's recorded greedy continuation
    ours = ctx.wharf_logits(gguf_path, seq)
    require(
        [int(t) for t in ours[len(ids) - 1 :].argmax(-1)] == greedy,
        f"{model}/{target}: manifest greedy {greedy} is not wharf infer's argmax on the bundle",
    )
    theirs = llama_cpp_logits(gguf_path, seq)
    err = float(np.abs(theirs - ours).max())
    line = f"  {model}/{target} ({ref['model']}): max |llama.cpp - wharf infer| = {err:.3f}"
    moe = m["architecture"].get("moe_experts", 0) > 0
    if moe:
        cont = all_experts_copy(gguf_path, ctx.path("bundles", f"{model}-{target}-all-experts.gguf"))
        cont_err = float(np.abs(llama_cpp_logits(cont, seq) - ctx.wharf_logits(cont, seq)).max())
        worst = np.abs(theirs - ours).max(-1)
        line += (
            f" (routing flips at positions {[int(i) for i in np.nonzero(worst > GGUF_LOGIT_TOL)[0]]});"
            f" with every expert active {cont_err:.3f}"
        )
        gated = cont_err
    else:
        gated = err
    print(line + f" (tolerance {GGUF_LOGIT_TOL})")
    require(gated <= GGUF_LOGIT_TOL, f"{model}/{target}: llama.cpp logits off wharf by {gated:.3f} > {GGUF_LOGIT_TOL}")

    margins = top2_margin(ours[len(ids) - 1 :])
    greedy_report("llama.cpp", llama_cpp_greedy(gguf_path, ids, len(greedy)), greedy, margins, GGUF_LOGIT_TOL)
    # Teacher-forced along the same sequence every position sees the same prefix in both, so each
    # position whose wharf margin exceeds the tolerance must give llama.cpp the same top-1
    # (positions with an expert-routing flip excepted: there the logits are not comparable).
    picks = theirs[len(ids) - 1 :].argmax(-1)
    flips = np.abs(theirs - ours).max(-1)[len(ids) - 1 :] > GGUF_LOGIT_TOL
    checked = [i for i in range(len(greedy)) if margins[i] > GGUF_LOGIT_TOL and not flips[i]]
    wrong = [i for i in checked if int(picks[i]) != greedy[i]]
    print(f"    teacher-forced: llama.cpp top-1 = manifest at {len(checked) - len(wrong)}/{len(checked)} positions with margin > {GGUF_LOGIT_TOL}")
    require(not wrong, f"{model}/{target}: llama.cpp top-1 {[int(picks[i]) for i in wrong]} at decisive positions {wrong}")


def check_gguf_bundles(ctx):
    """pi5 / pi4 bundles: llama.cpp's logits and greedy tokens against wharf's reference."""
    for model, target in GGUF_BUNDLES:
        check_gguf_bundle(ctx, model, target)


def check_apple(ctx):
    """apple-silicon bundles (MLX folders) loaded by mlx-lm: logits and greedy tokens."""
    for model in APPLE_BUNDLES:
        check_apple_bundle(ctx, model)


def check_apple_bundle(ctx, model):
    out, m = export(ctx, model, "apple-silicon")
    ref = m["reference"]
    ids, greedy = ref["prompt_ids"], ref["metrics"]["greedy"]
    seq = ids + greedy[:-1]
    ours = ctx.wharf_logits(out, seq)
    theirs, _ = mlx_forward(out, seq, n_new=1)
    err = float(np.abs(theirs - ours).max())
    _, mlx_greedy = mlx_forward(out, ids, n_new=len(greedy))
    print(f"  {model}/apple-silicon: max |mlx-lm - wharf infer| = {err:.2e} (tolerance {MLX_LOGIT_TOL:.0e})")
    require(err <= MLX_LOGIT_TOL, f"{model}/apple-silicon: mlx-lm logits off wharf by {err:.3e}")
    greedy_report("mlx-lm", mlx_greedy, greedy, top2_margin(ours[len(ids) - 1 :]), MLX_LOGIT_TOL)


def safetensors_tensors(bundle):
    """Open every shard with the safetensors library; the index, if any, lists each tensor once."""
    from safetensors import safe_open

    shards = sorted(Path(bundle).glob("*.safetensors"))
    require(shards, f"{bundle}: no safetensors shards")
    where = {}
    for shard in shards:
        with safe_open(str(shard), "np") as f:
            for k in f.keys():
                require(k not in where, f"{bundle}: {k} stored in both {where.get(k)} and {shard.name}")
                where[k] = shard.name
    index = Path(bundle) / "model.safetensors.index.json"
    if index.exists():
        wm = json.loads(index.read_text())["weight_map"]
        require(wm == where, f"{bundle}: index weight_map does not list exactly the stored tensors")
        note = f"index lists all {len(wm)} once"
    else:
        require(len(shards) == 1, f"{bundle}: {len(shards)} shards but no index")
        note = "single shard, no index"
    return shards, where, note


def raw_tensor(shard, name):
    """(dtype string, shape, bytes) from the safetensors header: numpy has no F8_E4M3."""
    with open(shard, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n))
        info = header[name]
        a, b = info["data_offsets"]
        fh.seek(8 + n + a)
        return info["dtype"], info["shape"], fh.read(b - a)


def check_h800_bundle(ctx, model):
    import ml_dtypes
    from safetensors import safe_open

    out, _ = export(ctx, model, "h800")
    cfg = json.loads((out / "config.json").read_text())
    qc = cfg.get("quantization_config")
    want = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}
    require(qc is not None and all(qc.get(k) == v for k, v in want.items()), f"{model}/h800: quantization_config {qc}")
    shards, where, note = safetensors_tensors(out)

    # The source weights as the reference sees them (HF names, f32).
    src = {}
    for f in sorted(ctx.model(model).glob("*.safetensors")):
        with safe_open(str(f), "np") as sf:
            src.update({k: sf.get_tensor(k) for k in sf.keys()})

    n_fp8, worst, shapes = 0, 0.0, {}
    for name, shard in sorted(where.items()):
        dtype, shape, data = raw_tensor(out / shard, name)
        if dtype != "F8_E4M3":
            require(not name.endswith("weight_scale_inv") or dtype == "F32", f"{name}: scale dtype {dtype}")
            continue
        require(name.endswith(".weight") and len(shape) == 2, f"{model}/h800: F8_E4M3 tensor {name} {shape}")
        sname = name + "_scale_inv"
        require(sname in where, f"{model}/h800: {name} has no {sname}")
        sdtype, sshape, sdata = raw_tensor(out / where[sname], sname)
        n, k = shape
        want_shape = [math.ceil(n / FP8_BLOCK), math.ceil(k / FP8_BLOCK)]
        require(sdtype == "F32" and sshape == want_shape, f"{sname}: {sdtype} {sshape}, vLLM needs F32 {want_shape}")
        q = np.frombuffer(data, dtype=ml_dtypes.float8_e4m3fn).astype(np.float32).reshape(n, k)
        require(np.isfinite(q).all(), f"{name}: {int((~np.isfinite(q)).sum())} FP8 codes decode to NaN")
        s = np.frombuffer(sdata, dtype=np.float32).reshape(want_shape)
        require(np.isfinite(s).all() and (s > 0).all(), f"{sname}: non-finite or non-positive scales")
        ref = src[name].astype(np.float32)
        block_scale = np.repeat(np.repeat(s, FP8_BLOCK, 0), FP8_BLOCK, 1)[:n, :k]
        shapes[name] = shape
        # Within half an E4M3 step of the value, never finer than the subnormal step 2^-9 * scale.
        deq = q * block_scale
        bound = np.maximum(np.abs(ref) * FP8_REL, block_scale * 2.0**-9) * 1.0001
        excess = float((np.abs(deq - ref) - bound).max())
        worst = max(worst, float((np.abs(deq - ref) / bound).max()))
        require(excess <= 0, f"{name}: dequantized weight off the source by more than FP8 rounding ({excess:.3e} over)")
        n_fp8 += 1
    require(n_fp8 > 0, f"{model}/h800: no F8_E4M3 weights")
    merged = vllm_merge_rules(shapes)
    print(
        f"  {model}/h800: quantization_config ok; {len(shards)} shard(s) open in safetensors, {note}; "
        f"{n_fp8} F8_E4M3 weights with F32 [ceil(N/128), ceil(K/128)] weight_scale_inv, all finite, "
        f"dequantized within E4M3 rounding of the source (max error {worst:.2f} of the half-step bound); "
        f"{merged} merged/MoE projections have output rows in whole 128-blocks"
    )


# vLLM merges these projections into one FP8 GEMM (QKVParallelLinear, MergedColumnParallelLinear,
# DeepSeek's fused_qkv_a_proj); validate_fp8_block_shape requires every part but the last to have
# a multiple of block_n output rows. Fp8MoEMethod requires the expert intermediate size (gate/up
# rows) to be a multiple of block_n outright.
MERGED = [("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"), ("q_a_proj", "kv_a_proj_with_mqa")]


def vllm_merge_rules(shapes):
    checked = 0
    for name, (n, _k) in shapes.items():
        prefix, _, leaf = name.rpartition(".weight")[0].rpartition(".")
        if ".experts." in name and leaf in ("gate_proj", "up_proj"):
            require(n % FP8_BLOCK == 0, f"{name}: expert intermediate {n} not a multiple of {FP8_BLOCK} (vLLM Fp8MoEMethod)")
            checked += 1
            continue
        for group in MERGED:
            parts = [f"{prefix}.{p}.weight" for p in group]
            if leaf == group[0] and all(p in shapes for p in parts):
                for p in parts[:-1]:
                    require(shapes[p][0] % FP8_BLOCK == 0, f"{p}: {shapes[p][0]} rows, vLLM's merged FP8 GEMM needs a multiple of {FP8_BLOCK}")
                checked += 1
    return checked


def check_h800(ctx):
    """h800 bundles: what vLLM's FP8 block loader requires, checked in Python."""
    for model in H800_BUNDLES:
        check_h800_bundle(ctx, model)
