#!/usr/bin/env bash
# Prints the path of a helm binary at the version the deploy tests pin, building
# it once from the Go module proxy (`go install`, about 2 minutes on 2 cores)
# and caching it under $MUSTER_TOOLS_CACHE (default ~/.cache/muster/tools), so
# every later run (another clone, CI on the same machine) is instant.
#
#   bash scripts/helm.sh            build if needed, print the path
#   "$(bash scripts/helm.sh)" lint deploy/helm/muster
#
# Needs Go (helm v3.22.0's go.mod asks for 1.26; a Go >= 1.21 downloads that
# toolchain by itself; /usr/local/go/bin/go is tried when `go` is not on PATH).
# Without Go it exits 1 and says so.
set -euo pipefail

HELM_VERSION=v3.22.0
cache="${MUSTER_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/muster/tools}"
bin="$cache/helm-$HELM_VERSION/helm"

# The directory names the version; a binary there was checked when it was built.
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

# One build at a time (two test files may ask at once): wait for the other, then use its binary.
mkdir -p "$cache"
exec 9>"$cache/helm-$HELM_VERSION.lock"
command -v flock >/dev/null 2>&1 && flock 9
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

go="$(command -v go || true)"
[ -z "$go" ] && [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go
if [ -z "$go" ]; then
  echo "scripts/helm.sh: Go is not installed, and helm $HELM_VERSION is built from the Go module proxy" >&2
  echo "  (the chart tests need the real helm). Install Go >= 1.26 (https://go.dev/dl/; Debian 12's golang-go, 1.19, is too old;" >&2
  echo "  Go >= 1.21 fetches the toolchain helm asks for by itself), or put a helm $HELM_VERSION binary at $bin." >&2
  exit 1
fi

echo "scripts/helm.sh: building helm $HELM_VERSION with $("$go" version) (once; cached in $cache)" >&2
tmp="$(mktemp -d "${TMPDIR:-/tmp}/muster-helm.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
if ! GOBIN="$tmp" GOFLAGS=-mod=mod "$go" install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2; then
  echo "scripts/helm.sh: go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed (see above)" >&2
  exit 1
fi
# helm reports only "v3.22" without release ldflags: check the module version it was built from.
if ! "$go" version -m "$tmp/helm" | grep -q "^[[:space:]]*mod[[:space:]]*helm.sh/helm/v3[[:space:]]*$HELM_VERSION[[:space:]]"; then
  echo "scripts/helm.sh: the binary built is not helm.sh/helm/v3 $HELM_VERSION" >&2
  exit 1
fi
mkdir -p "$(dirname "$bin")"
mv "$tmp/helm" "$bin.$$" && mv -f "$bin.$$" "$bin"
echo "$bin"
