#!/usr/bin/env bash
# The whole test suite, from a fresh clone: setup, generated-code check,
# helm for the chart tests (scripts/helm.sh), lint, typecheck (the build for the packages; tsconfig.tests.json
# for tests, bench/ and examples/ that the build does not compile), unit, integration and chaos tests (the vitest
# projects of vitest.config.ts, run in that order by their groupOrder).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== helm (the chart tests render with it; built once from the Go module proxy, then cached)"
bash scripts/helm.sh >/dev/null || echo "== no helm: test/unit/chart.test.ts will fail (the reason is above)"
echo "== generated code"
pnpm -s gen:check
echo "== lint"
pnpm -s lint
echo "== typecheck: tests, bench/ and examples/ (the build type-checked the packages)"
pnpm -s typecheck:tests
echo "== tests"
report="$(mktemp)"
set +e
pnpm -s exec vitest run --project unit --project integration --project chaos \
  --reporter=default --reporter=json --outputFile.json="$report"
status=$?
set -e
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const skipped = r.numPendingTests + r.numTodoTests;
console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$report" || true
rm -f "$report"
exit $status
