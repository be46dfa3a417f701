#!/usr/bin/env bash
# Puts NVIDIA's perf_analyzer, Triton's load generator, at target/tools/perf_analyzer for
# redis-tests/test_perf_analyzer.py. PyPI has it as a binary inside tritonclient's Linux x86-64
# wheels up to 2.40 (later releases moved it out of PyPI). It links libb64 (Debian's libb64-0d,
# which the test command installs) and CUDA's runtime library (PyPI's
# nvidia-cuda-runtime-cu12, in redis-tests/requirements.txt), loaded but unused on a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=target/tools/perf_analyzer
[ -x "$dest" ] && exit 0
if [ "$(uname -sm)" != "Linux x86_64" ]; then
    echo "perf_analyzer: PyPI has it for Linux x86-64 only; its test will be skipped"
    exit 0
fi
PY=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$PY -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    "tritonclient==2.40.0" -d "$tmp"
$PY - "$tmp" "$dest" <<'PYEXTRACT'
import glob, os, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "tritonclient-2.40.0-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    data = z.read("tritonclient-2.40.0.data/data/bin/perf_analyzer")
dest = sys.argv[2]
os.makedirs(os.path.dirname(dest), exist_ok=True)
with open(dest + ".part", "wb") as f:
    f.write(data)
os.chmod(dest + ".part", 0o755)
os.replace(dest + ".part", dest)
PYEXTRACT
echo "perf_analyzer: $dest"
