r"""The command line's thread count when other work shares the cores: the
wall time of one `train_gat.py` command on PyTorch's default threads (one
per core) against `--threads 1`, beside N busy processes and on the quiet
machine, interleaved (median of --repeats).

    python benchmarks/bench_contention.py --root datasets
"""
import argparse
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from align_gnn.reproducibility import cpu_model  # noqa: E402

# One CPU-bound process: a single thread spinning, as another job would.
BUSY = 'while True: pass'


def wall_time(argv, threads, folder) -> float:
    env = {k: v for k, v in os.environ.items() if k != 'OMP_NUM_THREADS'}
    extra = [] if threads is None else ['--threads', str(threads)]
    start = time.perf_counter()
    subprocess.run([sys.executable, osp.join(REPO, 'train_gat.py'), *argv,
                    *extra, '--quiet', '--overwrite', '--out',
                    osp.join(folder, 'r.json')],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--root', default=None, help='data root')
    parser.add_argument('--command', default='--dataset cora --compare '
                        'none,ct --runs 2 --epochs 30',
                        help='the train_gat.py arguments timed')
    parser.add_argument('--busy', default='0,1',
                        help='comma-separated numbers of busy processes '
                        'beside the command')
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args(argv)
    command = args.command.split()
    if args.root:
        command += ['--root', args.root]
    settings = {'default threads': None, '--threads 1': 1}
    busy_counts = [int(n) for n in args.busy.split(',')]
    seconds = {(b, name): [] for b in busy_counts for name in settings}
    with tempfile.TemporaryDirectory() as folder:
        for busy in busy_counts:
            spinners = [subprocess.Popen([sys.executable, '-c', BUSY])
                        for _ in range(busy)]
            try:
                for _ in range(args.repeats):  # interleaved
                    for name, threads in settings.items():
                        seconds[busy, name].append(
                            wall_time(command, threads, folder))
            finally:
                for spinner in spinners:
                    spinner.kill()
                    spinner.wait()
    print(f'train_gat.py {args.command}; {cpu_model()}, '
          f'{len(os.sched_getaffinity(0))} cores; median of {args.repeats}')
    print('| busy processes | default threads (s) | --threads 1 (s) | '
          'default / one |')
    print('| --- | --- | --- | --- |')
    for busy in busy_counts:
        default, one = (statistics.median(seconds[busy, name])
                        for name in settings)
        print(f'| {busy} | {default:.1f} | {one:.1f} | {default / one:.2f} |')


if __name__ == '__main__':
    main()
