r"""Train graph attention networks with and without alignment attention on
Cora, CiteSeer, PubMed (public split) or ogbn-arxiv (OGB's time split), over
several seeds.

Examples:
    python train_gat.py --dataset cora --align ct --runs 10
    python train_gat.py --dataset citeseer --compare none,ct,mmd --out cs.json
    python train_gat.py --dataset ogbn-arxiv --align none --labels reuse
    python train_gat.py --dataset ogbn-arxiv --compare none,ct
    torchrun --nproc-per-node 2 train_gat.py --dataset ogbn-arxiv \
        --batch-size 1024 --fanout 15,10,5
"""
import argparse
import copy
import logging
import math
import os
import os.path as osp
import shlex
import signal
import sys
from typing import Callable, Dict, List, Optional

import torch

from align_gnn import distributed, interrupts, plots
from align_gnn.checkpoint import Checkpoint
from align_gnn.cli import (
    Modes,
    check_modes,
    dataset_option,
    given_options,
)
from align_gnn.config import DEFAULT_ALIGNMENT, Config, resolve_device
from align_gnn.data import FEATURES, dataset_name, is_graph_file
from align_gnn.failures import CaptureFailed
from align_gnn.options import (
    DEVICES,
    MAX_K,
    MODELS,
    OPTIMIZERS,
    check_scopes,
)
from align_gnn.conv import ALIGN_OVER
from align_gnn.models import CONVS, METHODS
from align_gnn.outputs import (
    FileLock,
    WriteError,
    check_output,
    is_figure_file,
    lock_path,
)
from align_gnn.precision import PRECISIONS
from align_gnn.selection import SELECTIONS
from align_gnn.results import (
    check_writable,
    default_output_path,
    format_attack_table,
    format_leaderboard,
    format_table,
    leaderboard,
    save_results,
)
from align_gnn.recipe import LABELS, LOSSES
from align_gnn.robustness import ATTACKS
from align_gnn.experiment import check_attention, experiment
from align_gnn.threads import set_threads

MAX_SEED = 2**32 - 1  # NumPy's seeds


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):
        # One line naming the flag, no usage block:
        self.exit(2, f'error: {message} (see --help)\n')


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    r"""Shows a default in the form the flag takes (lists comma-separated)
    and none for flags whose default is unset (their help says what unset
    means)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)

    def _expand_help(self, action: argparse.Action) -> str:
        if isinstance(action.default, (list, tuple)):
            action = copy.copy(action)
            action.default = ','.join(map(str, action.default))
        return super()._expand_help(action)


def _number(cast: Callable, requirement: str,
            check: Callable[[float], bool]) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or not check(value):
            raise argparse.ArgumentTypeError(
                f'must be {requirement} (got {text!r})')
        return value

    return parse


def _methods(text: str) -> List[str]:
    methods = [method.strip().lower() for method in text.split(',')]
    unknown = [method for method in methods if method not in METHODS]
    if unknown or len(set(methods)) != len(methods):
        raise argparse.ArgumentTypeError(
            f'must be distinct names from {",".join(METHODS)}, '
            f'separated by commas (got {text!r})')
    return methods


def _numbers(cast: Callable, requirement: str,
             check: Callable[[List], bool]) -> Callable[[str], List]:
    def parse(text: str) -> List:
        try:
            values = [cast(value) for value in text.split(',')]
        except ValueError:
            values = []
        if not values or not check(values):
            raise argparse.ArgumentTypeError(
                f'must be {requirement} (got {text!r})')
        return values

    return parse


positive_int = _number(int, 'a positive integer', lambda v: v >= 1)
fanout = _numbers(
    int, 'integers >= 1 (or -1: all neighbours) separated by commas, one '
    'per layer', lambda values: all(v >= 1 or v == -1 for v in values))
fractions = _numbers(
    float, 'three fractions (train,val,test) >= 0 with a sum in (0, 1]',
    lambda values: len(values) == 3 and min(values) >= 0
    and 0 < sum(values) <= 1)
budgets = _numbers(
    float, 'fractions of the edges in [0, 1] separated by commas',
    lambda values: all(0 <= v <= 1 for v in values))


def _text(what: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(
                f'must not be empty: give {what} (got {text!r})')
        return text

    return parse


def _names(text: str) -> List[str]:
    names = text.split(',')
    if not all(name.strip() for name in names):
        raise argparse.ArgumentTypeError(
            f'must be attribute names separated by commas, none empty (got '
            f'{text!r})')
    return names


def recommended(name: str) -> str:
    r"""The help text's end for the alignment setting :obj:`name`."""
    return (f'; unset: the divergence\'s own, chosen on validation for the '
            f'data set (README "Results"), else '
            f'{DEFAULT_ALIGNMENT[name]}')


def _data_arguments(group: argparse._ArgumentGroup):
    group.add_argument(
        '--dataset', type=dataset_option, default='cora',
        help='cora, citeseer, pubmed (Planetoid public split, the 2-layer '
        'GAT of PyG examples/gat.py), ogbn-arxiv (OGB time split, OGB '
        'Evaluator, the GAT recipe of DGL\'s leaderboard entries), or the '
        'path of a graph file '
        'networkx reads (GraphML, GML, edge list; 2-layer GAT, stratified '
        'random split); minesweeper, tolokers (ROC-AUC), chameleon-filtered, '
        'squirrel-filtered (Platonov et al.\'s data and model, run i on '
        'fixed split i, --runs at most 10); dictionary-lookup (GATv2 '
        'paper\'s generated task, see --k)')
    group.add_argument(
        '--root', type=_text('a folder'),
        help='data root; unset: $ALIGN_GNN_DATA, else datasets/')
    group.add_argument(
        '--k', type=_number(int, f'an integer in [3, {MAX_K}]',
                            lambda v: 3 <= v <= MAX_K),
        default=4,
        help='dictionary-lookup: keys per graph (all k! permutations up to '
        '32000 graphs; "unseen combinations" split drawn with --seed)')
    group.add_argument(
        '--edge-noise', type=_number(float, 'a number >= 0',
                                     lambda v: v >= 0), default=0.0,
        metavar='P',
        help='add P*|E|/2 uniformly random undirected non-edges to the '
        'graph before training (drawn with --seed)')
    group.add_argument(
        '--label-attr', type=_text('an attribute name'), default='label',
        metavar='NAME',
        help='graph file: the node attribute holding the class')
    group.add_argument(
        '--feature-attr', type=_names,
        metavar='NAME[,NAME...]',
        help='graph file: the node attribute holding a feature vector, or '
        'several numeric attributes; unset: identity features up to 5000 '
        'nodes, one-hot degrees beyond')
    group.add_argument(
        '--node-attributes', type=_text('the path of a CSV file'),
        metavar='CSV',
        help='edge list: a CSV file of node attributes (header; first '
        'column the node)')
    group.add_argument(
        '--split', type=fractions, default=[0.6, 0.2, 0.2],
        metavar='TRAIN,VAL,TEST',
        help='graph file: fractions of each class for training, validation '
        'and test, drawn with --seed (the same split for every run)')


def _model_arguments(group: argparse._ArgumentGroup):
    group.add_argument(
        '--model', type=str.lower, choices=list(MODELS),
        help='gat: the data set\'s GAT (Planetoid, graph files, '
        'dictionary-lookup: PyG examples/gat.py; ogbn-arxiv: ArxivGAT); '
        'platonov-*: the residual LayerNorm model of Platonov et al. '
        '(ICLR 2023) with GAT (--conv gat or gatv2) or graph transformer '
        'attention, -sep concatenating a node and its neighbourhood; '
        'unset: platonov-gat on the heterophilous sets, else gat')
    group.add_argument(
        '--conv', type=str.lower, default='gat', choices=list(CONVS),
        help='the attention layer of none and the aligned methods: PyG '
        'GATConv, GATv2Conv or TransformerConv (aligned: AlignedGATConv, '
        'AlignedGATv2Conv, AlignedTransformerConv)')
    group.add_argument(
        '--hidden', type=positive_int, metavar='D',
        help='platonov-*: width; unset: 512 (the paper; on a CPU try 64); '
        'ogbn-arxiv GAT: channels per head; unset: 250')
    group.add_argument(
        '--heads', type=positive_int,
        help='platonov-*: attention heads, dividing --hidden; unset: 8; '
        'ogbn-arxiv GAT: heads of the hidden layers; unset: 3')
    group.add_argument(
        '--layers', type=positive_int,
        help='platonov-*: attention blocks (the paper chose 1-5 on '
        'validation); unset: 5; ogbn-arxiv GAT: layers; unset: 3')
    group.add_argument(
        '--dropout', type=_number(float, 'a number in [0, 1)',
                                  lambda v: 0 <= v < 1),
        help='platonov-*: dropout probability; unset: 0.2; ogbn-arxiv GAT: '
        'between layers; unset: 0.75')


def _alignment_arguments(group: argparse._ArgumentGroup):
    group.add_argument(
        '--align', type=str.lower, choices=METHODS,
        metavar='METHOD',
        help=f'the method to train, one of {", ".join(METHODS)}: '
        'none is the plain GAT of PyG examples/gat.py, ct/adversarial/'
        'sinkhorn/mmd add alignment attention with that divergence, '
        'gatv2/supergat are PyG peers; unset: ct, the method this project '
        'studies; not with --compare or --check-attention, which choose '
        'their own methods')
    group.add_argument(
        '--compare', type=_methods, metavar='M1,M2,...',
        help='train several methods on the same seeds and print a table '
        'with paired tests against the first (overrides --align)')
    group.add_argument(
        '--align-weight', type=_number(float, 'a number >= 0',
                                       lambda v: v >= 0),
        help='weight lambda of the alignment loss'
        + recommended('align_weight'))
    group.add_argument(
        '--align-samples', type=_number(int, 'an integer >= 2',
                                        lambda v: v >= 2),
        help='keys and queries sampled per layer and forward pass'
        + recommended('align_samples'))
    group.add_argument(
        '--rho', type=_number(float, 'a number in [0, 1]',
                              lambda v: 0 <= v <= 1),
        help='forward (query-to-key) transport weight of ct'
        + recommended('rho'))
    group.add_argument(
        '--adversary-channels', type=positive_int, metavar='W',
        help='width of the adversaries (ct critic and navigator, '
        'adversarial discriminator)' + recommended('adversary_channels'))
    group.add_argument(
        '--adversary-lr-scale', type=_number(float, 'a number > 0',
                                             lambda v: v > 0),
        help="the adversaries' learning rate is --lr times this"
        + recommended('adversary_lr_scale'))
    group.add_argument(
        '--align-warmup', type=_number(int, 'an integer >= 0',
                                       lambda v: v >= 0),
        default=0, metavar='EPOCHS',
        help='ramp the alignment weight linearly from 0 to --align-weight '
        'over the first EPOCHS epochs (0: the full weight from the start, '
        'as the study was run; docs/cli.md says why it is the default)')
    group.add_argument(
        '--align-over', type=str.lower, default='nodes',
        choices=list(ALIGN_OVER),
        help='nodes: per head, the sampled nodes\' queries and keys are '
        'the two samples; heads: per node, its heads\' queries and keys '
        '(the alignment paper\'s code)')
    group.add_argument(
        '--check-attention', action='store_true',
        help='instead of --runs of --align, train the plain model (the '
        'layer of --conv or --model) once from --seed and check its '
        'attention on the validation nodes: per layer the entropy relative '
        'to uniform and the score with uniform attention, and one line '
        'saying whether alignment has anything to act on (the rule: '
        'docs/attention.md); the check also goes into the results JSON')


def _training_arguments(group: argparse._ArgumentGroup):
    group.add_argument('--runs', type=positive_int, default=10,
                       help='number of seeds per method')
    group.add_argument(
        '--seed', type=_number(int, 'an integer >= 0', lambda v: v >= 0),
        default=0, help='first seed; runs use seed, seed+1, ...')
    group.add_argument(
        '--epochs', type=positive_int,
        help='maximum number of epochs per run; unset: 1000 (ogbn-arxiv '
        '2000)')
    group.add_argument(
        '--patience', type=positive_int,
        help='stop after this many epochs without a better validation '
        'accuracy (ties broken by validation loss; --selection loss: '
        'without a lower validation loss); unset: 100 (ogbn-arxiv: '
        '--epochs, no early stopping)')
    group.add_argument(
        '--selection', type=str.lower,
        choices=list(SELECTIONS),
        help='acc: keep the best validation accuracy (ROC-AUC on '
        'minesweeper/tolokers; ties: lower loss), stop --patience epochs '
        'after it; gat-paper: the GAT paper\'s rule (go on while validation '
        'accuracy or loss improves, keep the last epoch where both were '
        'best); loss: keep the lowest validation loss (--loss); unset: acc '
        '(ogbn-arxiv: loss)')
    group.add_argument(
        '--lr', type=_number(float, 'a number > 0', lambda v: v > 0),
        help='learning rate; unset: 0.005 (PubMed 0.01, ogbn-arxiv 0.002, '
        'the heterophilous sets 3e-5)')
    group.add_argument(
        '--weight-decay', type=_number(float, 'a number >= 0',
                                       lambda v: v >= 0),
        help='weight decay; unset: 5e-4 (PubMed 1e-3, ogbn-arxiv and the '
        'heterophilous sets 0)')
    group.add_argument(
        '--optimizer', type=str.lower, choices=list(OPTIMIZERS),
        help='unset: adam (ogbn-arxiv: rmsprop)')
    group.add_argument(
        '--lr-warmup', type=_number(int, 'an integer >= 0',
                                    lambda v: v >= 0), metavar='EPOCHS',
        help='raise the learning rate linearly over the first EPOCHS '
        'epochs (epoch t: lr * t / EPOCHS); unset: 0 (ogbn-arxiv: 50)')
    group.add_argument(
        '--loss', type=str.lower, choices=list(LOSSES),
        help='ce: cross-entropy; log-ce: log(eps + CE) - log(eps), eps = '
        '1 - log 2; unset: ce (ogbn-arxiv: log-ce)')


def _robustness_arguments(group: argparse._ArgumentGroup):
    group.add_argument(
        '--attack', type=str.lower, choices=ATTACKS,
        help='evaluate each trained model under this structure attack (PyG '
        'PRBCDAttack, a global evasion attack on the test nodes) and under '
        'as many random edge flips, at each of --budgets')
    group.add_argument(
        '--budgets', type=budgets, default=[0.01, 0.05, 0.1],
        metavar='B1,B2,...',
        help='attack budgets as fractions of the edges')
    group.add_argument(
        '--attack-epochs', type=positive_int, default=50,
        help='PRBCD epochs (and 4/5 as many to sample the final '
        'perturbation; PyG\'s default is 125)')


def _outputs_arguments(group: argparse._ArgumentGroup):
    group.add_argument(
        '--out', type=_text('the path of a file'),
        help='results JSON file; unset: a timestamped file under '
        'results/; never a file that is not a results file, nor an input '
        'or the checkpoint of this run')
    group.add_argument(
        '--overwrite', action='store_true',
        help='replace an existing results file (--out) or figures '
        '(--plot-dir) of an earlier run; other files are never replaced')
    group.add_argument(
        '--plot-dir', type=_text('a folder'), metavar='DIR',
        help='write figures to DIR: a reliability diagram per method, '
        'accuracy under attack (with --attack), keys and queries of the '
        'first seed (PCA, per layer and head), learning curves; needs the '
        'plot extra (matplotlib)')
    group.add_argument(
        '--checkpoint', type=_text('a folder'), metavar='DIR',
        help='save the progress (finished runs, and the full state of the '
        'current run: model, optimizer, random generators, early stopping) '
        'atomically to DIR/checkpoint.pt, so that --resume can continue it '
        'exactly; DIR must not hold a checkpoint yet, unless --resume')
    group.add_argument(
        '--checkpoint-every', type=positive_int, default=50, metavar='K',
        help='with --checkpoint, save the current run every K epochs (and '
        'after every run)')
    group.add_argument(
        '--resume', action='store_true',
        help='continue from the checkpoint in --checkpoint DIR (finished '
        'runs are not re-run; the same settings are required); start from '
        'scratch if DIR holds none')
    group.add_argument('--quiet', action='store_true',
                       help='no progress bars')
    group.add_argument('--debug', action='store_true',
                       help='show tracebacks of errors')


def _arxiv_arguments(group: argparse._ArgumentGroup):
    group.add_argument(
        '--labels', type=str.lower, choices=list(LABELS),
        help='ogbn-arxiv: input appends the one-hot labels of a random half '
        'of the training nodes to the features and predicts the other half '
        '(evaluation: all training labels); reuse also feeds the '
        'predictions back into the label columns once; unset: input '
        '(none with --batch-size)')
    group.add_argument(
        '--edge-drop', type=_number(float, 'a number in [0, 1)',
                                    lambda v: 0 <= v < 1), metavar='P',
        help='ogbn-arxiv GAT: leave a random share P of the edges out of '
        'each training step\'s attention softmax, in every layer; unset: '
        '0.1 (--labels reuse: 0.3)')
    group.add_argument(
        '--norm-adj', action=argparse.BooleanOptionalAction,
        help='ogbn-arxiv GAT: scale the source features by out-degree^-1/2 '
        'before the aggregation and the result by in-degree^1/2; unset: '
        '--norm-adj')
    group.add_argument(
        '--att-dst', action=argparse.BooleanOptionalAction,
        help='ogbn-arxiv GAT: learn the target attention vector (the '
        'query); unset: --no-att-dst for none (the recipe), --att-dst for '
        'the aligned methods (alignment needs the query)')


def _scale_arguments(group: argparse._ArgumentGroup):
    group.add_argument('--device', type=str.lower, default='auto',
                       choices=DEVICES,
                       help='auto picks CUDA when available')
    group.add_argument(
        '--features', type=str.lower, choices=FEATURES,
        help='node feature layout: sparse stores the bag-of-words features '
        'as a sparse CSR matrix (faster first layer); unset: sparse for '
        'full-batch Planetoid, else dense')
    group.add_argument(
        '--batch-size', type=positive_int, metavar='B',
        help='train on neighbour-sampled subgraphs (PyG NeighborLoader) of B '
        'training nodes each and evaluate on the full graph; needs the scale '
        'extra (torch-sparse); required with torchrun; unset: full-batch')
    group.add_argument(
        '--fanout', type=fanout, metavar='N1,N2,...',
        help='with --batch-size, neighbours sampled per node at each hop, '
        'one number per layer (-1: all); unset: 10,10 (Planetoid) or '
        '15,10,5 (ogbn-arxiv)')
    group.add_argument(
        '--precision', type=str.lower, default='fp32', choices=PRECISIONS,
        help='the arithmetic of training and evaluation: fp32; tf32 (CUDA: '
        'float32 tensors, TF32 matrix products); bf16 (autocast to '
        'bfloat16, float32 parameters and losses)')
    group.add_argument(
        '--capture', action=argparse.BooleanOptionalAction, default=True,
        help='keep full-batch training on the device: an epoch never waits '
        'for the host, on CUDA it is replayed as one CUDA graph (features '
        'dense by default); --no-capture: the epoch loop that reads every '
        'epoch on the host (checkpoints, --batch-size and labels as input '
        'use it); the same results')
    group.add_argument(
        '--threads', type=positive_int, metavar='N',
        help='CPU threads of this process (PyTorch\'s intra-op threads; '
        'the results do not depend on it); unset: $OMP_NUM_THREADS, else '
        'one per core. When other CPU-bound work shares the cores (another '
        'run, a study, a test suite), give each process its share, e.g. '
        '--threads 1 on 2 cores beside one other job: threads spinning '
        'against each other cost far more than one thread (docs/cli.md, '
        '"Threads")')


def build_parser() -> ArgumentParser:
    r"""The parser of :func:`parse_args`, its flags in the groups that
    --help shows."""
    parser = ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=HelpFormatter)
    _data_arguments(parser.add_argument_group(
        'data', 'the graph, its features and its split'))
    _model_arguments(parser.add_argument_group(
        'model', 'the network and its attention layer'))
    _alignment_arguments(parser.add_argument_group(
        'alignment', 'the method and the alignment loss'))
    _training_arguments(parser.add_argument_group(
        'training', 'seeds, optimization and model selection'))
    _robustness_arguments(parser.add_argument_group(
        'robustness', 'the trained models under structure attacks'))
    _outputs_arguments(parser.add_argument_group(
        'outputs', 'results, figures, checkpoints and messages'))
    _arxiv_arguments(parser.add_argument_group(
        'ogbn-arxiv recipe', "DGL's GAT of the OGB leaderboard"))
    _scale_arguments(parser.add_argument_group(
        'scale', 'device, feature layout and neighbour sampling'))
    return parser


# The flags that act in every mode (the others: MODES below, and the
# options of `Config`, each in `align_gnn.options.SCOPES` or EVERYWHERE):
EVERY_MODE = ('help', 'dataset', 'check_attention', 'out', 'plot_dir',
              'quiet', 'debug', 'threads')
ONCE = 'not with --check-attention (it trains the plain model once)'
# The flags of the command line alone that act only in some modes (issue
# 30; the options of `Config`: `align_gnn.options.SCOPES`): a flag given
# where it would act on nothing is refused. dest -> (acts(args), where).
MODES: Modes = {
    'align': (lambda args: not (args.compare or args.check_attention),
              'not with --compare or --check-attention (list the methods in '
              '--compare; --check-attention trains the plain model)'),
    **{dest: (lambda args: not args.check_attention, ONCE)
       for dest in ('compare', 'runs', 'checkpoint', 'attack')},
    **{dest: (lambda args: args.checkpoint is not None,
              'only with --checkpoint DIR')
       for dest in ('resume', 'checkpoint_every')},
    'root': (lambda args: not is_graph_file(args.dataset)
             and args.dataset != 'dictionary-lookup',
             'only for a named data set read from files (a graph file is '
             'read from its path, dictionary-lookup is generated)'),
    'overwrite': (lambda args: bool(args.out or args.plot_dir),
                  'only with --out or --plot-dir (the default --out is a new '
                  'file)'),
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.given = given_options(parser, argv)
    check_modes(parser, args, MODES, args.given)
    if args.check_attention and distributed.launched():
        parser.error('argument --check-attention: not with torchrun (it '
                     'trains the plain model once, in one process)')
    if args.seed + args.runs - 1 > MAX_SEED:
        parser.error(f'argument --seed: --seed + --runs - 1 must be at most '
                     f'{MAX_SEED} (the last run\'s seed; got {args.seed} + '
                     f'{args.runs} - 1)')
    args.align = args.align or 'ct'
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('argument --device: CUDA is not available; use '
                     '--device cpu or auto')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.threads:
        set_threads(args.threads)
    notes = logging.StreamHandler()  # the library's notes, e.g. features
    notes.setFormatter(logging.Formatter('note: %(message)s'))
    logger = logging.getLogger('align_gnn')
    level = logger.level
    logger.addHandler(notes)  # for this call only (main may run again
    logger.setLevel(logging.INFO)  # in the same process)
    locks = []  # released at the end, however it ends
    try:
        with interrupts.handle():
            return _main(args, argv, locks)
    except interrupts.Interrupted as err:
        # Raised outside `_main`'s own handling (e.g. while locking):
        print(f'interrupted ({err.signal}): nothing written',
              file=sys.stderr)
        return 128 + getattr(signal, err.signal, signal.SIGINT)
    finally:
        for lock in reversed(locks):
            lock.release()
        logger.removeHandler(notes)
        logger.setLevel(level)


def _main(args: argparse.Namespace, argv: Optional[List[str]],
          locks: List) -> int:
    checkpoint = None
    try:
        config = Config(
            dataset=args.dataset, methods=(['none'] if args.check_attention
                                           else args.compare or [args.align]),
            align_weight=args.align_weight, align_samples=args.align_samples,
            rho=args.rho, runs=1 if args.check_attention else args.runs,
            seed=args.seed, epochs=args.epochs,
            patience=args.patience, lr=args.lr,
            weight_decay=args.weight_decay, device=args.device,
            features=args.features, batch_size=args.batch_size,
            fanout=args.fanout, conv=args.conv,
            adversary_channels=args.adversary_channels,
            adversary_lr_scale=args.adversary_lr_scale,
            align_warmup=args.align_warmup,
            label_attr=args.label_attr,
            feature_attr=args.feature_attr,
            node_attributes=args.node_attributes, split=args.split,
            attack=args.attack,
            budgets=args.budgets,
            attack_epochs=args.attack_epochs,
            keys_queries=args.plot_dir is not None,
            model=args.model, hidden=args.hidden, heads=args.heads,
            layers=args.layers, dropout=args.dropout, k=args.k,
            edge_noise=args.edge_noise, align_over=args.align_over,
            selection=args.selection, optimizer=args.optimizer,
            lr_warmup=args.lr_warmup, loss=args.loss, labels=args.labels,
            edge_drop=args.edge_drop, norm_adj=args.norm_adj,
            att_dst=args.att_dst, precision=args.precision,
            capture=args.capture)
        check_scopes(config, args.given)
        path = args.out or default_output_path(config)
        _check_outputs(args, config, path, locks)
        distributed.init(resolve_device(config.device).type ==
                         'cuda')
        if args.checkpoint:
            checkpoint = Checkpoint(args.checkpoint, config,
                                    args.checkpoint_every, args.resume)
            locks.append(checkpoint.lock)
            if checkpoint.finished or checkpoint.current:
                print(f'resuming {checkpoint.path}: '
                      f'{len(checkpoint.finished)} run(s) finished',
                      file=sys.stderr)
        check = None
        if args.check_attention:
            results, check = check_attention(config, args.root,
                                             progress=not args.quiet)
        else:
            results = experiment(config, args.root, progress=not args.quiet,
                                 checkpoint=checkpoint)
    except (ValueError, ImportError,  # `DataError` included
            CaptureFailed) as err:
        if args.debug:
            raise
        print(f'error: {err}', file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # `interrupts.Interrupted` included
        if args.debug:
            raise
        return _interrupted(err, checkpoint, path, argv)
    finally:
        main_process = distributed.is_main()
        distributed.shutdown()
    if not main_process:
        return 0
    results['command'] = command(argv)
    if config.dataset == 'ogbn-arxiv':
        results['leaderboard'] = leaderboard(results)
    if not _save(results, path, checkpoint):
        return 1
    failed = results.get('failed', [])
    if len(results['runs']):
        print(f'{dataset_name(config.dataset)}, {config.runs} run(s) '
              f'from seed {config.seed}:')
        if results.get('metric') == 'roc_auc':
            print('metric: ROC-AUC (in the acc columns and the JSON\'s *_acc '
                  'fields)')
        print(format_table(results['summary']))
        if config.attack:
            print(format_attack_table(results['summary']))
        if config.dataset == 'ogbn-arxiv':
            print(format_leaderboard(results['leaderboard']))
        if check is not None:
            print(check)
    for record in failed:
        print(f'error: {record["reason"]}', file=sys.stderr)
    print(f'results written to {path}'
          + (f' ({len(failed)} failed run(s) recorded as failed)'
             if failed else ''))
    if args.plot_dir and len(results['runs']):
        for figure in plots.plot_results(results, args.plot_dir):
            print(f'figure written to {figure}')
    return 1 if failed else 0


def _check_outputs(args: argparse.Namespace, config: Config, path: str,
                   locks: List):
    # Every output checked and locked before training: writable, no input
    # or foreign file overwritten, no other process writing it.
    if args.plot_dir:
        plots.require_matplotlib()
        _check_writable('--plot-dir', osp.join(args.plot_dir, 'x.png'),
                        f"to '{args.plot_dir}'", 'folder')
    _check_writable('--out', path, f"'{path}'", 'file')
    if args.checkpoint:
        _check_writable('--checkpoint',
                        osp.join(args.checkpoint, Checkpoint.FILE),
                        f"the checkpoint to '{args.checkpoint}'", 'folder')
    inputs = [args.node_attributes]
    if is_graph_file(config.dataset):
        inputs.append(config.dataset)
    if args.checkpoint:
        inputs.append(osp.join(args.checkpoint, Checkpoint.FILE))
    if int(os.environ.get('RANK', 0)) == 0:  # the process that writes
        locks.append(_Folders(osp.dirname(osp.abspath(path))))
        try:
            locks.append(FileLock(lock_path(path),
                                  f"The results file '{path}'"))
        except OSError as err:  # LockedError included
            raise ValueError(f'argument --out: {err}') from err
    try:
        check_output(path, inputs, args.overwrite)
    except ValueError as err:
        raise ValueError(f'argument --out: {err}') from err
    if args.plot_dir:
        for name in _figure_names(config):
            try:
                check_output(osp.join(args.plot_dir, name), inputs,
                             args.overwrite, is_figure_file,
                             'a figure of train_gat.py')
            except ValueError as err:
                raise ValueError(f'argument --plot-dir: {err}') from err


class _Folders:
    # Creates `folder` (for the lock file beside the results) and, on
    # release, removes the folders it created if they are still empty.
    def __init__(self, folder: str):
        self.created = []
        while not osp.exists(folder):
            self.created.insert(0, folder)
            folder = osp.dirname(folder)
        for folder in self.created:
            os.mkdir(folder)

    def release(self):
        for folder in reversed(self.created):
            try:
                os.rmdir(folder)
            except OSError:  # not empty: the results are there
                break
        self.created = []


def _figure_names(config: Config) -> List[str]:
    # The files of `plots.plot_results`:
    names = [f'reliability_{method}.png' for method in config.methods]
    names += [f'keys_queries_{method}.png' for method in config.methods]
    if config.attack:
        names.append('attack.png')
    return names + ['learning_curves.png']


def _interrupted(err: KeyboardInterrupt, checkpoint: Optional[Checkpoint],
                 path: str, argv: Optional[List[str]]) -> int:
    # One line; the finished runs kept (in the checkpoint, else written to
    # the results file marked incomplete).
    name = getattr(err, 'signal', 'SIGINT')
    code = 128 + getattr(signal, name, signal.SIGINT)
    results = getattr(err, 'results', None)
    if checkpoint is not None:
        print(f'interrupted ({name}): the progress is saved in '
              f'{checkpoint.path} ({len(checkpoint.finished)} run(s) '
              f'finished); the same command with --resume continues it',
              file=sys.stderr)
    elif results is not None and results['runs'] and distributed.is_main():
        results['command'] = command(argv)
        if not _save(results, path, checkpoint):
            return code
        print(f'interrupted ({name}): the {len(results["runs"])} finished '
              f'run(s) written to {path} (marked incomplete)',
              file=sys.stderr)
    else:
        print(f'interrupted ({name}): no run had finished; nothing written',
              file=sys.stderr)
    return code


def _save(results: Dict, path: str, checkpoint: Optional[Checkpoint]
          ) -> bool:
    # Writes the results; if that fails (a full disk), says so in one line
    # and keeps the finished runs: in the checkpoint, else in a journal
    # beside `path` (a new file).
    try:
        save_results(results, path)
        return True
    except WriteError as err:
        message = f'error: {err}'
    if checkpoint is not None:
        print(f'{message}; the finished runs are kept in {checkpoint.path}: '
              f'free space and give the same command with --resume to '
              f'write them', file=sys.stderr)
        return False
    stem, number = osp.splitext(path)[0], 1
    journal = f'{stem}.unsaved.json'
    while osp.lexists(journal):  # a new file, never one that is there
        number += 1
        journal = f'{stem}.unsaved-{number}.json'
    try:
        save_results(results, journal)
    except WriteError as err:
        again = err.__cause__ or err
        print(f'{message}; keeping the finished runs beside it failed too '
              f'({getattr(again, "strerror", None) or again}), so they are '
              f'lost: free space, and give --checkpoint DIR to keep '
              f'finished runs through any failure', file=sys.stderr)
        return False
    print(f'{message}; the finished runs are kept in {journal} (a results '
          f'file): free space and move it to {path}', file=sys.stderr)
    return False


def _check_writable(flag: str, path: str, shown: str, kind: str):
    # A one-line error before training, naming the flag.
    try:
        check_writable(path)
    except OSError as err:
        raise ValueError(f"argument {flag}: cannot write {shown} ({err}); "
                         f"choose a writable {kind} (see --help)") from err


def command(argv: Optional[List[str]] = None) -> str:
    r"""The command line that ran this script, as a shell would take it."""
    argv = sys.argv[1:] if argv is None else argv
    launcher = ['python']
    if distributed.launched():
        per_node = int(os.environ.get('LOCAL_WORLD_SIZE', 1))
        nodes = int(os.environ['WORLD_SIZE']) // per_node
        launcher = ['torchrun', '--nproc-per-node', str(per_node)]
        if nodes > 1:
            launcher += ['--nnodes', str(nodes)]
    return shlex.join([*launcher, 'train_gat.py', *argv])


if __name__ == '__main__':
    sys.exit(main())
