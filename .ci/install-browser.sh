#!/usr/bin/env bash
# Installs what tests/test_e2e_browser.py needs: Debian's chromium (apt) and the Playwright *Python package*.
# Never `playwright install`: it downloads its own browser builds, which fails offline and duplicates apt's.
# Idempotent: each part is skipped when already present, so CI can call it on every run.
# Needs root (or passwordless sudo) for apt-get; without either it says so and the e2e test skips.
set -euo pipefail

missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "chromium: already installed"
else
  SUDO=""
  if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      SUDO="sudo -n"
    else
      echo "apt: ${missing[*]} missing and no root to install them; the e2e browser test will skip" >&2
      exit 0
    fi
  fi
  echo "apt: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python}"
if "$PY" -c "import playwright" 2>/dev/null; then
  echo "playwright: Python package already installed"
else
  echo "playwright: installing the Python package (no browser download)"
  "$PY" -m pip install -q playwright
fi
