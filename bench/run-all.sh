#!/usr/bin/env bash
# Runs tweetclf bench and the Python references (PyTorch, onnxruntime f32 and int8) on the same
# model (the previous default, all-MiniLM-L6-v2), texts and thread count, one after another on an
# otherwise idle machine, then the same for the bundled multilingual-e5-small model (Candle and
# PyTorch on the same weights; Candle twice: 4-bit layers in integers, and every product in f32),
# and writes BENCHMARKS.md with the ratios. Needs data/sentiment/ (python3 data/prepare-sentiment.py).
#
#   bash bench/run-all.sh            # THREADS=2 TEXTS=512 ROUNDS=3 by default
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
threads="${THREADS:-2}"
texts="${TEXTS:-512}"
rounds="${ROUNDS:-3}"
results=bench/results
minilm=bench/.cache/sentiment-0.2.0
e5_model=models/sentiment
mkdir -p "$results"

step() { printf '\n==> %s\n' "$*" >&2; }

step "Python reference environment (.venv-bench: torch, transformers, onnxruntime)"
if [ ! -x .venv-bench/bin/python ]; then
    python3 -m venv .venv-bench
fi
.venv-bench/bin/pip install --quiet --disable-pip-version-check \
    'torch==2.15.*' 'transformers==5.23.*' 'onnxruntime==1.31.*' 'onnx==1.23.*' safetensors tokenizers numpy

step "tweetclf (bench profile)"
cargo build --quiet --profile bench -p tweetclf
tweetclf=target/release/tweetclf   # cargo's built-in bench profile writes to target/release

step "the texts: a seeded sample of the held-out airline tweets, and their clean text"
python3 - "$texts" > "$results/texts.jsonl" <<'PY'
import json, random, sys
rows = [json.loads(l) for l in open("data/sentiment/airline-test.jsonl", encoding="utf-8")]
random.Random(7).shuffle(rows)
for i, row in enumerate(rows[: int(sys.argv[1])]):
    print(json.dumps({"id_str": str(i + 1), "text": row["text"]}, ensure_ascii=False))
PY
rm -rf "$results/ingest"
FILTER_LANGUAGES='*' FILTER_RETWEETS=false FILTER_AUTO_GENERATED_PHRASES='' FILTER_MIN_CONTENT_CHARS=0 \
    FILTER_DUPLICATES=false "$tweetclf" ingest "$results/texts.jsonl" --out "$results/ingest" > /dev/null
# ingest lays its output out as the bucket (clean/<input>/part-*.jsonl): one file for the references.
cat "$results"/ingest/clean/texts.jsonl/part-*.jsonl > "$results/clean.jsonl"
[ "$(wc -l < "$results/clean.jsonl")" -eq "$texts" ] || { echo "ingest kept fewer than $texts texts" >&2; exit 1; }

step "the previous default, sentiment 0.2.0 (all-MiniLM-L6-v2), from git history → $minilm"
if [ ! -f "$minilm/labels.json" ]; then
    mkdir -p "$minilm"
    for file in config.json labels.json model.safetensors tokenizer.json; do
        git show "8f2a2eb:models/sentiment/$file" > "$minilm/$file"
    done
fi

step "ONNX export (f32 and int8)"
.venv-bench/bin/python bench/reference_bench.py --export-onnx --model "$minilm"

# Every engine once per round, rounds one after another: the report takes each figure's median
# over the rounds (this machine is shared and noisy).
common=(--threads "$threads" --texts "$texts")
rm -rf "$results"/round-*
for round in $(seq "$rounds"); do
    out="$results/round-$round"
    mkdir -p "$out"
    step "round $round/$rounds: candle (tweetclf bench), all-MiniLM-L6-v2 and multilingual-e5-small"
    "$tweetclf" bench --json --model "$minilm" --input "$results/texts.jsonl" "${common[@]}" > "$out/candle.json"
    "$tweetclf" bench --json --model "$e5_model" --input "$results/texts.jsonl" "${common[@]}" > "$out/candle-e5.json"
    "$tweetclf" bench --json --f32 --model "$e5_model" --input "$results/texts.jsonl" "${common[@]}" > "$out/candle-e5-f32.json"
    for backend in torch onnx onnx-int8; do
        step "round $round/$rounds: $backend"
        .venv-bench/bin/python bench/reference_bench.py --backend "$backend" --model "$minilm" \
            --input "$results/clean.jsonl" "${common[@]}" > "$out/$backend.json"
    done
    step "round $round/$rounds: torch, multilingual-e5-small"
    .venv-bench/bin/python bench/reference_bench.py --backend torch --model "$e5_model" \
        --input "$results/clean.jsonl" "${common[@]}" > "$out/torch-e5.json"
done

step "BENCHMARKS.md"
# The sections under the marker come from other scripts (load, report, fuzzing): kept as they are.
marker='<!-- Everything below is kept as it is by bench/run-all.sh, which rewrites only what is above. -->'
kept=$(awk -v marker="$marker" 'found || $0 == marker { found = 1; print }' BENCHMARKS.md 2>/dev/null || true)
python3 bench/report.py "$results" "bash bench/run-all.sh  (THREADS=$threads TEXTS=$texts ROUNDS=$rounds)" > "$results/report.md"
{ cat "$results/report.md"; [ -z "$kept" ] || printf '\n%s\n' "$kept"; } > BENCHMARKS.md
cat BENCHMARKS.md
