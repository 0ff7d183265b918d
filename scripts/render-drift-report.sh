#!/usr/bin/env bash
# Renders a drift report as a browser shows it: generates training data and drifted data, trains
# a model (which stores the reference profile), writes the self-contained HTML report and takes a
# screenshot with headless Chromium into docs/drift-report.png.
#
# Not part of the default tests (it needs Chromium, which it installs from Debian when missing).
#   ./scripts/render-drift-report.sh [OUT.png]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-docs/drift-report.png}"

browser=""
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then browser="$b"; break; fi
done
if [ -z "$browser" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "render-drift-report: installing Debian's chromium" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null
    browser=chromium
  else
    echo "render-drift-report: needs Chromium (Debian: apt-get install chromium)" >&2
    exit 1
  fi
fi

cargo build --locked --quiet -p streamscore --bin streamscore
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/streamscore"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$bin" generate --rows 20000 --seed 1 --out "$work/train.csv" >/dev/null
"$bin" generate --rows 5000 --seed 2 --drift 0.5 --out "$work/current.csv" >/dev/null
"$bin" train --data "$work/train.csv" --target default --estimator random_forest_classifier \
  --param n_estimators=50 --param max_depth=8 --out "$work/model" >/dev/null
"$bin" drift --reference "$work/model" --current "$work/current.csv" --html "$work/report.html"

# The report must be self-contained: no request may leave the machine while it renders.
mkdir -p "$(dirname "$out")"
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
  --window-size=1280,2400 --screenshot="$work/report.png" "file://$work/report.html" 2>/dev/null
cp "$work/report.png" "$out"
echo "wrote $out"
