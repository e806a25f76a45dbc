r"""Command lines (issue 30, "every input acts or is refused"), shared by
train_gat.py and the benchmark scripts (study.py, diagnose.py,
selection.py): which options a command line gave, the refusal of one given
where it acts on nothing, and the data set option (named sets in lower
case, so that ``Cora`` and ``cora`` are one value)."""
import argparse
import os
from typing import Callable, Dict, List, Optional, Tuple

from align_gnn.data import DATASETS, is_graph_file

#: Where a flag acts: dest -> (acts(args), where), ``where`` the words of the
#: refusal (e.g. ``'only with --checkpoint DIR'``).
Modes = Dict[str, Tuple[Callable[[argparse.Namespace], bool], str]]


def given_options(parser: argparse.ArgumentParser,
                  argv: Optional[List[str]] = None) -> List[str]:
    r"""The destinations of the options given in :obj:`argv` (default:
    :obj:`sys.argv`), at their default value or not, in :obj:`parser`'s
    order (:obj:`argv` is parsed once more without defaults; the parser is
    left as it was)."""
    defaults = [(action, action.default) for action in parser._actions]
    try:
        for action, _ in defaults:
            action.default = argparse.SUPPRESS
        given = vars(parser.parse_args(argv))
    finally:
        for action, default in defaults:
            action.default = default
    return [action.dest for action in parser._actions
            if action.dest in given]


def check_modes(parser: argparse.ArgumentParser, args: argparse.Namespace,
                modes: Modes, given: List[str]):
    r"""Refuses (:obj:`parser.error`: one line) the first option of
    :obj:`given` that acts on nothing with :obj:`args`, per :obj:`modes`:
    ``argument --flag: <where>; leave it out``."""
    flags = {action.dest: action.option_strings[0]
             for action in parser._actions if action.option_strings}
    for dest in given:
        acts, where = modes.get(dest, (None, None))
        if acts is not None and not acts(args):
            parser.error(f'argument {flags[dest]}: {where}; leave it out')


def dataset_option(text: str) -> str:
    r"""Parses a :obj:`--dataset`: a data set of :data:`DATASETS` (in lower
    case, as :class:`~align_gnn.config.Config` holds it) or the path of a
    graph file that exists (kept as given)."""
    if text.lower() in DATASETS:
        return text.lower()
    if is_graph_file(text):
        if os.path.isdir(text):
            raise argparse.ArgumentTypeError(
                f'{text!r} is a directory, not a graph file')
        if not os.path.isfile(text):
            raise argparse.ArgumentTypeError(f'no such graph file {text!r}')
        return text
    choices = ', '.join(map(repr, DATASETS))
    raise argparse.ArgumentTypeError(
        f'invalid choice: {text!r} (choose from {choices}, or give the path '
        f'of a GraphML (.graphml), GML (.gml) or edge list (.edgelist, '
        f'.txt, .csv) file)')
