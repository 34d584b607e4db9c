#!/usr/bin/env bash
# Install the system packages Inferwatch needs (a JDK for the native Kafka broker, Maven to resolve
# its jars, headless Chromium for the console's browser test) when they are missing. Quiet when
# everything is there.
set -euo pipefail
missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
# The browser of tests/e2e/test_console_browser.py: Debian's own build, driven by Playwright through
# its executable path (Playwright's own browser download reaches outside the package registries).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing: ${missing[*]} — install a JDK 17+, Maven and Chromium with your package manager" >&2; exit 1
fi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "==> installing ${missing[*]} with apt-get"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
