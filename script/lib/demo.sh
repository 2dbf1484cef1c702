#!/usr/bin/env bash
# Demo body; grows as the twin and host tool land.
set -euo pipefail
echo "rtcanboot demo: the twin and host tool are not built yet; the core builds and its tests run with script/test."
