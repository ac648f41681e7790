#!/usr/bin/env python3
"""Cross-lingual agreement of a model: on the disaster-response messages that keep their
original-language text beside the English translation (data/disaster/translations.jsonl, from
data/prepare-disaster.py), how often the label predicted on the original equals the label
predicted on the translation. Prints one JSON object. Standard library only.

    python3 bench/cross_lingual_agreement.py [--model DIR] [--tweetclf PATH]
"""

import argparse
import collections
import json
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent


def classify(tweetclf: str, model: str, texts: list[str]) -> list[str]:
    command = [tweetclf, "classify", "--input", "-"]
    if model:
        command += ["--model", model]
    lines = "".join(json.dumps({"text": text}, ensure_ascii=False) + "\n" for text in texts)
    result = subprocess.run(command, input=lines.encode(), capture_output=True, check=True)
    predictions = [json.loads(line) for line in result.stdout.decode().splitlines()]
    if len(predictions) != len(texts):
        raise SystemExit(f"{len(texts)} texts in, {len(predictions)} predictions out")
    return [prediction["label"] for prediction in predictions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="model directory (default: the bundled one)")
    parser.add_argument("--tweetclf", default=str(ROOT / "target/release/tweetclf"))
    parser.add_argument("--data", default=str(ROOT / "data/disaster/translations.jsonl"))
    args = parser.parse_args()

    pairs = [json.loads(line) for line in open(args.data, encoding="utf-8")]
    originals = classify(args.tweetclf, args.model, [pair["original"] for pair in pairs])
    english = classify(args.tweetclf, args.model, [pair["english"] for pair in pairs])
    agree = sum(a == b for a, b in zip(originals, english))
    print(json.dumps({
        "pairs": len(pairs),
        "agreement": round(agree / len(pairs), 4),
        "labels_on_original": dict(collections.Counter(originals)),
        "labels_on_english": dict(collections.Counter(english)),
        "pairs_by_labels": {
            f"{a} / {b}": n
            for (a, b), n in sorted(collections.Counter(zip(originals, english)).items())
        },
    }, indent=2))


if __name__ == "__main__":
    main()
