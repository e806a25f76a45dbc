r"""Train graph attention networks with and without alignment attention on
Cora, CiteSeer, PubMed (public split) or ogbn-arxiv (OGB's time split), over
several seeds.

Examples:
    python train_gat.py --dataset cora --align ct --runs 10
    python train_gat.py --dataset citeseer --compare none,ct,mmd --out cs.json
    python train_gat.py --dataset ogbn-arxiv --compare none,ct
    torchrun --nproc-per-node 2 train_gat.py --dataset ogbn-arxiv \
        --batch-size 1024 --fanout 15,10,5
"""
import argparse
import math
import os
import shlex
import sys
from typing import Callable, List, Optional

import torch

from align_gnn import distributed, training


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):
        # One line naming the flag, no usage block:
        self.exit(2, f'error: {message} (see --help)\n')


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
    unknown = [method for method in methods if method not in training.METHODS]
    if unknown or len(set(methods)) != len(methods):
        raise argparse.ArgumentTypeError(
            f'must be distinct names from {",".join(training.METHODS)}, '
            f'separated by commas (got {text!r})')
    return methods


def _fanout(text: str) -> List[int]:
    try:
        fanout = [int(n) for n in text.split(',')]
    except ValueError:
        fanout = []
    if not fanout or not all(n >= 1 or n == -1 for n in fanout):
        raise argparse.ArgumentTypeError(
            f'must be integers >= 1 (or -1: all neighbours) separated by '
            f'commas, one per layer (got {text!r})')
    return fanout


positive_int = _number(int, 'a positive integer', lambda v: v >= 1)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument(
        '--dataset', type=str.lower, default='cora',
        choices=list(training.DATASETS),
        help='Planetoid data set (public split, the 2-layer GAT of PyG '
        'examples/gat.py) or ogbn-arxiv (OGB time split, OGB Evaluator, the '
        '3-layer ArxivGAT)')
    parser.add_argument(
        '--align', type=str.lower, default='ct', choices=training.METHODS,
        metavar='METHOD',
        help=f'the method to train, one of {", ".join(training.METHODS)}: '
        'none is the plain GAT of PyG examples/gat.py, ct/adversarial/'
        'sinkhorn/mmd add alignment attention with that divergence, '
        'gatv2/supergat are PyG peers; the default ct is the method this '
        'project studies')
    parser.add_argument(
        '--compare', type=_methods, metavar='M1,M2,...',
        help='train several methods on the same seeds and print a table '
        'with paired tests against the first (overrides --align)')
    parser.add_argument(
        '--align-weight', type=_number(float, 'a number >= 0',
                                       lambda v: v >= 0), default=0.1,
        help='weight lambda of the alignment loss')
    parser.add_argument(
        '--align-samples', type=_number(int, 'an integer >= 2',
                                        lambda v: v >= 2), default=256,
        help='keys and queries sampled per layer and forward pass')
    parser.add_argument(
        '--rho', type=_number(float, 'a number in [0, 1]',
                              lambda v: 0 <= v <= 1), default=0.5,
        help='forward (query-to-key) transport weight of ct')
    parser.add_argument('--runs', type=positive_int, default=10,
                        help='number of seeds per method')
    parser.add_argument(
        '--seed', type=_number(int, 'an integer >= 0', lambda v: v >= 0),
        default=0, help='first seed; runs use seed, seed+1, ...')
    parser.add_argument(
        '--epochs', type=positive_int,
        help='maximum number of epochs per run; unset: 1000 (ogbn-arxiv '
        '500)')
    parser.add_argument(
        '--patience', type=positive_int, default=100,
        help='stop after this many epochs without a better validation '
        'accuracy (ties broken by validation loss)')
    parser.add_argument(
        '--lr', type=_number(float, 'a number > 0', lambda v: v > 0),
        help='Adam learning rate; unset: 0.005 (PubMed 0.01)')
    parser.add_argument(
        '--weight-decay', type=_number(float, 'a number >= 0',
                                       lambda v: v >= 0),
        help='Adam weight decay; unset: 5e-4 (PubMed 1e-3, ogbn-arxiv 0)')
    parser.add_argument(
        '--root', help='data root; unset: $ALIGN_GNN_DATA, else datasets/')
    parser.add_argument(
        '--out', help='results JSON file; unset: a timestamped file under '
        'results/')
    parser.add_argument('--device', type=str.lower, default='auto',
                        choices=training.DEVICES,
                        help='auto picks CUDA when available')
    parser.add_argument(
        '--features', type=str.lower, choices=training.FEATURES,
        help='node feature layout: sparse stores the bag-of-words features '
        'as a sparse CSR matrix (faster first layer); unset: sparse for '
        'full-batch Planetoid, else dense')
    parser.add_argument(
        '--batch-size', type=positive_int, metavar='B',
        help='train on neighbour-sampled subgraphs (PyG NeighborLoader) of B '
        'training nodes each and evaluate on the full graph; needs the scale '
        'extra (torch-sparse); required with torchrun; unset: full-batch')
    parser.add_argument(
        '--fanout', type=_fanout, metavar='N1,N2,...',
        help='with --batch-size, neighbours sampled per node at each hop, '
        'one number per layer (-1: all); unset: 10,10 (Planetoid) or '
        '15,10,5 (ogbn-arxiv)')
    parser.add_argument(
        '--checkpoint', metavar='DIR',
        help='save the progress (finished runs, and the full state of the '
        'current run: model, optimizer, random generators, early stopping) '
        'atomically to DIR/checkpoint.pt, so that --resume can continue it '
        'exactly; DIR must not hold a checkpoint yet, unless --resume')
    parser.add_argument(
        '--checkpoint-every', type=positive_int, default=50, metavar='K',
        help='with --checkpoint, save the current run every K epochs (and '
        'after every run)')
    parser.add_argument(
        '--resume', action='store_true',
        help='continue from the checkpoint in --checkpoint DIR (finished '
        'runs are not re-run; the same settings are required); start from '
        'scratch if DIR holds none')
    parser.add_argument('--quiet', action='store_true',
                        help='no progress bars')
    parser.add_argument('--debug', action='store_true',
                        help='show tracebacks of errors')
    args = parser.parse_args(argv)
    if args.resume and not args.checkpoint:
        parser.error('argument --resume: needs --checkpoint DIR')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('argument --device: CUDA is not available; use '
                     '--device cpu or auto')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        config = training.Config(
            dataset=args.dataset, methods=args.compare or [args.align],
            align_weight=args.align_weight, align_samples=args.align_samples,
            rho=args.rho, runs=args.runs, seed=args.seed, epochs=args.epochs,
            patience=args.patience, lr=args.lr,
            weight_decay=args.weight_decay, device=args.device,
            features=args.features, batch_size=args.batch_size,
            fanout=args.fanout)
        path = args.out or training.default_output_path(config)
        try:
            training.check_writable(path)
        except OSError as err:
            raise ValueError(f"argument --out: cannot write '{path}' "
                             f"({err}); choose a writable file (see "
                             f"--help)") from err
        distributed.init(training.resolve_device(config.device).type ==
                         'cuda')
        checkpoint = None
        if args.checkpoint:
            checkpoint = training.Checkpoint(args.checkpoint, config,
                                             args.checkpoint_every,
                                             args.resume)
            if checkpoint.finished or checkpoint.current:
                print(f'resuming {checkpoint.path}: '
                      f'{len(checkpoint.finished)} run(s) finished',
                      file=sys.stderr)
        results = training.experiment(config, args.root,
                                      progress=not args.quiet,
                                      checkpoint=checkpoint)
    except (ValueError, ImportError) as err:  # `DataError` included
        if args.debug:
            raise
        print(f'error: {err}', file=sys.stderr)
        return 2
    finally:
        main_process = distributed.is_main()
        distributed.shutdown()
    if not main_process:
        return 0
    results['command'] = command(argv)
    training.save_results(results, path)
    print(f'{training.DATASETS[config.dataset]}, {config.runs} run(s) from '
          f'seed {config.seed}:')
    print(training.format_table(results['summary']))
    if config.dataset == 'ogbn-arxiv':
        print(training.format_leaderboard(results))
    print(f'results written to {path}')
    return 0


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
