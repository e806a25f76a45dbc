# Sourced by the device scripts (device_gpu_speed.sh, device_study_cells.sh)
# from the repository root, with the data sets they read as arguments: sets
# OUT (the device tool's; default results/device/) and PYTHON (python3),
# installs the wheels carried in .whl/ (POT, ogb and its needs; see
# benchmarks/README.md, "GPU speed on the device") and checks that each
# data set's raw files were carried; exits on a failure.
OUT=${OUT:-results/device}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
if [ -n "$(ls -A "$OUT")" ]; then  # never replace files of another run
    echo "error: '$OUT' is not empty: give an empty folder as OUT" >&2
    exit 2
fi
export PYTHONUNBUFFERED=1
if compgen -G '.whl/*.whl' >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="$PWD:/tmp/site"
else
    echo 'note: no wheels in .whl/: using the installed packages'
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
for name in "$@"; do
    if [ ! -d "datasets/$name/raw" ]; then
        echo "error: datasets/$name/raw is missing: carry it (see" \
             "benchmarks/README.md)" >&2
        exit 1
    fi
done
