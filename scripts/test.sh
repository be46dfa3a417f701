#!/usr/bin/env bash
# The project's test command: installs what the tests need when it is missing, builds, and runs
# every suite (Rust unit, integration and property tests; redis-py / redis-cli compatibility tests).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# The metrics tests scrape Locus with a real Prometheus and lint it with promtool.
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
# The dashboard's tests drive Debian's Chromium headless through its chromedriver.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "Installing ${need_apt[*]} (Debian packages)"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! $PY - <<'PYCHECK' 2>/dev/null
import importlib.metadata as m, re, sys
from packaging.requirements import Requirement
for line in open("redis-tests/requirements.txt"):
    line = line.split("#")[0].strip()
    if not line:
        continue
    req = Requirement(line)
    if not req.specifier.contains(m.version(req.name), prereleases=True):
        sys.exit(1)
PYCHECK
then
    echo "Installing Python test packages"
    $PY -m pip install -q --disable-pip-version-check -r redis-tests/requirements.txt
fi

python3 scripts/gen_command_reference.py --check
cargo build --release --bins
cargo test --release
LOCUS_SERVER="$PWD/target/release/locus-server" $PY -m pytest -q redis-tests
# A short run of every fuzz target where the nightly toolchain and cargo-fuzz are present
# (skipped, with a line saying so, elsewhere).
scripts/fuzz.sh 10
