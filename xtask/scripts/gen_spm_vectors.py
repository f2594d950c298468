"""Token ids the SentencePiece library gives for the mistral_bf16 fixture's tokenizer.model
(with the BOS `LlamaTokenizer` adds), written to tests/data/vectors/tokenizer/mistral_bf16_spm.json.
Run with the interop venv (sentencepiece 0.2.3):
`target/interop-venv/bin/python xtask/scripts/gen_spm_vectors.py`.
"""

import json
import os

import sentencepiece as spm

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data")
TEXTS = ["Hello world", "  spaced   out\n", "naïve café 123",
         "The quick brown fox jumps over the lazy dog.", "\t tabs\tand\nnewlines\n\n",
         "emoji 🙂 and 中文", "a", ""]

sp = spm.SentencePieceProcessor(
    model_file=os.path.join(ROOT, "fixtures", "models", "mistral_bf16", "tokenizer.model"))
out = {"source": f"sentencepiece {spm.__version__}", "bos": 1,
       "cases": [{"text": t, "ids": [1] + sp.encode(t)} for t in TEXTS]}
with open(os.path.join(ROOT, "vectors", "tokenizer", "mistral_bf16_spm.json"), "w") as f:
    json.dump(out, f, ensure_ascii=False, indent=1)
    f.write("\n")
