#!/usr/bin/env python3
"""The classic recipes our models must beat, trained on the same data and scored on the same
held-out set as the model (data/prepare-sentiment.py and data/prepare-disaster.py write them).

Sentiment (train.jsonl → airline-test.jsonl):
- TF-IDF (word 1–2-grams) + logistic regression (scikit-learn);
- the seeds' bag-of-words MLP: top-3000-word binary one-hot → 512 ReLU → 256 sigmoid → softmax
  (PyTorch, Adam, seeded).
Figures: 3-class accuracy and macro-F1, per-class F1, and binary accuracy on the
negative/positive rows (positive iff p(positive) > p(negative)).

Disaster (train.jsonl → test.jsonl, multi-label):
- TF-IDF + one-vs-rest logistic regression, each label decided at p ≥ 0.5.
Figures: micro- and macro-F1 over the labels, exact-set accuracy.

Writes bench/results/baselines-<task>.json (bench/model_report.py reads it) and prints it.

    .venv-bench/bin/pip install scikit-learn torch
    .venv-bench/bin/python bench/baselines.py sentiment
    .venv-bench/bin/python bench/baselines.py disaster
"""

import json
import pathlib
import sys

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.multiclass import OneVsRestClassifier

ROOT = pathlib.Path(__file__).resolve().parent.parent
SENTIMENT = ["negative", "neutral", "positive"]


def rows(task, name):
    return [json.loads(line) for line in open(ROOT / "data" / task / f"{name}.jsonl", encoding="utf-8")]


def sentiment_scores(name, probabilities, truth):
    predicted = probabilities.argmax(1)
    polar = truth != SENTIMENT.index("neutral")
    binary = (probabilities[polar, 2] > probabilities[polar, 0]) == (truth[polar] == 2)
    per_class = f1_score(truth, predicted, average=None, labels=[0, 1, 2])
    return {"recipe": name, "accuracy": round(accuracy_score(truth, predicted), 4),
            "macro_f1": round(f1_score(truth, predicted, average="macro"), 4),
            "f1": {label: round(float(f), 4) for label, f in zip(SENTIMENT, per_class)},
            "binary_accuracy": round(float(binary.mean()), 4), "test_rows": int(len(truth))}


def tfidf():
    return TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True)


def tfidf_logistic(train, test):
    vectorizer = tfidf()
    model = LogisticRegression(max_iter=2000, C=4.0)
    model.fit(vectorizer.fit_transform(train[0]), train[1])
    return sentiment_scores("tfidf + logistic regression",
                            model.predict_proba(vectorizer.transform(test[0])), test[1])


def bow_mlp(train, test, seed=42):
    import torch

    torch.manual_seed(seed)
    vectorizer = CountVectorizer(max_features=3000, binary=True, lowercase=True)
    x_train = torch.tensor(vectorizer.fit_transform(train[0]).toarray(), dtype=torch.float32)
    x_test = torch.tensor(vectorizer.transform(test[0]).toarray(), dtype=torch.float32)
    y_train = torch.tensor(train[1])
    model = torch.nn.Sequential(torch.nn.Linear(3000, 512), torch.nn.ReLU(), torch.nn.Dropout(0.5),
                                torch.nn.Linear(512, 256), torch.nn.Sigmoid(), torch.nn.Dropout(0.5),
                                torch.nn.Linear(256, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    for _epoch in range(5):
        model.train()
        for batch in torch.randperm(len(y_train), generator=generator).split(128):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x_train[batch]), y_train[batch]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        probabilities = torch.softmax(model(x_test), -1).numpy()
    return sentiment_scores("bag-of-words MLP (3000 → 512 relu → 256 sigmoid → softmax)",
                            probabilities, test[1])


def sentiment():
    def load(name):
        data = rows("sentiment", name)
        return [r["text"] for r in data], np.array([SENTIMENT.index(r["label"]) for r in data])

    train, test = load("train"), load("airline-test")
    return [tfidf_logistic(train, test), bow_mlp(train, test)]


def disaster():
    train, test = rows("disaster", "train"), rows("disaster", "test")
    # The labels the model learns: every label set at least once in training, sorted.
    labels = sorted({label for r in train for label in r["labels"]})

    def matrix(data):
        return np.array([[label in r["labels"] for label in labels] for r in data], dtype=int)

    vectorizer = tfidf()
    model = OneVsRestClassifier(LogisticRegression(max_iter=2000, C=4.0))
    model.fit(vectorizer.fit_transform([r["text"] for r in train]), matrix(train))
    predicted = (model.predict_proba(vectorizer.transform([r["text"] for r in test])) >= 0.5).astype(int)
    truth = matrix(test)
    return [{"recipe": "tfidf + one-vs-rest logistic regression",
             "micro_f1": round(f1_score(truth, predicted, average="micro", zero_division=0), 4),
             "macro_f1": round(f1_score(truth, predicted, average="macro", zero_division=0), 4),
             "exact_accuracy": round(float((truth == predicted).all(1).mean()), 4),
             "labels": len(labels), "test_rows": int(len(test))}]


def main():
    task = sys.argv[1] if len(sys.argv) > 1 else "sentiment"
    results = {"sentiment": sentiment, "disaster": disaster}[task]()
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"baselines-{task}.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    for result in results:
        print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
