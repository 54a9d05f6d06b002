#!/usr/bin/env bash
# The gateway under locust, one command (from the repository root, after `pnpm build`):
#   bench/gateway-locust/run.sh [--users 50] [--seconds 60] [--replicas 2]
# Creates a virtualenv with locust from PyPI (bench/gateway-locust/.cache/venv, kept between
# runs, ignored by git), then runs run.ts: a LocalCluster serving test/fixtures/vllm-like.mjs as a
# 2-replica group behind `muster gateway`, locust headless against it, and a report against the
# targets (P50 < 100 ms, P99 < 500 ms, >= 100 RPS, < 0.1% errors). See docs/benchmarks.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.cache/venv"
if [ ! -x "$venv/bin/locust" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "locust==2.47.0"
fi
cd "$here/../.."
exec npx tsx bench/gateway-locust/run.ts --locust "$venv/bin/locust" "$@"
