#!/usr/bin/env bash
# The one prepared GPU check of issue 27, for a CUDA machine that has PyTorch
# and PyG but not this package's other needs (the device tool's H200): installs
# the wheels carried in .whl/ (POT, ogb, outdated, littleutils; see
# benchmarks/README.md, "GPU speed on the device"), then writes into $OUT:
#   nvidia-smi.txt   the GPU, its driver and CUDA version, before the run
#   test_cuda.log    python -m pytest -q tests/test_cuda.py, if that file exists
#   gpu_speed.json   benchmarks/gpu_speed.py --device cuda (the figures)
#   gpu_speed.log    its table and last line
# Each step has its own time limit, so that the whole ends within 8 minutes
# and what finished comes back. Exits non-zero if a step failed.
#
#   bash benchmarks/device_gpu_speed.sh        # from the repository root
set -uo pipefail
cd "$(dirname "$0")/.."
source benchmarks/device_setup.sh Cora CiteSeer minesweeper
failed=0

nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || failed=1

# The GPU path's tests first: whether the captured epoch is the eager one
# decides what the timings below mean.
if [ -f tests/test_cuda.py ]; then
    timeout 200 "$PYTHON" -m pytest -q -n 0 -p no:cacheprovider -rfE \
        tests/test_cuda.py 2>&1 | tee "$OUT/test_cuda.log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || failed=1
else
    echo 'note: tests/test_cuda.py does not exist yet: no CUDA tests run'
fi

timeout 290 "$PYTHON" benchmarks/gpu_speed.py --device cuda \
    --json "$OUT/gpu_speed.json" 2>&1 | tee "$OUT/gpu_speed.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed=1
exit $failed
