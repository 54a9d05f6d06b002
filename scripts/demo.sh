#!/usr/bin/env bash
# Quick start: install what is needed, bring up a local cluster (nats-server,
# head on the embedded store, 3 simulated 8×H100 workers) and run the tour
# (examples/quickstart) against it end to end; the cluster stops when it ends,
# and the exit status is the tour's.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node packages/cli/dist/main.js up --workers 3 --run "node examples/quickstart/dist/main.js"
