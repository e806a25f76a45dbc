r"""The evidence table of "When does alignment help?": one row per study
folder under --folder (benchmark and layer, written by
benchmarks/attention_study.sh), from the folder's chosen.json (the final
stage: plain against the divergence chosen on validation, paired seeds or
splits) and attention.json (attention entropy relative to uniform and the
score with uniform attention, plain model, seed/split 0).

    python benchmarks/attention_table.py --folder study

A study still running shows how many of its runs are done; a folder with
diagnostics only says that its study has not run."""
import argparse
import os
import os.path as osp
import sys
from typing import Dict, List, Optional

from study import load_json  # benchmarks/study.py

LAYERS = {'gat': 'GAT', 'gatv2': 'GATv2', 'transformer': 'Transformer',
          'gt': 'Transformer'}
SHORT = {'align_weight': 'λ', 'align_samples': 'm', 'align_over': 'over'}


def layer_name(folder: str, manifest: Optional[Dict]) -> str:
    fields = (manifest or {}).get('set', {})
    if fields.get('model', '').startswith('platonov-gt'):
        return 'Transformer'
    if 'conv' in fields:
        return LAYERS[fields['conv']]
    return LAYERS.get(osp.basename(folder), 'GAT')


def setting_text(setting: Dict) -> str:
    return ', '.join(f'{SHORT[k]} {v}' for k, v in setting.items()
                     if k in SHORT)


def p_text(p: Optional[float]) -> str:
    return 'n/a' if p is None else f'{p:.2g}'


def row(folder: str, root: str) -> Optional[List[str]]:
    manifest = load_json(osp.join(folder, 'study.json'))
    chosen = load_json(osp.join(folder, 'chosen.json'))
    attention = load_json(osp.join(folder, 'attention.json'))
    runs = osp.join(folder, 'runs.jsonl')
    if chosen is None and manifest is None and attention is None:
        return None  # not a study folder
    name = osp.relpath(folder, root)
    manifest = manifest or attention  # both say the data set and --set
    benchmark = (manifest or {}).get('dataset') or name.split(os.sep)[0]
    extra = {k: v for k, v in (manifest or {}).get('set', {}).items()
             if k in ('edge_noise', 'k')}
    if extra:
        benchmark += ' (' + ', '.join(f'{k} {v}' for k, v in
                                      extra.items()) + ')'
    if osp.basename(folder) not in LAYERS and osp.dirname(name):
        benchmark += f' [{osp.basename(folder)}]'  # a variant of the study
    cells = [benchmark, layer_name(folder, manifest)]
    if chosen is None and not osp.isfile(runs):
        cells += ['study not run'] + [''] * 5
    elif chosen is None:
        with open(runs) as f:
            done = sum(1 for _ in f)
        runs_done = f'{done} run' + 's' * (done != 1)
        cells += [f'running: {runs_done} done'] + [''] * 5
    else:
        rows = chosen['rows']
        plain = next(r for r in rows if r['method'] == 'none')
        best = next(r for r in rows if r['method'] != 'none' and
                    r['seeds'] == plain['seeds'])
        cells += [
            f'{100 * plain["test_mean"]:.2f} ± {100 * plain["test_std"]:.2f}',
            f'{100 * best["test_mean"]:.2f} ± {100 * best["test_std"]:.2f}',
            f'{best["method"]}: {setting_text(best["setting"])}',
            f'{100 * best["diff"]:+.2f}',
            f'{p_text(best["ttest_p"])} / {p_text(best["wilcoxon_p"])}',
            str(plain['seeds'])]
    if attention is None:
        cells.append('')
    else:
        plain = attention['models']['plain']
        cells.append(
            f'{min(plain["uniformity"]):.2f}–{max(plain["uniformity"]):.2f}'
            f'; {100 * plain["score"]["trained"]:.2f} → '
            f'{100 * plain["score"]["uniform"]:.2f}')
    return cells


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--folder', default='study',
                        help='the folder holding the study folders')
    args = parser.parse_args(argv)
    if not osp.isdir(args.folder):
        sys.exit(f"error: '{args.folder}' is not a folder: run "
                 f"benchmarks/attention_study.sh first")
    rows = [r for path, _, _ in sorted(os.walk(args.folder))
            if (r := row(path, args.folder)) is not None]
    rows.sort(key=lambda r: (r[0], list(LAYERS.values()).index(r[1])))
    print('| benchmark | layer | plain | aligned | chosen on validation | '
          'Δ test | p (t-test / Wilcoxon) | seeds or splits | plain '
          'attention: entropy / uniform; test score → with uniform '
          'attention |')
    print('| --- ' * 9 + '|')
    for r in rows:
        print('| ' + ' | '.join(r) + ' |')


if __name__ == '__main__':
    main()
