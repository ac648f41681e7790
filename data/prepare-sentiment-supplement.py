#!/usr/bin/env python3
"""Turns the team's hand-written sentiment supplement (data/supplement/<language>.json, and
data/supplement/everyday/<language>.json) into training and validation JSON Lines, and mixes
them with the pool of data/prepare-sentiment.py. Standard library only, plus the project's own
cleaning (`cargo run -p tweets --example
clean_lines`) and, for distillation, a built `tweetclf`.

What the supplement is, how it was written and its counts: data/supplement/README.md (this
script rewrites the counts part of it). In short: support tweets written by this team for the
capabilities the model lacked (praise after a fixed problem, sarcasm, polite complaints,
neutral questions and notices full of problem words, contrast, emoticons / kaomoji / laughter)
in many languages, each grouped in a *scenario* (one concrete situation told several ways:
resolved and unresolved, sincere and sarcastic), each labelled by what a careful reader says.

Rules it enforces (it stops with every offending line named):
- each tweet's label agrees with its kind (praise after a problem is positive, a notice
  neutral, sarcasm negative, ...; contrast, emoticon, kaomoji, laughter and general tweets
  carry their own label);
- no supplement text equals a capability-suite text (data/capabilities/sentiment.jsonl, the
  frozen regression test) or a held-out airline text once normalized (lower case, clean-v2,
  digits → 0): those are dropped and counted; duplicates inside the supplement likewise.

Validation holds out whole scenarios (and whole `other` tweets), about 15 % of each language,
chosen by a stable hash of the language and scenario id, so a model cannot pass validation by
recognising a scenario's wording.

Translate-train distillation (`--distill N`): N messages of the disaster data set's training
split (data/disaster/translations-train.jsonl, from data/prepare-disaster.py) in their original
language (mostly Haitian Creole), labelled by the teacher model (`--teacher`, default the
bundled one) on their English translation. The test split's pairs, which measure cross-lingual
agreement, are never used.

Writes under data/sentiment/:
  supplement-train.jsonl, supplement-valid.jsonl   the split supplement
  valid-supplemented.jsonl                         the pool's valid.jsonl + supplement-valid
  <out>-train.jsonl                                the pool's train.jsonl (or a seeded sample
                                                   of --pool-sample tweets of it), the
                                                   supplement --repeat times, the distilled
                                                   messages; shuffled

    python3 data/prepare-sentiment-supplement.py --out mix --repeat 3 --distill 3000
"""

import argparse
import collections
import hashlib
import json
import pathlib
import random
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SUPPLEMENT = ROOT / "data/supplement"
SENTIMENT = ROOT / "data/sentiment"
SUITE = ROOT / "data/capabilities/sentiment.jsonl"
VALID_SHARE = 15  # percent of each language's scenarios
LABELS = ("negative", "neutral", "positive")

# kind → (capability it teaches, the label it must carry, or None when the tweet says)
KINDS = {
    "praise_after_problem": ("praise after a problem", "positive"),
    "unresolved_problem": ("unresolved problem", "negative"),
    "sarcasm_marked": ("sarcasm with a marker", "negative"),
    "sarcasm_unmarked": ("sarcasm without a marker", "negative"),
    "sincere_praise": ("sincere praise", "positive"),
    "polite_complaint": ("polite complaint", "negative"),
    "question": ("neutral question", "neutral"),
    "frustrated_question": ("frustrated question", "negative"),
    "notice": ("notice", "neutral"),
    "contrast": ("contrast", None),
    "emoticon": ("emoticons, kaomoji, laughter", None),
    "kaomoji": ("emoticons, kaomoji, laughter", None),
    "laughter": ("emoticons, kaomoji, laughter", None),
    "general": ("general", None),
}


def bucket(key: str) -> int:
    """A stable 0..99 bucket, independent of file order and Python's hash seed."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % 100


def read_language(path: pathlib.Path) -> list[dict]:
    """Every tweet of one language file, flat, with its split key; exits naming each error."""
    data = json.loads(path.read_text(encoding="utf-8"))
    language = data.get("language")
    if language != path.stem:
        sys.exit(f"{path}: language {language!r} does not match the file name")
    errors, tweets, ids = [], [], set()
    groups = [(s.get("id"), s.get("tweets", [])) for s in data.get("scenarios", [])]
    groups += [(None, [tweet]) for tweet in data.get("other", [])]
    for scenario, members in groups:
        if scenario is not None:
            if scenario in ids:
                errors.append(f"scenario {scenario!r} twice")
            ids.add(scenario)
        for tweet in members:
            text, label, kind = (tweet.get(k) for k in ("text", "label", "kind"))
            where = f"{path.name} {scenario or 'other'}: {text!r}"
            if not isinstance(text, str) or not text.strip():
                errors.append(f"{where}: empty text")
            elif kind not in KINDS:
                errors.append(f"{where}: unknown kind {kind!r}")
            elif label not in LABELS:
                errors.append(f"{where}: unknown label {label!r}")
            elif KINDS[kind][1] not in (None, label):
                errors.append(f"{where}: a {kind} tweet must be {KINDS[kind][1]}, not {label}")
            else:
                split_key = f"{language}:{scenario}" if scenario else f"{language}:{text}"
                tweets.append({"text": text.strip(), "label": label, "source": "supplement",
                               "capability": KINDS[kind][0], "kind": kind, "language": language,
                               "scenario": scenario or "other", "split_key": split_key})
    if errors:
        sys.exit("\n".join(errors))
    return tweets


def cleaned(texts: list[str]) -> list[str]:
    """The texts as the model reads them (clean-v2, emoji described), by the project's code."""
    lines = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    command = ["cargo", "run", "--quiet", "--release", "-p", "tweets", "--example", "clean_lines"]
    result = subprocess.run(command, input=lines.encode(), capture_output=True, check=True, cwd=ROOT)
    out = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(out) == len(texts), "clean_lines answered a different number of lines"
    return out


def normalized(texts: list[str]) -> list[str]:
    """Lower case, clean-v2, every digit → 0: the form in which two texts count as the same."""
    return [re.sub(r"\d", "0", t.lower()) for t in cleaned(texts)]


def read_jsonl(path: pathlib.Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def write_jsonl(path: pathlib.Path, records: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def deduplicated(tweets: list[dict]) -> tuple[list[dict], int, int]:
    """Drops tweets equal (normalized) to a suite or held-out text, or to an earlier tweet."""
    suite = read_jsonl(SUITE)
    held_out = read_jsonl(SENTIMENT / "airline-test.jsonl")
    forbidden_texts = [r["text"] for r in suite + held_out]
    forms = normalized(forbidden_texts + [t["text"] for t in tweets])
    forbidden = set(forms[: len(forbidden_texts)])
    kept, seen, dropped_suite, dropped_twice = [], set(), 0, 0
    for tweet, form in zip(tweets, forms[len(forbidden_texts):]):
        if form in forbidden:
            dropped_suite += 1
        elif form in seen:
            dropped_twice += 1
        else:
            seen.add(form)
            kept.append(tweet)
    return kept, dropped_suite, dropped_twice


def distilled(count: int, teacher: str, tweetclf: str, seed: int) -> list[dict]:
    """`count` original-language disaster messages labelled by the teacher on their English."""
    pairs = read_jsonl(ROOT / "data/disaster/translations-train.jsonl")
    test = {p["original"].lower() for p in read_jsonl(ROOT / "data/disaster/translations.jsonl")}
    pairs = [p for p in pairs if p["original"].lower() not in test]
    random.Random(seed).shuffle(pairs)
    pairs = pairs[:count]
    command = [tweetclf, "classify", "--input", "-"] + (["--model", teacher] if teacher else [])
    lines = "".join(json.dumps({"text": p["english"]}, ensure_ascii=False) + "\n" for p in pairs)
    result = subprocess.run(command, input=lines.encode(), capture_output=True, check=True)
    labels = [json.loads(line)["label"] for line in result.stdout.decode().splitlines()]
    assert len(labels) == len(pairs), "the teacher answered a different number of texts"
    return [{"text": p["original"], "label": label, "source": "disaster-distill"}
            for p, label in zip(pairs, labels)]


def counts_table(tweets: list[dict], column: str) -> str:
    """A Markdown table of tweets per `column` value and label, per split."""
    rows = collections.defaultdict(collections.Counter)
    for tweet in tweets:
        rows[tweet[column]][(tweet["split"], tweet["label"])] += 1
    header = f"| {column} | " + " | ".join(f"{s} {l}" for s in ("train", "valid") for l in LABELS)
    lines = [header + " | total |", "|---" * (2 * len(LABELS) + 2) + "|"]
    for key in sorted(rows):
        cells = [rows[key][(s, l)] for s in ("train", "valid") for l in LABELS]
        lines.append(f"| {key} | " + " | ".join(map(str, cells)) + f" | {sum(cells)} |")
    total = [sum(r[(s, l)] for r in rows.values()) for s in ("train", "valid") for l in LABELS]
    lines.append("| **all** | " + " | ".join(map(str, total)) + f" | {sum(total)} |")
    return "\n".join(lines)


def write_counts(tweets: list[dict], dropped_suite: int, dropped_twice: int) -> None:
    """Rewrites the generated part of data/supplement/README.md."""
    readme = SUPPLEMENT / "README.md"
    marker = "<!-- counts: generated by data/prepare-sentiment-supplement.py -->"
    head = readme.read_text(encoding="utf-8").split(marker)[0]
    scenarios = len({(t["language"], t["scenario"]) for t in tweets if t["scenario"] != "other"})
    body = (f"{marker}\n\n## Counts\n\n{len(tweets)} tweets kept ({scenarios} scenarios); "
            f"dropped: {dropped_suite} equal to a capability-suite or held-out text, "
            f"{dropped_twice} duplicates (normalized: lower case, clean-v2, digits → 0).\n\n"
            f"### By capability\n\n{counts_table(tweets, 'capability')}\n\n"
            f"### By language\n\n{counts_table(tweets, 'language')}\n")
    readme.write_text(head + body, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="mix", help="name of the mixed files (<out>-train.jsonl)")
    parser.add_argument("--repeat", type=int, default=1, help="times the supplement is in the mix")
    parser.add_argument("--pool-sample", type=int, help="a seeded sample of the pool's train.jsonl")
    parser.add_argument("--distill", type=int, default=0, help="distilled disaster messages")
    parser.add_argument("--teacher", default="", help="teacher model (default: the bundled one)")
    parser.add_argument("--tweetclf", default=str(ROOT / "target/release/tweetclf"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--without-everyday", action="store_true",
                        help="the support files only (sentiment 1.1.0's supplement)")
    args = parser.parse_args()

    files = sorted(SUPPLEMENT.glob("*.json"))
    if not args.without_everyday:
        files += sorted(SUPPLEMENT.glob("everyday/*.json"))
    tweets = [t for path in files for t in read_language(path)]
    tweets, dropped_suite, dropped_twice = deduplicated(tweets)
    print(f"supplement: {len(tweets)} tweets kept; dropped {dropped_suite} equal to a suite or "
          f"held-out text, {dropped_twice} duplicates")
    for tweet in tweets:
        tweet["split"] = "valid" if bucket(tweet.pop("split_key")) < VALID_SHARE else "train"
    write_counts(tweets, dropped_suite, dropped_twice)
    public = ("text", "label", "source", "capability", "kind", "language", "scenario")
    split = {s: [{k: t[k] for k in public} for t in tweets if t["split"] == s] for s in ("train", "valid")}
    write_jsonl(SENTIMENT / "supplement-train.jsonl", split["train"])
    write_jsonl(SENTIMENT / "supplement-valid.jsonl", split["valid"])

    pool = read_jsonl(SENTIMENT / "train.jsonl")
    if args.pool_sample:
        pool = random.Random(args.seed).sample(pool, args.pool_sample)
    extra = distilled(args.distill, args.teacher, args.tweetclf, args.seed) if args.distill else []
    train = pool + split["train"] * args.repeat + extra
    random.Random(args.seed).shuffle(train)
    valid = read_jsonl(SENTIMENT / "valid.jsonl") + split["valid"]
    write_jsonl(SENTIMENT / f"{args.out}-train.jsonl", train)
    write_jsonl(SENTIMENT / "valid-supplemented.jsonl", valid)
    for name, records in ((f"{args.out}-train", train), ("valid-supplemented", valid),
                          ("supplement-train", split["train"]), ("supplement-valid", split["valid"]),
                          ("distilled", extra)):
        labels = collections.Counter(r["label"] for r in records)
        print(f"{name:24} {len(records):6} {dict(sorted(labels.items()))}")


if __name__ == "__main__":
    main()
