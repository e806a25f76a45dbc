#!/usr/bin/env bash
# "When does alignment help?" (issue 16): plain against aligned, per benchmark
# and layer, with benchmarks/study.py, one folder per cell (study/<benchmark>/
# <layer>/), then the cell's attention diagnostics (benchmarks/diagnose.py
# --attention-only: plain and the winner, seed/split 0). Every study resumes
# where it stopped, so rerunning this script finishes the table
# (benchmarks/attention_table.py prints it).
#
#     benchmarks/attention_study.sh [CELL ...]   # default: all, in this order
#     ROOT=datasets WORKERS=1 DEVICE=cpu PYTHON=python by default (DEVICE=cuda:
#     a GPU; benchmarks/device_study_cells.sh runs the GPU cells on the device)
#
# The same search everywhere: CT and MMD, 3 settings each (+ the variant,
# alignment across nodes or across heads, where there are several heads), on
# 2 seeds (fixed splits: splits 0-1); the divergence with the better
# validation score against plain on 10 seeds (splits 0-9). Chameleon and
# squirrel: Platonov et al.'s model at width 64 (CPU-sized; plain GT
# reproduces the paper's chameleon score). Minesweeper and tolokers: the
# paper's model and schedule (width 512, 5 layers, 1000 steps, the best
# validation step), GPU-sized: DEVICE=cuda WORKERS=4.
# DictionaryLookup: k = 6 and the GATv2 paper's model (embedding, one
# attention layer with one head, no dropout, lr 1e-3).
set -euo pipefail
shopt -s extglob  # the cell patterns below
cd "$(dirname "$0")/.."
ROOT=${ROOT:-datasets}
WORKERS=${WORKERS:-1}
DEVICE=${DEVICE:-cpu}
PYTHON=${PYTHON:-python}
COMMON=(--root "$ROOT" --methods ct,mmd --search-samples 3 --search-seeds 2
        --final-seeds 10 --peer-seeds 0 --peers '' --workers "$WORKERS"
        --device "$DEVICE")
VARIANT=(--space ct.align_over=nodes,heads --space mmd.align_over=nodes,heads)
PLATONOV=(--set hidden=64)
LOOKUP=(--set k=6 --set model=platonov-gat --set layers=1 --set heads=1
        --set hidden=64 --set dropout=0 --set lr=0.001)

diagnostics() {  # diagnostics FOLDER DATASET OPTION ...
    local folder=$1 dataset=$2
    shift 2
    [[ study/$folder/attention.json -nt study/$folder/chosen.json ]] ||
        "$PYTHON" benchmarks/diagnose.py --attention-only \
            --dataset "$dataset" --root "$ROOT" --folder "study/$folder" \
            --device "$DEVICE" "$@"
}

cell() {  # cell FOLDER DATASET OPTION ...: study, then diagnostics
    local folder=$1 dataset=$2 space=()
    shift 2
    [[ $folder == dictionary-lookup/* ]] || space=("${VARIANT[@]}")  # 1 head
    echo "== $folder ($(date -u +%FT%TZ))"
    "$PYTHON" benchmarks/study.py --dataset "$dataset" \
        --folder "study/$folder" "${COMMON[@]}" "${space[@]}" "$@"
    diagnostics "$folder" "$dataset" "$@"
}

run() {
    case $1 in
    # GAT on Cora and CiteSeer: the 30-seed study of docs/results.md
    cora-gat) diagnostics cora cora ;;
    citeseer-gat) diagnostics citeseer citeseer ;;
    cora-gatv2 | cora-transformer | citeseer-gatv2 | citeseer-transformer)
        cell "${1%%-*}/${1#*-}" "${1%%-*}" --set conv="${1#*-}" ;;
    dictionary-lookup-gat)
        cell dictionary-lookup/gat dictionary-lookup "${LOOKUP[@]}" ;;
    dictionary-lookup-gatv2) cell dictionary-lookup/gatv2 dictionary-lookup \
        "${LOOKUP[@]}" --set conv=gatv2 ;;
    dictionary-lookup-transformer)
        cell dictionary-lookup/transformer dictionary-lookup \
        "${LOOKUP[@]/platonov-gat/platonov-gt}" ;;
    cora-noise-gat | cora-noise-gatv2 | cora-noise-transformer | \
    citeseer-noise-gat | citeseer-noise-gatv2 | citeseer-noise-transformer)
        cell "${1%-*}/${1##*-}" "${1%%-*}" --set edge_noise=0.5 \
            --set conv="${1##*-}" ;;
    @(chameleon|squirrel|minesweeper|tolokers)-@(gat|gatv2|gt))  # Platonov
        local benchmark=${1%%-*} layer=${1#*-} dataset options
        local model=(--set model=platonov-gat)
        [[ $layer == gatv2 ]] && model+=(--set conv=gatv2)
        [[ $layer == gt ]] && model=(--set model=platonov-gt)
        case $benchmark in
        chameleon | squirrel)
            dataset=$benchmark-filtered options=("${PLATONOV[@]}") ;;
        *) dataset=$benchmark options=(--patience 1000) ;;  # paper's width
        esac
        cell "$dataset/$layer" "$dataset" "${options[@]}" "${model[@]}" ;;
    *) echo "unknown cell '$1'" >&2; exit 2 ;;
    esac
}

CELLS=(cora-gat citeseer-gat cora-gatv2 cora-transformer citeseer-gatv2 citeseer-transformer
       dictionary-lookup-gat dictionary-lookup-gatv2
       dictionary-lookup-transformer cora-noise-gat cora-noise-gatv2
       cora-noise-transformer citeseer-noise-gat citeseer-noise-gatv2
       citeseer-noise-transformer chameleon-gat chameleon-gatv2 chameleon-gt
       squirrel-gat squirrel-gatv2 squirrel-gt minesweeper-gat minesweeper-gatv2
       minesweeper-gt tolokers-gat tolokers-gatv2 tolokers-gt)
for name in "${@:-${CELLS[@]}}"; do
    run "$name"
done
