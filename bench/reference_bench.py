#!/usr/bin/env python3
"""The Python references for `tweetclf bench`, over the same model directory, texts and thread
count, printing the same JSON shape:

- torch:     Hugging Face transformers BertModel, PyTorch CPU, float32;
- onnx:      the same network exported to ONNX, onnxruntime CPU, float32;
- onnx-int8: that export with dynamic int8 weight quantization (onnxruntime.quantization).

Texts are read from the `clean_text` field (the Rust engine cleans raw text itself; the
references get the same model input). Each backend runs in its own process so that peak RSS
is its own. bench/run-all.sh drives this script.
"""

import argparse
import json
import pathlib
import resource
import statistics
import subprocess
import sys
import time

PROBE_TEXT = "@user two hours on hold and the call dropped, again. Not impressed enraged face"


def load_texts(path, count, prefix=""):
    """The engine's model input: clean text, behind the model's text prefix (E5: `query: `)."""
    texts = [prefix + json.loads(line)["clean_text"] for line in open(path, encoding="utf-8") if line.strip()]
    return [texts[i % len(texts)] for i in range(count)]


def make_tokenizer(model_dir, max_tokens):
    import tokenizers
    tokenizer = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    config = json.loads((model_dir / "config.json").read_text())
    pad_id = config.get("pad_token_id", 0)
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_tokens)
    tokenizer.enable_padding(pad_id=pad_id, pad_token=tokenizer.id_to_token(pad_id))  # to the longest in each batch
    return tokenizer


def load_bert(model_dir):
    """transformers' BertModel in f32 from a model directory; 4-bit tensors (`*.q4_0`, the
    multilingual-e5-small base) are dequantized to the float values our engine computes with."""
    import torch
    import transformers
    from safetensors.torch import load_file

    stored = load_file(model_dir / "model.safetensors")
    if not any(name.endswith(".q4_0") for name in stored):
        return transformers.BertModel.from_pretrained(model_dir, dtype=torch.float32, add_pooling_layer=False).eval()
    from reference_e5 import dequantize_q4_0

    state = {}
    for name, tensor in stored.items():
        if name.startswith("classifier."):
            continue
        if name.endswith(".q4_0"):
            blocks = tensor.numpy()
            state[name[: -len(".q4_0")]] = torch.from_numpy(dequantize_q4_0(blocks, blocks.shape[1] // 18 * 32))
        else:
            state[name] = tensor.float()
    config = transformers.BertConfig.from_pretrained(model_dir)
    bert = transformers.BertModel(config, add_pooling_layer=False)
    missing, unexpected = bert.load_state_dict(state, strict=False)
    assert not unexpected and all("position_ids" in name for name in missing), (missing, unexpected)
    return bert.eval()


def onnx_path(model_dir, int8):
    cache = pathlib.Path(__file__).resolve().parent / ".cache"
    return cache / ("model-int8.onnx" if int8 else "model.onnx")


def export_onnx(model_dir):
    """Writes the f32 and int8 ONNX files (encoder + mean pooling + normalize + head)."""
    import torch
    import transformers
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from safetensors.torch import load_file

    bert = load_bert(model_dir)
    head = {k: v.float() for k, v in load_file(model_dir / "model.safetensors").items() if k.startswith("classifier.output")}

    class Full(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert
            self.weight = torch.nn.Parameter(head["classifier.output.weight"], requires_grad=False)
            self.bias = torch.nn.Parameter(head["classifier.output.bias"], requires_grad=False)

        def forward(self, input_ids, attention_mask):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
            mask = attention_mask.unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = pooled / pooled.norm(dim=-1, keepdim=True).clamp(min=1e-12)
            return pooled @ self.weight.T + self.bias

    f32 = onnx_path(model_dir, False)
    f32.parent.mkdir(exist_ok=True)
    ids = torch.ones((2, 16), dtype=torch.long)
    with torch.no_grad():
        torch.onnx.export(Full().eval(), (ids, torch.ones_like(ids)), str(f32), input_names=["input_ids", "attention_mask"],
                          output_names=["logits"], dynamic_axes={"input_ids": {0: "b", 1: "t"}, "attention_mask": {0: "b", 1: "t"}},
                          opset_version=17, dynamo=False)
    quantize_dynamic(str(f32), str(onnx_path(model_dir, True)), weight_type=QuantType.QInt8)


def make_predict(backend, model_dir, threads):
    """Returns predict(texts) -> list of probability rows, with everything loaded."""
    labels = json.loads((model_dir / "labels.json").read_text())
    tokenizer = make_tokenizer(model_dir, labels["preprocessing"]["max_tokens"])
    if backend == "torch":
        import torch
        from safetensors.torch import load_file
        torch.set_num_threads(threads)
        bert = load_bert(model_dir)
        head = {k: v.float() for k, v in load_file(model_dir / "model.safetensors").items() if k.startswith("classifier.output")}

        def predict(texts):
            encodings = tokenizer.encode_batch(texts)
            ids = torch.tensor([e.ids for e in encodings])
            mask = torch.tensor([e.attention_mask for e in encodings])
            with torch.inference_mode():
                hidden = bert(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
                m = mask.unsqueeze(-1).float()
                pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
                pooled = pooled / pooled.norm(dim=-1, keepdim=True).clamp(min=1e-12)
                logits = pooled @ head["classifier.output.weight"].T + head["classifier.output.bias"]
                return torch.softmax(logits, -1).tolist()
        return predict

    import numpy as np
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(onnx_path(model_dir, backend == "onnx-int8")), options,
                                           providers=["CPUExecutionProvider"])

    def predict(texts):
        encodings = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        (logits,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
        exp = np.exp(logits - logits.max(-1, keepdims=True))
        return (exp / exp.sum(-1, keepdims=True)).tolist()
    return predict


def percentile(values, quantile):
    ordered = sorted(values)
    return ordered[round((len(ordered) - 1) * quantile)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["torch", "onnx", "onnx-int8"])
    parser.add_argument("--model", type=pathlib.Path, default=pathlib.Path("models/sentiment"))
    parser.add_argument("--input", type=pathlib.Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--batch-sizes", default="1,8,32,128")
    parser.add_argument("--cold-starts", type=int, default=3)
    parser.add_argument("--export-onnx", action="store_true", help="write the ONNX files and exit")
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.export_onnx:
        export_onnx(args.model)
        return
    if args.probe:
        started = time.perf_counter()
        predict = make_predict(args.backend, args.model, args.threads)
        loaded = time.perf_counter()
        predict([PROBE_TEXT])
        print(json.dumps({"load_ms": (loaded - started) * 1000, "first_prediction_ms": (time.perf_counter() - loaded) * 1000}))
        return

    runs, timings = [], None
    for _ in range(max(args.cold_starts, 1)):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, __file__, "--probe", "--backend", args.backend, "--model", str(args.model),
                              "--threads", str(args.threads)], check=True, capture_output=True, text=True)
        runs.append((time.perf_counter() - started) * 1000)
        timings = json.loads(out.stdout.strip().splitlines()[-1])

    predict = make_predict(args.backend, args.model, args.threads)
    preprocessing = json.loads((args.model / "labels.json").read_text())["preprocessing"]
    prefix = preprocessing.get("text_prefix", "")
    tokenizer = make_tokenizer(args.model, preprocessing["max_tokens"])
    texts = load_texts(args.input, args.texts, prefix)
    batches = []
    for size in [int(s) for s in args.batch_sizes.split(",")]:
        predict(texts[:size])
        latencies = []
        started = time.perf_counter()
        for i in range(0, len(texts), size):
            call = time.perf_counter()
            predict(texts[i:i + size])
            latencies.append((time.perf_counter() - call) * 1000)
        total = time.perf_counter() - started
        batches.append({"batch_size": size, "tweets_per_s": len(texts) / total,
                        "p50_ms": percentile(latencies, 0.5), "p95_ms": percentile(latencies, 0.95)})
    # The whole input in one go, batched as a careful user would: sorted by token length,
    # at most 64 texts a batch (the Candle engine's own limit), each padded to its longest.
    lengths = [len(e.ids) for e in tokenizer.encode_batch(texts)]
    ordered = [texts[i] for i in sorted(range(len(texts)), key=lengths.__getitem__)]
    passes = []
    for _ in range(4):
        started = time.perf_counter()
        for i in range(0, len(ordered), 64):
            predict(ordered[i:i + 64])
        passes.append(len(texts) / (time.perf_counter() - started))
    whole = statistics.median(passes[1:])
    import importlib.metadata as metadata
    versions = {"torch": f"transformers {metadata.version('transformers')}, torch {metadata.version('torch')}, f32",
                "onnx": f"onnxruntime {metadata.version('onnxruntime')}, f32",
                "onnx-int8": f"onnxruntime {metadata.version('onnxruntime')}, int8 dynamic quantization"}
    print(json.dumps({
        "engine": versions[args.backend],
        "threads": args.threads,
        "texts": len(texts),
        "mean_chars": statistics.mean(len(t) for t in texts),
        "cold_start": {"median_ms": statistics.median(runs), "runs_ms": runs, **timings},
        "batches": batches,
        "whole_input_tweets_per_s": whole,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }, indent=2))


if __name__ == "__main__":
    main()
