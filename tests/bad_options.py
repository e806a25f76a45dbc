r"""The table of bad values of the benchmark scripts' options (study.py,
diagnose.py, selection.py), walked by `tests/test_inputs.py` and
`tests/test_study_inputs.py`: every option of a script's parser has bad
values here, or is named in :data:`UNCHECKED`, so that a new option is
walked the day it is added (the companion tests fail until it is)."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'benchmarks'))

import study  # noqa: E402

#: Options whose every value is valid where the data allow it: a data root
#: (the data set's loading checks what it holds; a root without the data
#: would try a download).
UNCHECKED = {'--root'}


def bad_values(action) -> list:
    r"""Values that :obj:`action` (an option of a benchmark script's
    parser) must refuse."""
    if action.type is study.positive_int:
        return ['0', '-1', 'x']
    if action.type is study.non_negative_int:
        return ['-1', 'x']
    if action.choices:
        return ['nope']
    if action.dest == 'methods':
        return ['gcn', 'ct,ct', '']
    if action.dest == 'peers':
        return ['gcn']
    if action.dest == 'space':
        return [f'{method}.{name}=-1' for method, names in study.USES.items()
                for name in names if name != 'align_samples'] + [
                    f'{method}.align_samples=1' for method in study.USES]
    if action.dest == 'set':
        return ['hidden=0', 'lr=-1', 'model="nope"', 'conv="gcn"',
                'dropout=2', 'layers=0', 'heads=0']
    if action.dest == 'dataset':
        return ['reddit']
    if action.dest == 'folder':  # a device where a folder belongs
        return ['/dev/null/study']
    if action.dest == 'setting':  # diagnose.py (with --method mmd)
        return ['x', '[1]', '{"rho": 0.5}', '{"nope": 1}',
                '{"align_weight": -1}', '{"align_samples": 1}']
    if action.dest == 'trace_epochs':  # diagnose.py
        return ['0', '1,-2', 'x', '1,,2', '']
    return []


def options(parser) -> list:
    r"""The options of :obj:`parser` that take a value."""
    return [action for action in parser._actions
            if action.option_strings and action.nargs != 0]


def cases(parser) -> list:
    r"""(option, bad value) for every option of :obj:`parser`."""
    return [(action.option_strings[0], value) for action in options(parser)
            for value in bad_values(action)]


def unwalked(parser) -> set:
    r"""The options of :obj:`parser` without a bad value here (besides
    :data:`UNCHECKED`): to be added to :func:`bad_values`."""
    walked = {option for option, _ in cases(parser)}
    return {action.option_strings[0] for action in options(parser)} \
        - walked - UNCHECKED


def tree(folder: Path) -> dict:
    r"""Every file under :obj:`folder` with its bytes and modification
    time: equal before and after means nothing was written."""
    return {path: (path.read_bytes(), path.stat().st_mtime_ns)
            for path in sorted(folder.rglob('*')) if path.is_file()}
