#!/usr/bin/env bash
# Re-vendor the UI's third-party libraries from the npm registry into lookout/ui/static/vendor.
# Only needed to upgrade them: the files are committed, so installing or running Lookout never
# needs Node.js. Needs npm (for `npm pack`) and tar. Versions are pinned here.
set -euo pipefail
HTM=3.1.1       # htm + its bundled Preact ("htm/preact/standalone"): components without a build step
PREACT=10.29.8  # only for its LICENSE (the standalone bundle embeds Preact)
UPLOT=1.6.32    # time-series charts
dest="$(cd "$(dirname "$0")/.." && pwd)/lookout/ui/static/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
for pkg in "htm@$HTM" "preact@$PREACT" "uplot@$UPLOT"; do
  name=${pkg%@*}
  npm pack -q "$pkg" >/dev/null
  mkdir "$name" && tar xzf "$name"-*.tgz -C "$name" --strip-components=1
done
mkdir -p "$dest/licenses"
cp htm/preact/standalone.mjs "$dest/htm-preact-standalone.mjs"
cp uplot/dist/uPlot.esm.js "$dest/uPlot.esm.js"
cp uplot/dist/uPlot.min.css "$dest/uPlot.min.css"
cp htm/LICENSE "$dest/licenses/htm-LICENSE"
cp preact/LICENSE "$dest/licenses/preact-LICENSE"
cp uplot/LICENSE "$dest/licenses/uplot-LICENSE"
echo "vendored htm $HTM (with Preact), uPlot $UPLOT into $dest"
