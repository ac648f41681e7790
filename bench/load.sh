#!/usr/bin/env bash
# Load benchmark (not in CI; about 15 minutes on 2 cores):
#   1. TWEETS (100,000) synthetic tweets of mixed shapes, with retweets, stream deletes,
#      duplicates and bad records among them, uploaded to moto_server and run through ingest
#      and classify with `tweetclf run s3://… --out s3://…` (the use cases the functions run,
#      over the S3 adapter); bench/check_load.py then demands every kept id predicted exactly
#      once and every other record filtered or rejected as generated.
#   2. One BIG_TWEETS (500,000) Firehose-style file through ingest alone (`--ingest-only`):
#      parts, wall time, peak RSS, against the Python reference (bench/reference_ingest.py)
#      on the same file in the same run.
#   3. BIG_RESPONSE_TWEETS (400,000) in two API responses, one v1.1 search response and one
#      v2 response with its `includes` after its `data`, through ingest alone: each response
#      is streamed tweet by tweet (the v2 tweets wait on local disk for the includes).
# Figures go to bench/results/load.md (copied into BENCHMARKS.md by hand).
#
#   bash bench/load.sh   # TWEETS=100000 BIG_TWEETS=500000 BIG_RESPONSE_TWEETS=400000 ROUNDS=3
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tweets="${TWEETS:-100000}"
big_tweets="${BIG_TWEETS:-500000}"
response_tweets="${BIG_RESPONSE_TWEETS:-400000}"
rounds="${ROUNDS:-3}"
work=bench/.cache/load
results=bench/results
tweetclf=target/release/tweetclf
mkdir -p "$work" "$results"

step() { printf '\n==> %s\n' "$*" >&2; }

step "moto_server and boto3 (bench/.cache/load-venv)"
if [ ! -x bench/.cache/load-venv/bin/moto_server ]; then
    python3 -m venv bench/.cache/load-venv
fi
bench/.cache/load-venv/bin/pip install --quiet --disable-pip-version-check 'moto[server]==5.*' boto3
python=bench/.cache/load-venv/bin/python

step "tweetclf (release)"
cargo build --quiet --release -p tweetclf

step "synthetic data"
rm -rf "$work/raw" "$work/big" "$work/big-out" "$work/reference.jsonl" "$work/responses" \
    "$work/responses-out"
python3 bench/make_load.py --tweets "$tweets" --out "$work/raw"
python3 bench/make_load.py --tweets "$big_tweets" --out "$work/big" --firehose
python3 bench/make_load.py --tweets "$response_tweets" --out "$work/responses" --responses

step "moto_server"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
bench/.cache/load-venv/bin/moto_server -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
export S3_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
    AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
for _ in $(seq 50); do curl -fs "$S3_ENDPOINT_URL" >/dev/null 2>&1 && break; sleep 0.2; done
"$python" - "$work/raw" <<'PY'
import os, sys, boto3
from pathlib import Path
client = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT_URL"])
client.create_bucket(Bucket="load")
for path in sorted(Path(sys.argv[1]).iterdir()):
    client.upload_file(str(path), "load", f"incoming/{path.name}")
PY

# Wall seconds and peak RSS (MiB) of a command, from GNU time.
measure() {
    local log="$1"; shift
    /usr/bin/time -v "$@" >"$log.out" 2>"$log.time"
    awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = t[n] + 60 * t[n-1] + (n > 2 ? 3600 * t[n-2] : 0)}
                /Maximum resident set size/ {r = $2 / 1024}
                END {printf "%.1f %.0f\n", s, r}' "$log.time"
}

step "$tweets tweets of mixed shapes: ingest + classify against moto"
read -r mixed_s mixed_rss < <(measure "$work/mixed" "$tweetclf" run s3://load/incoming/ --out s3://load/out/)
"$python" bench/check_load.py "$work/raw.expected.json" s3://load/out | tee "$work/mixed.check"

step "$big_tweets tweets in one file: ingest only, $rounds rounds against the Python reference"
ours=() reference=() rss=()
for round in $(seq "$rounds"); do
    rm -rf "$work/big-out"
    read -r seconds peak < <(measure "$work/big" "$tweetclf" run "$work/big/firehose-dump" --out "$work/big-out" --ingest-only)
    ours+=("$seconds") rss+=("$peak")
    read -r seconds _ < <(measure "$work/reference" python3 bench/reference_ingest.py "$work/big/firehose-dump" "$work/reference.jsonl")
    reference+=("$seconds")
done
python3 bench/check_load.py "$work/big.expected.json" "$work/big-out" --ingest-only | tee "$work/big.check"
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
big_s=$(median "${ours[@]}") ref_s=$(median "${reference[@]}") big_rss=$(median "${rss[@]}")
parts=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["manifests"]["parts"])' "$work/big.check")
size_mb=$(du -m "$work/big/firehose-dump" | cut -f1)

step "$response_tweets tweets in two API responses: ingest only"
read -r responses_s responses_rss < <(measure "$work/responses" "$tweetclf" run "$work/responses" --out "$work/responses-out" --ingest-only)
python3 bench/check_load.py "$work/responses.expected.json" "$work/responses-out" --ingest-only | tee "$work/responses.check"
responses_mb=$(du -cm "$work/responses"/*.json | tail -1 | cut -f1)

cat >"$results/load.md" <<MD
Command: \`bash bench/load.sh\` (TWEETS=$tweets BIG_TWEETS=$big_tweets ROUNDS=$rounds), $(nproc) cores, $(date -u +%Y-%m-%d).

| run | records | wall time | peak RSS | outcome |
|---|---|---|---|---|
| $tweets tweets, mixed shapes, ingest + classify, S3 (moto) in and out | $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["records"])' "$work/raw.expected.json") | ${mixed_s} s | ${mixed_rss} MiB | $(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print("every kept id predicted once, filtered and rejected as generated" if not c["problems"] else "; ".join(c["problems"]))' "$work/mixed.check") |
| $big_tweets tweets, one ${size_mb} MB JSON Lines file, ingest only (median of $rounds) | $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["records"])' "$work/big.expected.json") | ${big_s} s ($(python3 -c "print(f'{$ref_s / $big_s:.2f}')")× the Python reference's ${ref_s} s) | ${big_rss} MiB | ${parts} parts; $(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print("every kept id once in the parts" if not c["problems"] else "; ".join(c["problems"]))' "$work/big.check") |
| $response_tweets tweets in one search response and one v2 response, ${responses_mb} MB, ingest only | $response_tweets | ${responses_s} s | ${responses_rss} MiB | $(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print("every kept id once in the parts" if not c["problems"] else "; ".join(c["problems"]))' "$work/responses.check") |
MD
cat "$results/load.md"
if grep -q '"problems": \[\]' "$work/mixed.check" && grep -q '"problems": \[\]' "$work/big.check" \
    && grep -q '"problems": \[\]' "$work/responses.check"; then
    exit 0
fi
echo "load check failed" >&2
exit 1
