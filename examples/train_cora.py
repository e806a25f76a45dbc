r"""A small aligned GAT on Cora: PyG's ``examples/gat.py`` with GATConv swapped
for AlignedGATConv and the alignment loss added to the task loss; the
README's snippet ("Use it in your model"), complete.

    python examples/train_cora.py --divergence ct --align-weight 0.01 --warmup 50
"""
import argparse
import os
import time

import torch
import torch.nn.functional as F

import torch_geometric.transforms as T
from torch_geometric.datasets import Planetoid

from align_gnn import (AlignedGATConv, adversary_parameters, alignment_loss,
                       alignment_weight, model_parameters)

parser = argparse.ArgumentParser(
    formatter_class=argparse.ArgumentDefaultsHelpFormatter)
parser.add_argument('--root', default=os.environ.get('ALIGN_GNN_DATA',
                                                     'datasets'),
                    help='data root holding Cora/raw/')
parser.add_argument('--divergence', default='ct',
                    choices=['ct', 'adversarial', 'sinkhorn', 'mmd'],
                    help='divergence between queries and keys')
parser.add_argument('--align-weight', type=float, default=0.01,
                    help='weight lambda of the alignment loss')
parser.add_argument('--warmup', type=int, default=50,
                    help='epochs over which lambda rises from 0')
parser.add_argument('--adversary-lr-scale', type=float, default=0.3,
                    help="the adversaries' learning rate is 0.005 times this")
parser.add_argument('--epochs', type=int, default=200,
                    help='training epochs')
parser.add_argument('--seed', type=int, default=0, help='random seed')
args = parser.parse_args()

torch.manual_seed(args.seed)
dataset = Planetoid(args.root, 'Cora', transform=T.NormalizeFeatures())
data = dataset[0]

conv1 = AlignedGATConv(dataset.num_features, 8, heads=8, dropout=0.6,
                       divergence=args.divergence)
conv2 = AlignedGATConv(64, dataset.num_classes, heads=1, concat=False,
                       dropout=0.6, divergence=args.divergence)
model = torch.nn.ModuleList([conv1, conv2])
optimizer = torch.optim.Adam([
    dict(params=model_parameters(model)),
    dict(params=adversary_parameters(model),
         lr=args.adversary_lr_scale * 0.005),
], lr=0.005, weight_decay=5e-4)


def forward(x, edge_index):
    h = F.elu(conv1(F.dropout(x, 0.6, model.training), edge_index))
    return conv2(F.dropout(h, 0.6, model.training), edge_index)


def train(epoch):
    model.train()
    optimizer.zero_grad()
    out = forward(data.x, data.edge_index)
    task_loss = F.cross_entropy(out[data.train_mask], data.y[data.train_mask])
    weight = alignment_weight(epoch, args.align_weight, warmup=args.warmup)
    align_loss = alignment_loss(model)
    (task_loss + weight * align_loss).backward()
    optimizer.step()
    return task_loss.item(), align_loss.item()


@torch.no_grad()
def test():
    model.eval()
    pred = forward(data.x, data.edge_index).argmax(dim=-1)
    return [
        float((pred[mask] == data.y[mask]).float().mean())
        for mask in (data.train_mask, data.val_mask, data.test_mask)
    ]


best_val_acc = test_acc = 0.0
start = time.perf_counter()
for epoch in range(args.epochs):
    task_loss, align_loss = train(epoch)
    train_acc, val_acc, tmp_test_acc = test()
    if val_acc > best_val_acc:
        best_val_acc, test_acc = val_acc, tmp_test_acc
    if (epoch + 1) % 20 == 0 or epoch + 1 == args.epochs:
        print(f'Epoch: {epoch + 1:03d}, Loss: {task_loss:.4f}, '
              f'Alignment: {align_loss:.4f}, Train: {train_acc:.4f}, '
              f'Val: {val_acc:.4f}, Test: {tmp_test_acc:.4f}')
print(f'Best validation accuracy: {best_val_acc:.4f}, test accuracy at it: '
      f'{test_acc:.4f} ({time.perf_counter() - start:.1f}s)')
