"""How `tweetclf report` scales: peak memory and wall time on synthetic run outputs of
100,000 and 1,000,000 predictions, measured in the same run, so the ratio says whether
memory grows with the number of predictions (it should not: only running totals are kept).

Usage: python3 bench/report_scale.py [--tweetclf target/release/tweetclf] [--rounds 3]
       [--sizes 100000,1000000] [--work /tmp/report-scale]

The outputs are laid out as `tweetclf run` writes them: manifests taken from a real run of
the bundled examples (the script runs it first), then one raw object per 20,000 predictions
(one clean part each) with its ingest manifest, classify manifest and predictions, spread
over 90 days, 10 languages, 50,000 authors and 5,000 hashtags. Prints the medians and the
ratio of the large size to the small one.
"""

import argparse
import datetime
import json
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

PART = 20_000
LABELS = ["negative", "neutral", "positive"]
LANGS = ["en", "es", "fr", "de", "pt", "it", "ja", "ar", "hi", "und"]
START = datetime.date(2024, 1, 1)


def templates(tweetclf: str, work: Path) -> tuple[dict, dict]:
    seed = work / "seed"
    shutil.rmtree(seed, ignore_errors=True)
    subprocess.run([tweetclf, "run", "--out", str(seed)], check=True, capture_output=True)
    ingest = json.loads(next((seed / "manifests/ingest").glob("*.manifest.json")).read_text())
    classify = json.loads(next((seed / "manifests/classify").rglob("*.manifest.json")).read_text())
    return ingest, classify


def lay_out(folder: Path, predictions: int, ingest: dict, classify: dict) -> None:
    rng = random.Random(7)
    shutil.rmtree(folder, ignore_errors=True)
    for part in range(0, predictions, PART):
        name = f"dump-{part // PART:05d}.jsonl"
        clean = f"clean/{name}/part-00000-of-00001.jsonl"
        count = min(PART, predictions - part)
        lines, label_counts = [], {}
        for index in range(count):
            label = rng.choice(LABELS)
            label_counts[label] = label_counts.get(label, 0) + 1
            scores = {other: 0.05 for other in LABELS}
            scores[label] = round(rng.uniform(0.5, 0.99), 4)
            posted = START + datetime.timedelta(days=rng.randrange(90))
            text = (
                f"tweet {part + index} about #topic{rng.randrange(5000)} "
                f"for @brand{rng.randrange(300)} {label}"
            )
            lines.append(json.dumps({
                "id": str(part + index),
                "created_at": f"{posted.isoformat()}T10:00:00Z",
                "author_id": str(rng.randrange(50_000)),
                "author_handle": f"user{rng.randrange(50_000)}",
                "lang": rng.choice(LANGS), "text": text, "label": label,
                "score": scores[label], "labels": [label], "scores": scores,
                "model_name": "sentiment", "model_version": "1.0.0",
                "source_key": f"raw/{name}", "source_index": index,
            }))
        stem = clean.removeprefix("clean/").removesuffix(".jsonl")
        prediction_file = folder / "predictions" / f"{stem}.jsonl"
        prediction_file.parent.mkdir(parents=True, exist_ok=True)
        prediction_file.write_text("\n".join(lines) + "\n")
        ingested = dict(ingest, input=f"raw/{name}", records_in=count, kept=count,
                        kept_by_language={}, filtered={}, rejected=0)
        ingested["outputs"] = dict(ingest["outputs"], clean_parts=[clean], rejected=None,
                                   filtered=None, manifest=f"manifests/ingest/{name}.manifest.json")
        write(folder / ingested["outputs"]["manifest"], ingested)
        classified = dict(classify, input=clean, tweets_in=count, predicted=count, rejected=0,
                          label_counts=label_counts, unlabelled=0)
        classified["outputs"] = dict(classify["outputs"], predictions=f"predictions/{stem}.jsonl",
                                     manifest=f"manifests/classify/{stem}.manifest.json")
        write(folder / classified["outputs"]["manifest"], classified)


def write(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def measure(tweetclf: str, folder: Path, page: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one `tweetclf report`, from GNU time."""
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", tweetclf, "report", str(folder), "--out", str(page)],
        check=True, capture_output=True, text=True,
    )
    seconds = time.perf_counter() - started
    peak_kib = int(done.stderr.strip().splitlines()[-1])
    return seconds, peak_kib / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tweetclf", default="target/release/tweetclf")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--work", type=Path, default=Path("/tmp/report-scale"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    ingest, classify = templates(args.tweetclf, args.work)
    sizes = [int(size) for size in args.sizes.split(",")]
    for size in sizes:
        lay_out(args.work / f"out-{size}", size, ingest, classify)
    results = {size: [] for size in sizes}
    for _ in range(args.rounds):
        for size in sizes:
            results[size].append(
                measure(args.tweetclf, args.work / f"out-{size}", args.work / f"report-{size}.html"))
    medians = {}
    for size in sizes:
        seconds = statistics.median(run[0] for run in results[size])
        rss = statistics.median(run[1] for run in results[size])
        medians[size] = (seconds, rss)
        print(f"{size:>9} predictions: {seconds:6.2f} s, peak RSS {rss:6.1f} MiB "
              f"({size / seconds:,.0f} predictions/s), median of {args.rounds}")
    small, large = sizes[0], sizes[-1]
    print(f"ratio {large} / {small}: time {medians[large][0] / medians[small][0]:.2f}x, "
          f"peak RSS {medians[large][1] / medians[small][1]:.2f}x "
          f"(predictions {large / small:.0f}x)")


if __name__ == "__main__":
    sys.exit(main())
