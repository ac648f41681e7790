#!/usr/bin/env python3
"""Reference logits for the parity test, computed by Hugging Face transformers (PyTorch, CPU,
float32) from the same model directory the Rust classifier loads.

Each text is encoded alone, so the Rust side — which batches texts end to end — is checked
against an unbatched computation. The texts are the `clean_text` column of the fixture: the
model's own cleaning is Rust code, and the Rust test checks it reproduces that column; the
model's `text_prefix` (E5's `query: `) goes in front, as the classifier does. 4-bit matrices
are dequantized by ggml's Q4_0 formula (bench/reference_bench.py's `load_bert`).

    python bench/reference_logits.py --model models/sentiment \
        --texts tests/fixtures/parity/texts.jsonl --out tests/fixtures/parity/expected.json
"""

import argparse
import hashlib
import json
import pathlib

import tokenizers
import torch
import transformers
from safetensors.torch import load_file

from reference_bench import load_bert


def sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=pathlib.Path, required=True)
    parser.add_argument("--texts", type=pathlib.Path, required=True)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    args = parser.parse_args()

    labels = json.loads((args.model / "labels.json").read_text())
    assert labels["pooling"] == {"kind": "mean", "normalize": True}, labels["pooling"]
    tokenizer = tokenizers.Tokenizer.from_file(str(args.model / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(labels["preprocessing"]["max_tokens"])
    bert = load_bert(args.model)
    prefix = labels["preprocessing"].get("text_prefix") or ""
    weights = {k: v.float() for k, v in load_file(args.model / "model.safetensors").items() if k.startswith("classifier.")}

    def head(pooled: torch.Tensor) -> torch.Tensor:
        if "classifier.hidden.weight" in weights:
            pooled = torch.nn.functional.gelu(pooled @ weights["classifier.hidden.weight"].T + weights["classifier.hidden.bias"])
        return pooled @ weights["classifier.output.weight"].T + weights["classifier.output.bias"]

    records = [json.loads(line) for line in args.texts.read_text(encoding="utf-8").splitlines() if line.strip()]
    logits = []
    with torch.no_grad():
        for record in records:
            ids = torch.tensor([tokenizer.encode(prefix + record["clean_text"]).ids])
            hidden = bert(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids)).last_hidden_state
            pooled = hidden.mean(dim=1)
            pooled = pooled / pooled.norm(dim=-1, keepdim=True).clamp(min=1e-12)
            logits.append([round(float(x), 7) for x in head(pooled)[0]])

    args.out.write_text(json.dumps({
        "model_sha256": sha256(args.model / "model.safetensors"),
        "labels": labels["labels"],
        "reference": f"transformers {transformers.__version__}, torch {torch.__version__}, float32 "
                     "(4-bit matrices dequantized), CPU, one text at a time",
        "logits": logits,
    }, indent=1) + "\n")
    print(f"{len(logits)} reference logit rows written to {args.out}")


if __name__ == "__main__":
    main()
