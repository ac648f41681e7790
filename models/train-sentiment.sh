#!/usr/bin/env bash
# The training runs behind models/sentiment and docs/model-report.md, exactly as recorded.
#
#   models/train-sentiment.sh compare   # the comparison runs (same seed, same validation set)
#   models/train-sentiment.sh ablate    # clean-v2 with each of its rules left out in turn
#
# Needs: data/sentiment/ (python3 data/prepare-sentiment.py), models/base-e5/
# (bash models/fetch-base-e5.sh) and a release build (cargo build --release -p tweetclf).
# Runs go to $RUNS (default runs/, not committed); each model directory's labels.json records
# its command, data, settings, validation history and wall time. Fine-tuning checkpoints every
# epoch: re-run with RESUME=1 to continue an interrupted run.
set -euo pipefail
cd "$(dirname "$0")/.."

TWEETCLF=${TWEETCLF:-target/release/tweetclf}
RUNS=${RUNS:-runs}
DATA=data/sentiment
BASE=models/base-e5
# Comparison runs: a seeded sample of this many training examples, one epoch each.
COMPARE_LIMIT=16000

for needed in "$TWEETCLF" "$DATA/train.jsonl" "$BASE/model.safetensors"; do
    [[ -e $needed ]] || { echo "missing $needed (see the header of $0)" >&2; exit 1; }
done
mkdir -p "$RUNS"

train() {
    local name=$1
    shift
    if [[ -e $RUNS/$name/labels.json ]]; then
        echo "$RUNS/$name exists: skipped"
        return
    fi
    local resume=()
    [[ ${RESUME:-0} == 1 ]] && resume=(--resume)
    "$TWEETCLF" train --valid "$DATA/valid.jsonl" --base "$BASE" --out "$RUNS/$name" \
        --name sentiment --mode top --seed 42 "${resume[@]}" "$@"
}

compare() {
    local sample=(--limit "$COMPARE_LIMIT" --epochs 1)
    train top2-clean-v1-airlines --train "$DATA/train.jsonl" --layers 2 --cleaning clean-v1 "${sample[@]}"
    train top2-clean-v2-airlines --train "$DATA/train.jsonl" --layers 2 --cleaning clean-v2 "${sample[@]}"
    train top2-clean-v2-no-airlines --train "$DATA/train-without-airlines.jsonl" --layers 2 --cleaning clean-v2 "${sample[@]}"
    train top4-clean-v2-airlines --train "$DATA/train.jsonl" --layers 4 --cleaning clean-v2 "${sample[@]}"
    for run in top2-clean-v1-airlines top2-clean-v2-airlines top2-clean-v2-no-airlines top4-clean-v2-airlines; do
        evaluate "$run" "$DATA/valid.jsonl" valid --group-column source
    done
}

# evaluate RUN INPUT NAME [eval flags]: RUN's figures on INPUT, in $RUNS/RUN.NAME.
evaluate() {
    local run=$1 input=$2 name=$3
    shift 3
    [[ -e $RUNS/$run.$name/metrics.json ]] && return
    "$TWEETCLF" eval --model "$RUNS/$run" --input "$input" --out "$RUNS/$run.$name" \
        --binary negative,positive "$@"
}

# Each rule is judged on the whole validation set and on the validation texts it changes
# (runs/valid-RULE.jsonl, from the rule_hits example), against top2-clean-v2-airlines
# (bench/recipe_report.py writes the tables). A fourth rule, laughter, was ablated the same way
# and dropped (commit 7781d4a has it, to rerun that ablation).
ablate() {
    local sample=(--limit "$COMPARE_LIMIT" --epochs 1)
    local rules=(emoticons hashtags elongation)
    cargo build --quiet --release -p tweets --example rule_hits
    for rule in "${rules[@]}"; do
        target/release/examples/rule_hits "$rule" < "$DATA/valid.jsonl" > "$RUNS/valid-$rule.jsonl"
    done
    for rule in "${rules[@]}"; do
        train "top2-clean-v2-without-$rule" --train "$DATA/train.jsonl" --layers 2 \
            --cleaning clean-v2 --leave-out-rule "$rule" "${sample[@]}"
    done
    # Whole-validation figures are in each run's labels.json (metrics.validation).
    for run in top2-clean-v1-airlines top2-clean-v2-airlines "${rules[@]/#/top2-clean-v2-without-}"; do
        for rule in "${rules[@]}"; do
            evaluate "$run" "$RUNS/valid-$rule.jsonl" "rule-$rule"
        done
    done
}

case ${1:-} in
    compare) compare ;;
    ablate) ablate ;;
    *) echo "usage: $0 compare | ablate" >&2; exit 2 ;;
esac
