"""Checks a run's outputs against make_load.py's expected outcomes: every kept id predicted
exactly once, the filtered records by reason and the rejected records as expected, and the
ingest manifests adding up to the same totals.

    python3 bench/check_load.py EXPECTED.json OUT_DIR
    python3 bench/check_load.py EXPECTED.json s3://bucket/prefix   # S3_ENDPOINT_URL honoured
    python3 bench/check_load.py EXPECTED.json OUT_DIR --ingest-only  # clean parts, not predictions

Exits non-zero, naming the difference, when anything is lost, duplicated or miscounted.
"""

import json
import os
import sys
from collections import Counter
from pathlib import Path


def local_objects(root: Path, prefix: str):
    for path in sorted((root / prefix).rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            yield path.read_bytes()


def s3_objects(url: str, prefix: str):
    import boto3  # only needed for s3:// outputs

    bucket, _, base = url.removeprefix("s3://").partition("/")
    base = base.rstrip("/") + "/" if base else ""
    client = boto3.client("s3", endpoint_url=os.environ.get("S3_ENDPOINT_URL"))
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                  Prefix=base + prefix):
        for item in page.get("Contents", []):
            yield client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()


def lines(blobs):
    for blob in blobs:
        for line in blob.decode().splitlines():
            if line.strip():
                yield json.loads(line)


def main() -> int:
    expected = json.loads(Path(sys.argv[1]).read_text())
    out = sys.argv[2]
    kept_prefix = "clean/" if "--ingest-only" in sys.argv[3:] else "predictions/"
    objects = ((lambda prefix: s3_objects(out, prefix)) if out.startswith("s3://")
               else (lambda prefix: local_objects(Path(out), prefix)))
    problems = []
    predicted = Counter(record["id"] for record in lines(objects(kept_prefix)))
    kept = Counter(expected["kept"])
    duplicated = [tweet_id for tweet_id, count in predicted.items() if count > 1]
    missing = [tweet_id for tweet_id in kept if tweet_id not in predicted]
    unexpected = [tweet_id for tweet_id in predicted if tweet_id not in kept]
    for name, ids in [("predicted twice", duplicated), ("never predicted", missing),
                      ("predicted but not expected", unexpected)]:
        if ids:
            problems.append(f"{len(ids)} {name}, e.g. {ids[:3]}")
    filtered = Counter(record["reason"] for record in lines(objects("filtered/")))
    if filtered != Counter(expected["filtered"]):
        problems.append(f"filtered {dict(filtered)} != expected {expected['filtered']}")
    rejected = sum(1 for _ in lines(objects("rejected/")))
    if rejected != expected["rejected"]:
        problems.append(f"rejected {rejected} != expected {expected['rejected']}")
    totals = Counter()
    for blob in objects("manifests/ingest/"):
        manifest = json.loads(blob)
        totals.update(records_in=manifest["records_in"], kept=manifest["kept"],
                      rejected=manifest["rejected"], parts=len(manifest["outputs"]["clean_parts"]))
    if (totals["records_in"], totals["kept"], totals["rejected"]) != (
            expected["records"], len(kept), expected["rejected"]):
        problems.append(f"manifests say {dict(totals)}, expected {expected['records']} in")
    print(json.dumps({"predicted": sum(predicted.values()), "filtered": dict(filtered),
                      "rejected": rejected, "manifests": dict(totals), "problems": problems}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
