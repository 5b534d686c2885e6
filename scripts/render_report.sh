#!/usr/bin/env bash
# Screenshot the main job's report page as a browser shows it (headless Chromium, Debian's package), to look at
# before a change to the report is called done.
#   bash scripts/render_report.sh [RUN]   RUN: the main job's run folder (default runs/main_job)
# Needs: apt-get install -y chromium. Writes RUN/report.png.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="${1:-runs/main_job}"
HEIGHT="${HEIGHT:-6000}"   # the screenshot is cut at the window's height
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --screenshot="$RUN/report.png" \
    --window-size=1280,"$HEIGHT" "file://$(realpath "$RUN/report.html")" 2>/dev/null
echo "$RUN/report.png (1280 x $HEIGHT px)"
