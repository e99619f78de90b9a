#!/usr/bin/env bash
# Installs everything the harness needs on a fresh Debian 12 machine, idempotently:
# system packages (as root; a non-root user needs them present already), a Python venv in
# .venv with the harness and its dev tools, and anvil from npm into .tools (linked into
# .venv/bin). Fast when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

ANVIL_VERSION=1.7.1
# Monitoring (issue 16): prometheus gives promtool too; the harness runs these as its own
# processes with its own configs and ports, never the services the packages install.
DEBIAN_PACKAGES=(haproxy nftables stress-ng wrk iproute2 procps psmisc chromium
  prometheus prometheus-alertmanager prometheus-node-exporter prometheus-blackbox-exporter
  prometheus-pushgateway
  # The docker backend (issue 17): the engine, and compose v1 to validate compose.test.yml.
  # The harness starts its own daemon (scripts/dockerd.sh), never the package's service.
  docker.io docker-compose)
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# What a bare debian:12 image lacks, installed only if no such tool is present at all (a
# machine with its own Node.js or Python keeps them).
command -v npm >/dev/null || missing+=(npm)
"${PYTHON:-python3}" -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)
command -v "${PYTHON:-python3}" >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: ask an administrator to run: apt-get install -y ${missing[*]}" >&2
    exit 2
  fi
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.harness-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing the harness and its Python dependencies into .venv"
  .venv/bin/pip install --disable-pip-version-check -e '.[dev]' > .venv/pip.log 2>&1 \
    || { tail -n 20 .venv/pip.log >&2; echo "setup: pip install failed (full log: .venv/pip.log)" >&2; exit 1; }
  echo "$want" > "$stamp"
fi

anvil=.tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
if [ ! -x "$anvil" ] || ! "$anvil" --version 2>/dev/null | grep -q "$ANVIL_VERSION"; then
  command -v npm >/dev/null || { echo "setup: npm is needed to install anvil (apt-get install npm)" >&2; exit 2; }
  echo "setup: installing anvil $ANVIL_VERSION from npm into .tools"
  mkdir -p .tools
  npm install --silent --no-audit --no-fund --prefix .tools "@foundry-rs/anvil-linux-amd64@$ANVIL_VERSION" >/dev/null
fi
ln -sf "$PWD/$anvil" .venv/bin/anvil
echo "setup: ready ($(.venv/bin/anvil --version | head -1), $(haproxy -v | head -1 | cut -d' ' -f1-3))"
