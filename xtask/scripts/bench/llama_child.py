"""Child process for llama-cpp-python runs, so /usr/bin/time sees only this work's peak RSS.

    llama_child.py quantize SRC DST MIX      -> {"seconds": ...}  (time inside llama_model_quantize)
    llama_child.py infer MODEL IDS N_NEW     -> {"prompt_s", "gen_s", "n_prompt", "n_gen", "generated"}
    llama_child.py idle                      -> baseline: the interpreter with llama_cpp imported
"""

import ctypes
import json
import os
import sys
import time


def quiet():
    """libllama logs to fd 2; keep the bench output clean."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)


def main():
    import llama_cpp

    cmd = sys.argv[1]
    if cmd == "idle":
        out = {}
    elif cmd == "quantize":
        src, dst, mix = sys.argv[2:5]
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{mix}")
        params.nthread = 2
        quiet() if not os.environ.get("BENCH_VERBOSE") else None
        t0 = time.perf_counter()
        rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
        out = {"seconds": time.perf_counter() - t0, "rc": rc}
    elif cmd == "infer":
        import numpy as np

        model, ids, n_new = sys.argv[2], [int(i) for i in sys.argv[3].split(",")], int(sys.argv[4])
        quiet() if not os.environ.get("BENCH_VERBOSE") else None
        llm = llama_cpp.Llama(model_path=model, n_ctx=len(ids) + n_new + 8, n_batch=len(ids), n_threads=2,
                              n_threads_batch=2, verbose=False, seed=0)
        n_vocab = llm.n_vocab()

        def last():  # the last position's logits (the only row kept without logits_all)
            return int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,))))

        t0 = time.perf_counter()
        llm.eval(ids)
        t1 = time.perf_counter()
        generated = [last()]
        while len(generated) < n_new:  # greedy, one decode step per token, no EOS stop
            llm.eval([generated[-1]])
            generated.append(last())
        t2 = time.perf_counter()
        out = {"prompt_s": t1 - t0, "gen_s": t2 - t1, "n_prompt": len(ids), "n_gen_steps": n_new - 1,
               "generated": generated}
    else:
        raise SystemExit(f"unknown command {cmd}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
