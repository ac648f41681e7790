"""Synthetic raw tweet files for the load benchmarks, with the outcome every record must have.

    python3 bench/make_load.py --tweets 100000 --out DIR            # mixed shapes, many files
    python3 bench/make_load.py --tweets 500000 --out DIR --firehose # one Firehose-style file
    python3 bench/make_load.py --tweets 200000 --out DIR --responses # two big API responses

Mixed mode writes files of every supported shape (v1.1 JSON Lines, gzip JSON Lines, search
responses, v2 responses with `includes`, JSON arrays) and, among the tweets, retweets and
stream `delete` messages (filtered), duplicates of an id already written (filtered) and records
with a non-string text (rejected). The expected outcomes, `{"kept": [ids], "filtered":
{reason: count}, "rejected": count}`, go beside DIR as `DIR.expected.json`, so a checker can
demand each kept id exactly once. The texts are generated (no dataset is read).
"""

import argparse
import gzip
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

SUBJECTS = ["my flight", "the app", "customer service", "the refund", "my order", "the update",
            "the new route", "support chat", "the delivery", "my booking"]
VERBS = ["was late again", "worked perfectly", "crashed twice", "arrived early", "is fixed now",
         "took forever", "was great", "keeps failing", "surprised me", "needs work"]
ENDINGS = ["", " thanks!", " :(", " :D", " 😡", " 👍", " lol", " #travel", " @support", " really?"]
LANGS = ["en", "en", "en", "es", "fr", "de", "pt", "ja"]
START = datetime(2024, 5, 1, tzinfo=timezone.utc)


def text_for(rng: random.Random, index: int) -> str:
    return (f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} (ticket {index})"
            f"{rng.choice(ENDINGS)}")


def posted(rng: random.Random) -> datetime:
    return START + timedelta(seconds=rng.randrange(7 * 24 * 3600))


def v1(rng: random.Random, tweet_id: str, index: int) -> dict:
    return {
        "id_str": tweet_id,
        "created_at": posted(rng).strftime("%a %b %d %H:%M:%S +0000 %Y"),
        "text": text_for(rng, index),
        "lang": rng.choice(LANGS),
        "user": {"id_str": str(1000 + index % 5000), "screen_name": f"user{index % 5000}"},
    }


def v2(rng: random.Random, tweet_id: str, index: int) -> dict:
    return {
        "id": tweet_id,
        "created_at": posted(rng).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "text": text_for(rng, index),
        "lang": rng.choice(LANGS),
        "author_id": str(1000 + index % 5000),
    }


class Outcomes:
    def __init__(self) -> None:
        self.kept: list[str] = []
        self.filtered: dict[str, int] = {}
        self.rejected = 0

    def filter(self, reason: str) -> None:
        self.filtered[reason] = self.filtered.get(reason, 0) + 1

    def as_json(self) -> dict:
        return {"kept": self.kept, "filtered": self.filtered, "rejected": self.rejected,
                "records": len(self.kept) + sum(self.filtered.values()) + self.rejected}


class Ids:
    def __init__(self, seed: int) -> None:
        self.next = 1_790_000_000_000_000_000 + seed * 10_000_000

    def new(self) -> str:
        self.next += 1
        return str(self.next)


def v1_records(rng: random.Random, ids: Ids, count: int, out: Outcomes, extras: bool) -> list:
    """`count` kept tweets, plus (with `extras`) one retweet, delete, duplicate and bad text
    per 100 tweets."""
    records = []
    for _ in range(count):
        tweet_id = ids.new()
        records.append(v1(rng, tweet_id, len(out.kept)))
        out.kept.append(tweet_id)
        if not extras or rng.random() >= 0.04:
            continue
        kind = rng.choice(["retweet", "delete", "duplicate", "rejected"])
        if kind == "retweet":
            original = v1(rng, ids.new(), len(out.kept))
            retweet = v1(rng, ids.new(), len(out.kept))
            retweet["retweeted_status"] = original
            retweet["text"] = "RT @someone: " + original["text"]
            records.append(retweet)
            out.filter("retweet")
        elif kind == "delete":
            records.append({"delete": {"status": {"id_str": ids.new(), "user_id_str": "1"}}})
            out.filter("not_a_tweet")
        elif kind == "duplicate":
            records.append(dict(records[-1]))
            out.filter("duplicate_id")
        else:
            records.append({"id_str": ids.new(), "text": 5})
            out.rejected += 1
    return records


def json_lines(records: list) -> bytes:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode()


def mixed(args: argparse.Namespace, rng: random.Random, out: Outcomes) -> None:
    ids = Ids(args.seed)
    per_file = args.per_file
    index = 0
    while len(out.kept) < args.tweets:
        count = min(per_file, args.tweets - len(out.kept))
        shape = ["jsonl", "jsonl.gz", "search", "v2", "array"][index % 5]
        name = args.out / f"batch-{index:04d}.{'json' if shape in ('search', 'v2', 'array') else shape}"
        if shape == "v2":
            data = []
            for _ in range(count):
                tweet_id = ids.new()
                data.append(v2(rng, tweet_id, len(out.kept)))
                out.kept.append(tweet_id)
            users = sorted({tweet["author_id"] for tweet in data})
            body = json.dumps({"data": data, "includes": {"users": [
                {"id": user, "username": f"user{user}", "name": f"User {user}"}
                for user in users]}}).encode()
        else:
            records = v1_records(rng, ids, count, out, extras=shape != "search")
            if shape == "search":
                body = json.dumps({"statuses": records, "search_metadata": {}}).encode()
            elif shape == "array":
                body = json.dumps(records).encode()
            else:
                body = json_lines(records)
        if shape == "jsonl.gz":
            body = gzip.compress(body, compresslevel=6)
        name.write_bytes(body)
        index += 1


def firehose(args: argparse.Namespace, rng: random.Random, out: Outcomes) -> None:
    ids = Ids(args.seed)
    with open(args.out / "firehose-dump", "wb") as file:
        while len(out.kept) < args.tweets:
            count = min(10_000, args.tweets - len(out.kept))
            file.write(json_lines(v1_records(rng, ids, count, out, extras=True)))


def responses(args: argparse.Namespace, rng: random.Random, out: Outcomes) -> None:
    """One v1.1 search response and one v2 response (its `includes` after its `data`, as the
    API writes them), each with half the tweets, whatever their size."""
    ids = Ids(args.seed)
    half = args.tweets // 2
    statuses = v1_records(rng, ids, half, out, extras=False)
    (args.out / "search-response.json").write_text(
        json.dumps({"search_metadata": {"count": half}, "statuses": statuses}, indent=1))
    data = []
    for _ in range(args.tweets - half):
        tweet_id = ids.new()
        data.append(v2(rng, tweet_id, len(out.kept)))
        out.kept.append(tweet_id)
    users = sorted({tweet["author_id"] for tweet in data})
    includes = {"users": [{"id": user, "username": f"user{user}"} for user in users]}
    (args.out / "v2-response.json").write_text(
        json.dumps({"data": data, "includes": includes, "meta": {"result_count": len(data)}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tweets", type=int, required=True, help="kept tweets to generate")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-file", type=int, default=2_000)
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--firehose", action="store_true", help="one JSON Lines file")
    shape.add_argument("--responses", action="store_true", help="two big API responses")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    out = Outcomes()
    (firehose if args.firehose else responses if args.responses else mixed)(args, rng, out)
    expected = args.out.parent / f"{args.out.name}.expected.json"
    expected.write_text(json.dumps(out.as_json()))
    print(f"{len(out.kept)} kept, {sum(out.filtered.values())} filtered, {out.rejected} rejected "
          f"-> {args.out} (outcomes in {expected})")


if __name__ == "__main__":
    main()
