#!/usr/bin/env bash
# Debian's headless Chromium for the web page's browser test (tests/integration/test_web_page.py).
# Idempotent and instant once installed; prints the browser's path. Playwright's own browser
# download cannot work without the internet, so the test drives this one instead.
set -euo pipefail
if [[ ! -x /usr/bin/chromium ]]; then
  echo "chromium: installing Debian's chromium package" >&2
  sudo_=""
  [[ $(id -u) -eq 0 ]] || sudo_="sudo"
  $sudo_ apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq chromium >/dev/null
fi
echo /usr/bin/chromium
