#!/bin/sh
# The platform at fleet scale, one command: builds dma-platform and
# fleet-bench (release) and runs the benchmark (its own mosquitto and
# platform on 127.0.0.1). Figures printed and kept in bench/results/.
#   bench/fleet.sh                 10,000 devices, SQLite
#   bench/fleet.sh 100000          100,000 devices
#   bench/fleet.sh 30000 --db postgres://user:pw@127.0.0.1/db --steady 600
# Other options: --conns C (MQTT connections, 4), --period S (60),
# --steady S (120: seconds of sys+procs load before the marker burst),
# --targets N (the bulk command's targets, min(N, 10000)),
# --ingest JSON (the platform's "ingest" settings, e.g. '{"batch_max":2000}').
# The release build keeps its symbols (same code, not stripped) so that
# `perf record -p <platform pid>` names the functions.
set -eu
cd "$(dirname "$0")/.."
n="${1:-10000}"
[ $# -gt 0 ] && shift
CARGO_PROFILE_RELEASE_STRIP=false cargo build --release -q -p dma-platform --bins
exec target/release/fleet-bench --devices "$n" --out bench/results "$@"
