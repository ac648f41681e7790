#!/usr/bin/env bash
# Builds the three functions as Lambda zips with cargo-lambda and checks Lambda's package
# limits. classify and predict carry the bundled model directory next to `bootstrap`.
#
#   infra/build.sh            # arm64 (Graviton), the default
#   infra/build.sh x86_64     # x86_64
#
# Needs cargo-lambda (`pip install cargo-lambda`, which ships zig for cross-linking).
# Artifacts: target/lambda/<arch>/<function>/bootstrap.zip, and the set last built staged
# in target/lambda/deploy/ for infra/template.yaml (with its architecture in ARCHITECTURE).
set -euo pipefail
cd "$(dirname "$0")/.."

arch="${1:-arm64}"
case "$arch" in
  arm64) arch_flag=--arm64 ;;
  x86_64) arch_flag=--x86-64 ;;
  *) echo "usage: $0 [arm64|x86_64]" >&2; exit 2 ;;
esac
out="target/lambda/$arch"
command -v cargo-lambda >/dev/null || { echo "cargo-lambda not found: pip install cargo-lambda" >&2; exit 1; }
test -f models/sentiment/model.safetensors || { echo "models/sentiment is missing" >&2; exit 1; }

# Lambda runs the code as a user that owns none of the files: everything packaged must be
# world-readable (a model written through a temporary file can be 0600).
chmod -R a+rX models/sentiment

# Release only: a debug arm64 build of gemm-f16 fails, and classify lives in matmul.
cargo lambda build --release "$arch_flag" --output-format zip --lambda-dir "$out" --bin ingest
cargo lambda build --release "$arch_flag" --output-format zip --lambda-dir "$out" \
  --include models/sentiment --bin classify --bin predict

# Lambda's limits: 250 MB unzipped in all; classify and predict must carry bootstrap and the
# model. A zip over 50 MB cannot be uploaded directly, only through S3 (sam deploy always
# uploads through S3; cargo lambda deploy needs --s3-bucket): said, not a failure.
python3 - "$out" <<'PY'
import os, sys, zipfile
out, status = sys.argv[1], 0
for function in ("ingest", "classify", "predict"):
    path = os.path.join(out, function, "bootstrap.zip")
    archive = zipfile.ZipFile(path)
    zipped = os.path.getsize(path)
    unzipped = sum(info.file_size for info in archive.infolist())
    print(f"{function:<9} {path}  zipped {zipped / 1e6:6.1f} MB  unzipped {unzipped / 1e6:6.1f} MB")
    names = set(archive.namelist())
    if zipped > 50_000_000:
        print("  note: over the 50 MB direct-upload limit: deploy through S3 (sam deploy, or cargo lambda deploy --s3-bucket)")
    if unzipped > 250_000_000:
        print("  FAIL: over the 250 MB unzipped limit", file=sys.stderr); status = 1
    unreadable = [i.filename for i in archive.infolist() if (i.external_attr >> 16) & 0o444 != 0o444]
    if unreadable:
        print(f"  FAIL: not world-readable in the zip: {unreadable}", file=sys.stderr); status = 1
    if "bootstrap" not in names:
        print("  FAIL: no bootstrap in the zip", file=sys.stderr); status = 1
    if function != "ingest" and "models/sentiment/model.safetensors" not in names:
        print("  FAIL: the bundled model is not at models/sentiment/", file=sys.stderr); status = 1
sys.exit(status)
PY

rm -rf target/lambda/deploy
for function in ingest classify predict; do
  mkdir -p "target/lambda/deploy/$function"
  cp "$out/$function/bootstrap.zip" "target/lambda/deploy/$function/bootstrap.zip"
done
echo "$arch" > target/lambda/deploy/ARCHITECTURE
echo "staged for infra/template.yaml: sam deploy --guided --template-file infra/template.yaml --parameter-overrides Architecture=$arch"
