#!/usr/bin/env python3
"""Writes BENCHMARKS.md from the JSON results of bench/run-all.sh: every figure next to its
ratio against PyTorch, measured in the same run on the same machine."""

import json
import os
import pathlib
import platform
import statistics
import sys


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return f"{cpu}, {os.cpu_count()} cores, {mem / 1024 / 1024:.0f} GiB, {platform.system()} {platform.release()}"


def median_run(rounds):
    """One engine's results with every figure the median over the rounds."""
    med = lambda values: statistics.median(values)
    first = rounds[0]
    batches = []
    for index, batch in enumerate(first["batches"]):
        same = [r["batches"][index] for r in rounds]
        batches.append({"batch_size": batch["batch_size"],
                        **{key: med([b[key] for b in same]) for key in ("tweets_per_s", "p50_ms", "p95_ms")}})
    cold = {key: med([r["cold_start"][key] for r in rounds]) for key in ("median_ms", "load_ms", "first_prediction_ms")}
    return {**first, "batches": batches, "cold_start": cold,
            "whole_input_tweets_per_s": med([r["whole_input_tweets_per_s"] for r in rounds]),
            "peak_rss_mib": med([r["peak_rss_mib"] for r in rounds]), "rounds": len(rounds)}


def ratio(value, reference, higher_is_better):
    r = value / reference if higher_is_better else reference / value
    return f"{r:.2f}×"


def throughput_rows(runs, names, ref, sizes):
    rows = []
    for key, name in names.items():
        cells = []
        for size in sizes:
            b = next(x for x in runs[key]["batches"] if x["batch_size"] == size)
            r = next(x for x in ref["batches"] if x["batch_size"] == size)
            cells.append(f"{b['tweets_per_s']:.1f} ({ratio(b['tweets_per_s'], r['tweets_per_s'], True)})")
        whole = runs[key]["whole_input_tweets_per_s"]
        cells.append(f"{whole:.1f} ({ratio(whole, ref['whole_input_tweets_per_s'], True)})")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return rows


def memory_rows(runs, names, ref):
    rows = []
    for key, name in names.items():
        run = runs[key]
        cs = run["cold_start"]
        rows.append(f"| {name} | {cs['median_ms']:.0f} ({ratio(cs['median_ms'], ref['cold_start']['median_ms'], False)}) "
                    f"| {cs['load_ms']:.0f} + {cs['first_prediction_ms']:.0f} "
                    f"| {run['peak_rss_mib']:.0f} ({ratio(run['peak_rss_mib'], ref['peak_rss_mib'], False)}) |")
    return rows


def main():
    results, command = pathlib.Path(sys.argv[1]), sys.argv[2]
    names = {"candle": "Candle (this project)", "torch": "PyTorch (transformers)", "onnx": "onnxruntime f32", "onnx-int8": "onnxruntime int8"}
    e5_names = {"candle-e5": "Candle (this project)",
                "candle-e5-f32": "Candle, every product in f32 (as on arm64)",
                "torch-e5": "PyTorch (transformers)"}
    rounds = sorted(results.glob("round-*"))
    runs = {name: median_run([json.loads((r / f"{name}.json").read_text()) for r in rounds]) for name in [*names, *e5_names]}
    ref = runs["torch"]
    candle = runs["candle"]
    sizes = [b["batch_size"] for b in candle["batches"]]

    header = "| engine | " + " | ".join(f"batch {s}" for s in sizes) + " | whole input |"
    rule = "|---|" + "---|" * (len(sizes) + 1)
    memory_header = ["| engine | cold start (ms, median of fresh processes) | load + first prediction inside the process (ms) | peak RSS (MiB) |",
                     "|---|---|---|---|"]
    out = ["# Benchmarks", "",
           f"Machine: {machine()}. Threads: {candle['threads']}. Texts: {candle['texts']} held-out airline tweets "
           f"(mean {candle['mean_chars']:.0f} characters).", "",
           f"Command: `{command}` — every engine measured in each of {len(rounds)} rounds, one after another; "
           "each figure is the median over the rounds.", "",
           "Ratios are against PyTorch on the same model from the same run; above 1× means better than PyTorch "
           "(more tweets/s, or less time or memory). *Whole input* is every text in one call, batched as each "
           "engine does on its own (sorted by length, at most 64 texts a batch).", "",
           "## all-MiniLM-L6-v2 (sentiment 0.2.0, the previous default, from git history)", "",
           "### Throughput (tweets/s) by batch size", "", header, rule,
           *throughput_rows(runs, names, ref, sizes),
           "", "### Latency per call (ms, p50 / p95)", "",
           "| engine | " + " | ".join(f"batch {s}" for s in sizes) + " |", "|---|" + "---|" * len(sizes)]
    for key, name in names.items():
        cells = [f"{b['p50_ms']:.1f} / {b['p95_ms']:.1f}" for b in runs[key]["batches"]]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out += ["", "### Cold start and memory", "", *memory_header, *memory_rows(runs, names, ref)]

    e5, e5_ref = runs["candle-e5"], runs["torch-e5"]
    out += ["", "## multilingual-e5-small (sentiment 1.0.0, `models/sentiment`: 12 layers, 4-bit word table)", "",
            "### Throughput (tweets/s) by batch size", "", header, rule,
            *throughput_rows(runs, e5_names, e5_ref, sizes),
            "", "Candle on multilingual-e5-small against Candle on all-MiniLM-L6-v2 in the same rounds "
            "(the new base does about 2.3× the work per tweet: twice the layers, 1.17× the tokens):", "",
            "| | " + " | ".join(f"batch {s}" for s in sizes) + " | whole input |", rule,
            "| e5 ÷ MiniLM | " + " | ".join(
                f"{e['tweets_per_s'] / m['tweets_per_s']:.2f}×" for e, m in zip(e5["batches"], candle["batches"]))
            + f" | {e5['whole_input_tweets_per_s'] / candle['whole_input_tweets_per_s']:.2f}× |",
            "", "### Cold start and memory", "", *memory_header, *memory_rows(runs, e5_names, e5_ref)]
    out += ["", "Engines: " + "; ".join(f"{names[k]} = {runs[k]['engine']}" for k in names) + ".", "",
            "Candle runs the 4-bit layers of multilingual-e5-small (the lower eight) as integer products where the "
            "CPU has AVX2 (8-bit activations × the stored 4-bit weights, shared/classifier/src/q4_matmul.rs); "
            "the f32 row is the same engine with `tweetclf bench --f32`, what a CPU without AVX2 (Graviton) runs.", "",
            "The PyTorch reference for multilingual-e5-small loads the same 4-bit tensors dequantized to float32 "
            "(bench/reference_bench.py), so both engines compute with the same weights.", "",
            "Cold start is process spawn → model loaded → first prediction → exit, timed by the parent. "
            "Peak RSS is the benchmark process's high-water mark over all batch sizes. The references tokenize the "
            "same cleaned text the Rust engine produces from the raw tweets and pad each batch to its longest text; "
            "the Candle engine computes no padding (a batch is its texts' tokens end to end, see "
            "shared/classifier/src/bert.rs).", ""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
