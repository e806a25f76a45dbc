r"""Train graph attention networks with and without alignment attention on
Cora, CiteSeer or PubMed (public split), over several seeds.

Examples:
    python train_gat.py --dataset cora --align ct --runs 10
    python train_gat.py --dataset citeseer --compare none,ct,mmd --out cs.json
"""
import argparse
import math
import sys
from typing import Callable, List, Optional

import torch

from align_gnn import training


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


positive_int = _number(int, 'a positive integer', lambda v: v >= 1)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument(
        '--dataset', type=str.lower, default='cora',
        choices=list(training.DATASETS), help='Planetoid data set')
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
    parser.add_argument('--epochs', type=positive_int, default=1000,
                        help='maximum number of epochs per run')
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
        help='Adam weight decay; unset: 5e-4 (PubMed 1e-3)')
    parser.add_argument(
        '--root', help='data root; unset: $ALIGN_GNN_DATA, else datasets/')
    parser.add_argument(
        '--out', help='results JSON file; unset: a timestamped file under '
        'results/')
    parser.add_argument('--device', type=str.lower, default='auto',
                        choices=training.DEVICES,
                        help='auto picks CUDA when available')
    parser.add_argument(
        '--features', type=str.lower, default='sparse',
        choices=training.FEATURES,
        help='node feature layout: sparse stores the bag-of-words features '
        'as a sparse CSR matrix (faster first layer)')
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
    config = training.Config(
        dataset=args.dataset, methods=args.compare or [args.align],
        align_weight=args.align_weight, align_samples=args.align_samples,
        rho=args.rho, runs=args.runs, seed=args.seed, epochs=args.epochs,
        patience=args.patience, lr=args.lr, weight_decay=args.weight_decay,
        device=args.device, features=args.features)
    path = args.out or training.default_output_path(config)
    try:
        training.check_writable(path)
    except OSError as err:
        if args.debug:
            raise
        print(f"error: argument --out: cannot write '{path}' ({err}); "
              f"choose a writable file (see --help)", file=sys.stderr)
        return 2
    try:
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
    except ValueError as err:  # `training.DataError` included
        if args.debug:
            raise
        print(f'error: {err}', file=sys.stderr)
        return 2
    training.save_results(results, path)
    print(f'{training.DATASETS[config.dataset]}, {config.runs} run(s) from '
          f'seed {config.seed}:')
    print(training.format_table(results['summary']))
    print(f'results written to {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
