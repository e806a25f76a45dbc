r"""One rank of a multi-process training run, started by torchrun from
tests/test_scale.py: trains on the generated ogbn-arxiv graph in ROOT and
saves this rank's final weights and learning curve to OUT/rank<r>.pt.

    torchrun --nproc-per-node 2 tests/ddp_worker.py ROOT OUT
"""
import os.path as osp
import sys

import torch

from align_gnn import distributed, training
from align_gnn.config import Config
from align_gnn.data import load_dataset

root, out = sys.argv[1:3]
config = Config(dataset='ogbn-arxiv', methods=['ct'], epochs=12,
                patience=1000, batch_size=64, fanout=[5, 5, 5],
                align_samples=32, device='cpu', hidden=32, lr_warmup=0)
distributed.init(cuda=False)
with distributed.main_first():
    data = load_dataset(config.dataset, root)
torch.manual_seed(distributed.rank())  # different initial weights per rank
model = training.make_model('ct', data, config)
result = training.fit(model, data, 'ct', 0, config)
torch.save(dict(model=model.state_dict(), result=result.__dict__),
           osp.join(out, f'rank{distributed.rank()}.pt'))
distributed.shutdown()
