#!/usr/bin/env bash
# Issue 28's cells on the device tool's GPU, one stretch at a time: runs
# benchmarks/attention_study.sh CELL ... (DEVICE=cuda, WORKERS=4) for at most
# MINUTES (default 8), then packs the cells' study folders into
# $OUT/study.tar.gz. Every study resumes from the runs committed in study/
# (they travel with the working tree), so each call adds the runs it
# finished; unpack it over the checkout and commit:
#   tar -xzf <files_at>/study.tar.gz && git add study && git commit
#
#   bash benchmarks/device_study_cells.sh minesweeper-gt tolokers-gt
#
# WORKERS=1 runs a cell's runs several at once in one process instead
# (study.py's run_together; not yet timed against four processes on a GPU).
set -uo pipefail
shopt -s extglob
cd "$(dirname "$0")/.."
for cell in "$@"; do
    [[ $cell == @(minesweeper|tolokers)-@(gat|gatv2|gt) ]] || {
        echo "error: '$cell' is not a cell of issue 28 (minesweeper or" \
             "tolokers, -gat, -gatv2 or -gt)" >&2
        exit 2
    }
done
source benchmarks/device_setup.sh minesweeper tolokers
MINUTES=${MINUTES:-8}
# timeout signals the whole process group: the study's workers stop too,
# each finished run already appended to its runs.jsonl.
DEVICE=cuda WORKERS=${WORKERS:-4} PYTHON=$PYTHON \
    timeout $((MINUTES * 60)) bash benchmarks/attention_study.sh "$@"
echo "attention_study.sh ended with code $? (124: the $MINUTES minutes ran out)"
folders=()
for cell in "$@"; do
    folders+=("study/${cell%%-*}/${cell#*-}")
done
tar -czf "$OUT/.study.tar.gz" "${folders[@]}" &&
    mv "$OUT/.study.tar.gz" "$OUT/study.tar.gz"
for folder in "${folders[@]}"; do
    echo "$folder: $(cat "$folder/runs.jsonl" 2>/dev/null | wc -l) run(s)"
done
