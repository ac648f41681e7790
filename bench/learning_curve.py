#!/usr/bin/env python3
"""How many labelled examples a task needs: for sentiment and for the disaster task, models
trained on 100, 300, 1,000 and 3,000 examples — ours with the default settings (`tweetclf
train` with no other flag: a head over the bundled model's encoder, thresholds tuned on
validation when multi-label) beside TF-IDF + (one-vs-rest) logistic regression, the classic
recipe, trained on the same examples.

The bundled model's encoder was itself fine-tuned on the whole sentiment training pool, so
over it a sentiment curve would not show what N labels teach: the sentiment runs start from
the plain multilingual-e5-small (`--base models/base-e5`, `bash models/fetch-base-e5.sh`), a
head and otherwise the defaults. The disaster runs use the defaults as they are (that encoder
never saw a disaster message).

Protocol, the same for both recipes and every size:
- training examples: a seeded sample of the task's training split (data/prepare-*.py);
- validation (ours only; TF-IDF + LR has no early stopping or thresholds to tune): one seeded
  sample of 500 from the validation split, its labels restricted to those the training sample
  has (a label never seen in training cannot be learned, and `train` refuses it);
- test: sentiment, a seeded sample of 2,000 held-out airline tweets (@united, @SouthwestAir);
  disaster, the whole test split (2,629). Scores from `tweetclf classify` on the test texts
  and from scikit-learn, compared with the truth by the same code. Disaster figures are over
  every label of the full training split (a label a small sample never saw counts, with F1 0).

Writes bench/results/learning-curve.json, docs/learning-curve.svg, and records every training
run in bench/results/runs (`tweetclf runs bench/results/runs` lists them).

    .venv-bench/bin/pip install scikit-learn matplotlib
    .venv-bench/bin/python bench/learning_curve.py --tweetclf target/release/tweetclf
"""

import argparse
import json
import pathlib
import random
import subprocess
import tempfile
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.multiclass import OneVsRestClassifier

from baselines import SENTIMENT, rows, tfidf

ROOT = pathlib.Path(__file__).resolve().parent.parent
SIZES = [100, 300, 1000, 3000]
SEED = 42
VALID_SIZE = 500
SENTIMENT_TEST_SIZE = 2000


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def sample(records, size, salt):
    return random.Random(f"{SEED}-{salt}").sample(records, min(size, len(records)))


class Task:
    """A task's data and how its predictions are scored."""

    def __init__(self, name):
        self.name = name
        self.train = rows(name, "train")
        self.valid = sample(rows(name, "valid"), VALID_SIZE, "valid")
        if name == "sentiment":
            self.test = sample(rows(name, "airline-test"), SENTIMENT_TEST_SIZE, "test")
            self.labels = SENTIMENT
        else:
            self.test = rows(name, "test")
            self.labels = sorted({label for r in self.train for label in r["labels"]})
        self.multi_label = name == "disaster"

    def truth(self, records):
        if self.multi_label:
            return np.array([[label in r["labels"] for label in self.labels] for r in records], dtype=int)
        return np.array([self.labels.index(r["label"]) for r in records])

    def scores(self, predicted):
        truth = self.truth(self.test)
        if self.multi_label:
            return {"micro_f1": round(f1_score(truth, predicted, average="micro", zero_division=0), 4),
                    "macro_f1": round(f1_score(truth, predicted, average="macro", zero_division=0), 4)}
        return {"accuracy": round(accuracy_score(truth, predicted), 4),
                "macro_f1": round(f1_score(truth, predicted, average="macro"), 4)}

    def restricted_valid(self, train):
        """The validation sample with only the labels the training sample has."""
        if not self.multi_label:
            seen = {r["label"] for r in train}
            return [r for r in self.valid if r["label"] in seen]
        seen = {label for r in train for label in r["labels"]}
        return [dict(r, labels=[label for label in r["labels"] if label in seen]) for r in self.valid]


def ours(task, train, work, tweetclf, runs):
    """`tweetclf train` with default settings, then `tweetclf classify` on the test texts."""
    train_file, valid_file = work / "train.jsonl", work / "valid.jsonl"
    write_jsonl(train_file, train)
    write_jsonl(valid_file, task.restricted_valid(train))
    model = work / "model"
    started = time.monotonic()
    base = ["--base", ROOT / "models" / "base-e5"] if task.name == "sentiment" else []
    subprocess.run([tweetclf, "train", "--train", train_file, "--valid", valid_file, "--out", model,
                    "--name", f"{task.name}-{len(train)}", "--runs", runs, "--force", *base],
                   check=True, stdout=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    texts = work / "test.jsonl"
    write_jsonl(texts, [{"text": r["text"]} for r in task.test])
    output = subprocess.run([tweetclf, "classify", texts, "--model", model],
                            check=True, capture_output=True, text=True).stdout
    predictions = [json.loads(line) for line in output.splitlines()]
    if task.multi_label:
        predicted = np.array([[label in p["labels"] for label in task.labels] for p in predictions], dtype=int)
    else:
        predicted = np.array([task.labels.index(p["label"]) for p in predictions])
    return dict(task.scores(predicted), train_seconds=round(seconds, 1))


def classic(task, train):
    """TF-IDF + (one-vs-rest) logistic regression on the same examples."""
    vectorizer = tfidf()
    features = vectorizer.fit_transform([r["text"] for r in train])
    test = vectorizer.transform([r["text"] for r in task.test])
    if task.multi_label:
        model = OneVsRestClassifier(LogisticRegression(max_iter=2000, C=4.0))
        model.fit(features, task.truth(train))
        return task.scores((model.predict_proba(test) >= 0.5).astype(int))
    model = LogisticRegression(max_iter=2000, C=4.0)
    model.fit(features, [r["label"] for r in train])
    predicted = model.predict(test)
    return task.scores(np.array([task.labels.index(label) for label in predicted]))


def plot(results, path):
    import matplotlib
    matplotlib.use("svg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = [("sentiment", ["macro_f1", "accuracy"], "Sentiment (held-out airlines, 3 classes)"),
              ("disaster", ["macro_f1", "micro_f1"], "Disaster messages (34 labels)")]
    for axis, (task, metrics, title) in zip(axes, panels):
        for recipe, style in [("ours", "-"), ("tfidf_lr", "--")]:
            for metric, color in zip(metrics, ["tab:blue", "tab:orange"]):
                points = [(r["train_examples"], r[recipe][metric]) for r in results if r["task"] == task]
                label = f"{'ours (defaults)' if recipe == 'ours' else 'TF-IDF + LR'} {metric.replace('_', '-')}"
                axis.plot(*zip(*points), style, color=color, marker="o", label=label)
        axis.set_xscale("log")
        axis.set_xticks(SIZES, [f"{size:,}" for size in SIZES])
        axis.set_xlabel("training examples")
        axis.set_ylim(0, 1)
        axis.set_title(title)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, metadata={"Date": None})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tweetclf", default=str(ROOT / "target" / "release" / "tweetclf"))
    parser.add_argument("--tasks", default="sentiment,disaster")
    args = parser.parse_args()
    if "sentiment" in args.tasks and not (ROOT / "models" / "base-e5").is_dir():
        parser.error("the sentiment curve starts from models/base-e5: run `bash models/fetch-base-e5.sh`")
    runs = ROOT / "bench" / "results" / "runs"
    results = []
    for name in args.tasks.split(","):
        task = Task(name)
        for size in SIZES:
            train = sample(task.train, size, f"train-{size}")
            with tempfile.TemporaryDirectory() as work:
                result = {"task": name, "train_examples": size,
                          "ours": ours(task, train, pathlib.Path(work), args.tweetclf, runs),
                          "tfidf_lr": classic(task, train)}
            print(json.dumps(result), flush=True)
            results.append(result)
    out = ROOT / "bench" / "results" / "learning-curve.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, ROOT / "docs" / "learning-curve.svg")


if __name__ == "__main__":
    main()
