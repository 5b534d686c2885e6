#!/usr/bin/env bash
# Render executed notebooks as a reader meets them: HTML (nbconvert), then full-page PNG screenshots (headless
# Chromium), to look at before a change to the notebooks is called done.
#   bash scripts/render_notebooks.sh [RUN]   RUN: a run folder with executed/ (default: runs the suite into runs/render)
# Needs: pip install nbconvert; apt-get install -y chromium. Writes RUN/rendered/{NAME.html,NAME.png}.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="${1:-runs/render}"
if [ ! -d "$RUN/executed" ]; then
    python3 -m qeu_vlm notebooks --run "$RUN"
fi
OUT="$RUN/rendered"
mkdir -p "$OUT"
for nb in "$RUN"/executed/[0-9][0-9]_*.ipynb; do
    name="$(basename "$nb" .ipynb)"
    python3 -m jupyter nbconvert --to html --log-level ERROR --output-dir "$OUT" "$nb"
    # a page as tall as the notebook: the screenshot is cut at the window's height
    height=$(python3 -c "import json,sys; nb=json.load(open(sys.argv[1])); \
print(min(16000, 600 + sum(40 * len(''.join(c['source']).splitlines()) + 420 * sum('image/png' in o.get('data', {}) \
for o in c.get('outputs', [])) + 22 * sum(len(str(o.get('text', '')).splitlines()) for o in c.get('outputs', [])) \
for c in nb['cells'])))" "$nb")
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --screenshot="$OUT/$name.png" \
        --window-size=1280,"$height" "file://$(realpath "$OUT/$name.html")" 2>/dev/null
    echo "$OUT/$name.png ($height px)"
done
