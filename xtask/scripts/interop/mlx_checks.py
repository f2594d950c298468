"""mlx-lm (issues 4 and 5): wharf's MLX folders against `mlx_lm.convert -q` and mlx's forward pass."""

import contextlib
import io

import numpy as np

from .common import require

MODELS = ["llama", "deepseek_v3"]
# Both sides are f32 CPU forward passes over the same dequantized weights; they differ only in
# summation order (measured about 5e-6 on these fixtures).
MLX_LOGIT_TOL = 1e-4
GREEDY_TOKENS = 8


def mlx_forward(folder, ids, n_new=GREEDY_TOKENS):
    """mlx-lm loads `folder`: logits of every prompt position and its greedy continuation."""
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.generate import generate_step

    model, _tokenizer = load(str(folder))
    logits = np.array(model(mx.array(ids)[None]).astype(mx.float32))[0]
    greedy = [int(t) for t, _ in generate_step(mx.array(ids), model, max_tokens=n_new)]
    return logits, greedy


def same_tensors(ours, theirs):
    """Every tensor of two MLX folders, compared as stored (mx.load reads bf16 too)."""
    import mlx.core as mx

    def tensors(folder):
        out = {}
        for f in sorted(folder.glob("*.safetensors")):
            out.update(mx.load(str(f)))
        return out

    a, b = tensors(ours), tensors(theirs)
    require(a.keys() == b.keys(), f"tensor names differ: only wharf {sorted(a.keys() - b.keys())[:5]}, "
            f"only mlx-lm {sorted(b.keys() - a.keys())[:5]}")
    differ = [k for k in sorted(a) if a[k].dtype != b[k].dtype or not np.array_equal(np.array(a[k]), np.array(b[k]))]
    return len(a), differ


def check_model(ctx, name):
    from mlx_lm import convert

    ids = ctx.prompt_ids(name)
    ours = ctx.path("mlx", f"{name}-wharf-mlx4")
    theirs = ctx.path("mlx", f"{name}-mlxlm-4bit")
    ctx.wharf("quantize", ctx.model(name), "-o", ours, "--scheme", "mlx4")
    with contextlib.redirect_stdout(io.StringIO()):  # its [INFO] lines
        convert(str(ctx.model(name)), mlx_path=str(theirs), quantize=True, q_group_size=64, q_bits=4)

    n, differ = same_tensors(ours, theirs)
    print(f"  {name}: {n} tensors, {n - len(differ)} identical to mlx_lm.convert -q" + (f"; differ: {differ[:5]}" if differ else ""))
    require(not differ, f"{name}: {len(differ)} tensors differ from mlx_lm.convert, first {differ[0] if differ else ''}")

    mlx_ours, greedy_ours = mlx_forward(ours, ids)
    _, greedy_theirs = mlx_forward(theirs, ids)
    print(f"  {name}: mlx-lm greedy on wharf's folder {greedy_ours}, on its own conversion {greedy_theirs}")
    require(greedy_ours == greedy_theirs, f"{name}: greedy tokens differ: wharf {greedy_ours} vs mlx-lm {greedy_theirs}")

    w = ctx.wharf_logits(ours, ids)
    require(w.shape == mlx_ours.shape, f"{name}: logits shape wharf {w.shape} vs mlx {mlx_ours.shape}")
    err = float(np.abs(w - mlx_ours).max())
    print(f"  {name}: max |wharf infer - mlx-lm forward| = {err:.2e} (tolerance {MLX_LOGIT_TOL:.0e})")
    require(err <= MLX_LOGIT_TOL, f"{name}: wharf infer logits off mlx-lm by {err:.3e} > {MLX_LOGIT_TOL:.0e}")


def check(ctx):
    """wharf quantize --scheme mlx4 loads in mlx-lm, matches mlx_lm.convert and mlx's logits."""
    for name in MODELS:
        check_model(ctx, name)
