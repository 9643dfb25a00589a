#!/usr/bin/env bash
# Installs the browser that tests/test_browser.py drives: Debian's Chromium at /usr/bin/chromium,
# plus fonts. (The Python side, playwright, comes with the dev extras: pip install -e ".[dev]";
# the test never downloads a browser.)
#
#   bash tests/setup_browser.sh
#
# Without root or apt-get it only prints a note and exits 0: the browser test then skips, except
# under CI=true, where the test itself fails. If apt-get runs and fails, this exits 1 under CI=true
# (so CI stops here with the apt error) and 0 otherwise.
set -u

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "setup_browser: $CHROMIUM is present"
    exit 0
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup_browser: installing chromium and fonts-liberation with apt-get (about a minute)"
    if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-liberation; then
        if [ -x "$CHROMIUM" ]; then
            echo "setup_browser: $CHROMIUM installed"
            exit 0
        fi
        echo "setup_browser: apt-get succeeded but $CHROMIUM is missing (not a Debian chromium package?)" >&2
    else
        echo "setup_browser: apt-get failed to install chromium" >&2
    fi
    if [ "${CI:-}" = "true" ]; then
        exit 1
    fi
    exit 0
fi

echo "setup_browser: no $CHROMIUM and no root apt-get here; tests/test_browser.py will be skipped (install Chromium at $CHROMIUM to run it)"
exit 0
