"""The reference for ingest's throughput: the few lines of Python a team would write first —
read JSON Lines, parse each line, keep what looks like a tweet, write id, date, author and text
as JSON Lines. No cleaning, no filters, no rejection records, no parts: a lower bound on the
work ingest does.

    python3 bench/reference_ingest.py RAW.jsonl OUT.jsonl
"""

import json
import sys


def main() -> None:
    kept = 0
    with open(sys.argv[1], encoding="utf-8") as raw, open(sys.argv[2], "w", encoding="utf-8") as out:
        for line in raw:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            text = record.get("text")
            if not isinstance(text, str) or "retweeted_status" in record:
                continue
            user = record.get("user") or {}
            out.write(json.dumps({"id": record.get("id_str"), "created_at": record.get("created_at"),
                                  "author_handle": user.get("screen_name"), "text": text},
                                 ensure_ascii=False) + "\n")
            kept += 1
    print(kept)


if __name__ == "__main__":
    main()
