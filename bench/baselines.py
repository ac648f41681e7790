#!/usr/bin/env python3
"""The classic recipes the bundled sentiment model must beat, trained on the same pool and
scored on the same held-out airline set (data/prepare-sentiment.py writes both):

- TF-IDF (word 1–2-grams) + logistic regression (scikit-learn);
- the seeds' bag-of-words MLP: top-3000-word binary one-hot → 512 ReLU → 256 sigmoid → softmax
  (PyTorch, Adam, seeded).

Prints a JSON object per recipe: 3-class accuracy and macro-F1, and binary accuracy on the
negative/positive rows (positive iff p(positive) > p(negative)).

    .venv-bench/bin/pip install scikit-learn
    .venv-bench/bin/python bench/baselines.py
"""

import json
import pathlib

import numpy as np
import torch
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

DATA = pathlib.Path(__file__).resolve().parent.parent / "data" / "sentiment"
LABELS = ["negative", "neutral", "positive"]


def load(name):
    rows = [json.loads(line) for line in open(DATA / f"{name}.jsonl", encoding="utf-8")]
    return [r["text"] for r in rows], np.array([LABELS.index(r["label"]) for r in rows])


def scores(name, probabilities, truth):
    predicted = probabilities.argmax(1)
    polar = truth != LABELS.index("neutral")
    binary = (probabilities[polar, 2] > probabilities[polar, 0]) == (truth[polar] == 2)
    return {"recipe": name, "accuracy": round(accuracy_score(truth, predicted), 4),
            "macro_f1": round(f1_score(truth, predicted, average="macro"), 4),
            "binary_accuracy": round(float(binary.mean()), 4), "test_rows": int(len(truth))}


def tfidf_logistic(train, test):
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True)
    x_train = vectorizer.fit_transform(train[0])
    model = LogisticRegression(max_iter=2000, C=4.0)
    model.fit(x_train, train[1])
    return scores("tfidf + logistic regression", model.predict_proba(vectorizer.transform(test[0])), test[1])


def bow_mlp(train, test, seed=42):
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
    return scores("bag-of-words MLP (3000 → 512 relu → 256 sigmoid → softmax)", probabilities, test[1])


def main():
    train, test = load("train"), load("airline-test")
    for result in (tfidf_logistic(train, test), bow_mlp(train, test)):
        print(json.dumps(result))


if __name__ == "__main__":
    main()
