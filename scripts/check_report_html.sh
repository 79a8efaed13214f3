#!/usr/bin/env bash
# Checks that a sweep report (`cargo xtask sweep ...` → <out>/report/index.html) renders in
# headless Chromium (Debian: `apt-get install -y chromium`):
#   1. the page loads and every <img> (SVG plots, sample PNGs) has loaded with a non-zero
#      natural size, checked in the rendered DOM (--dump-dom after a script marks each image);
#   2. a full-page screenshot is not blank (many distinct pixel values).
# Usage: scripts/check_report_html.sh experiments/sweeps/compose2d/report/index.html [screenshot.png]
set -euo pipefail

page=${1:?usage: $0 path/to/report/index.html [screenshot.png]}
shot=${2:-$(mktemp --suffix=.png)}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "no chromium on PATH (apt-get install -y chromium)" >&2; exit 2; }
[ -f "$page" ] || { echo "$page does not exist" >&2; exit 2; }

dir=$(cd "$(dirname "$page")" && pwd)
probe="$dir/.render-check.html"
trap 'rm -f "$probe"' EXIT
# The page plus a script that marks every image once the window has loaded.
sed 's#</body>#<script>window.addEventListener("load", () => { for (const i of document.images) { i.setAttribute("data-loaded", (i.complete \&\& i.naturalWidth > 0) ? "yes" : "no"); } document.body.setAttribute("data-checked", "yes"); });</script></body>#' \
  "$page" > "$probe"
flags=(--headless --no-sandbox --disable-gpu --allow-file-access-from-files --virtual-time-budget=10000)
dom=$("$browser" "${flags[@]}" --dump-dom "file://$probe" 2>/dev/null)

count() { { grep -o "$1" <<<"$dom" || true; } | wc -l; }
total=$(count '<img ')
loaded=$(count 'data-loaded="yes"')
broken=$(count 'data-loaded="no"')
grep -q 'data-checked="yes"' <<<"$dom" || { echo "FAIL: the page's load event never ran" >&2; exit 1; }
echo "images in the DOM: $total, loaded: $loaded, broken: $broken"
if [ "$total" -eq 0 ] || [ "$broken" -ne 0 ] || [ "$loaded" -ne "$total" ]; then
  grep -o '<img [^>]*data-loaded="no"[^>]*>' <<<"$dom" | sed 's/^/  broken: /' >&2 || true
  echo "FAIL: missing or broken images" >&2
  exit 1
fi

"$browser" "${flags[@]}" --hide-scrollbars --window-size=1400,4000 --screenshot="$shot" "file://$dir/$(basename "$page")" >/dev/null 2>&1
python3 - "$shot" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "screenshot is not a PNG"
pos, idat, width, height = 8, b"", 0, 0
while pos < len(data):
    (n,) = struct.unpack(">I", data[pos:pos + 4]); kind = data[pos + 4:pos + 8]
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        width, height = struct.unpack(">II", body[:8])
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
raw = zlib.decompress(idat)
# Filtered scanlines: a blank (uniform) page compresses to a handful of distinct byte values.
distinct = len(set(raw[::7]))
print(f"screenshot {width}x{height}: {distinct} distinct byte values")
if distinct < 32:
    sys.exit("FAIL: the screenshot looks blank")
PY
echo "OK: $page renders with all $total images ($shot)"
