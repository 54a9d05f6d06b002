#!/usr/bin/env bash
# Installs what Muster needs on a fresh Debian machine with Node 20 + npm:
# etcd, nats-server, curl and chromium (Debian packages, as root), pnpm 10, the workspace's
# dependencies, and a build. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || missing+=(etcd-server)
command -v nats-server >/dev/null 2>&1 || [ -x /usr/bin/nats-server ] || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
command -v curl >/dev/null 2>&1 || missing+=(curl) # the gateway tests call it as a user would
# The dashboard's browser tests drive Debian's chromium with playwright-core (no browser download).
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} (Debian packages)"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root to install ${missing[*]}: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v pnpm >/dev/null 2>&1; then
  echo "setup: installing pnpm 10"
  npm install -g pnpm@10 >/dev/null
fi

echo "setup: installing dependencies"
pnpm install --frozen-lockfile --reporter=silent
echo "setup: building"
pnpm -s build
