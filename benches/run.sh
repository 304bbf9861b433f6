#!/usr/bin/env bash
# The benchmark in one command: installs what it drives (nginx, HAProxy, wrk, and openssl and ss
# for the TLS upstream's phase, from Debian's packages), builds the release binaries, runs
# benches/run.py, which leaves the figures in benches/results/latest.{json,md}, then the hot
# path's micro-benchmarks (benches/hot_path.rs), whose table goes to
# benches/results/hot_path.txt. Everything stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
# command:package (ss counts the facade's connections to a TLS upstream).
for pair in nginx:nginx haproxy:haproxy wrk:wrk openssl:openssl ss:iproute2; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
ulimit -n 20000 2>/dev/null || true
cargo build --release --locked -p syncjob-facade -p syncjob-emulator --bins
cargo build --release --locked -p syncjob-facade --example scenarios
python3 benches/run.py "$@"
cargo bench --locked -p syncjob-facade --bench hot_path | tee benches/results/hot_path.txt
