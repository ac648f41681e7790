#!/usr/bin/env python3
"""Writes BENCHMARKS.md from the JSON results of bench/run-all.sh: every figure next to its
ratio against PyTorch, measured in the same run on the same machine."""

import json
import os
import pathlib
import platform
import sys


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return f"{cpu}, {os.cpu_count()} cores, {mem / 1024 / 1024:.0f} GiB, {platform.system()} {platform.release()}"


def main():
    results, command = pathlib.Path(sys.argv[1]), sys.argv[2]
    names = {"candle": "Candle (this project)", "torch": "PyTorch (transformers)", "onnx": "onnxruntime f32", "onnx-int8": "onnxruntime int8"}
    runs = {name: json.loads((results / f"{name}.json").read_text()) for name in names}
    ref = runs["torch"]
    candle = runs["candle"]
    sizes = [b["batch_size"] for b in candle["batches"]]

    def ratio(value, reference, higher_is_better):
        r = value / reference if higher_is_better else reference / value
        return f"{r:.2f}×"

    out = ["# Benchmarks", "",
           f"Machine: {machine()}. Threads: {candle['threads']}. Texts: {candle['texts']} held-out airline tweets "
           f"(mean {candle['mean_chars']:.0f} characters), model `models/sentiment` (all-MiniLM-L6-v2 + head).", "",
           f"Command: `{command}` — every engine measured in the same run, one after another.", "",
           "Ratios are against PyTorch from the same run; above 1× means better than PyTorch "
           "(more tweets/s, or less time or memory).", "",
           "## Throughput (tweets/s) by batch size", "",
           "| engine | " + " | ".join(f"batch {s}" for s in sizes) + " |",
           "|---|" + "---|" * len(sizes)]
    for key, name in names.items():
        cells = []
        for size in sizes:
            b = next(x for x in runs[key]["batches"] if x["batch_size"] == size)
            r = next(x for x in ref["batches"] if x["batch_size"] == size)
            cells.append(f"{b['tweets_per_s']:.1f} ({ratio(b['tweets_per_s'], r['tweets_per_s'], True)})")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out += ["", "## Latency per call (ms, p50 / p95)", "",
            "| engine | " + " | ".join(f"batch {s}" for s in sizes) + " |",
            "|---|" + "---|" * len(sizes)]
    for key, name in names.items():
        cells = [f"{b['p50_ms']:.1f} / {b['p95_ms']:.1f}" for b in runs[key]["batches"]]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out += ["", "## Cold start and memory", "",
            "| engine | cold start (ms, median of fresh processes) | load + first prediction inside the process (ms) | peak RSS (MiB) |",
            "|---|---|---|---|"]
    for key, name in names.items():
        run = runs[key]
        cs = run["cold_start"]
        out.append(f"| {name} | {cs['median_ms']:.0f} ({ratio(cs['median_ms'], ref['cold_start']['median_ms'], False)}) "
                   f"| {cs['load_ms']:.0f} + {cs['first_prediction_ms']:.0f} "
                   f"| {run['peak_rss_mib']:.0f} ({ratio(run['peak_rss_mib'], ref['peak_rss_mib'], False)}) |")
    out += ["", "Engines: " + "; ".join(f"{names[k]} = {runs[k]['engine']}" for k in names) + ".", "",
            "Cold start is process spawn → model loaded → first prediction → exit, timed by the parent. "
            "Peak RSS is the benchmark process's high-water mark over all batch sizes. The references tokenize the "
            "same cleaned text the Rust engine produces from the raw tweets and pad each batch to its longest text; "
            "the Candle engine computes no padding (a batch is its texts' tokens end to end, see "
            "shared/classifier/src/bert.rs).", ""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
