r"""A small aligned GAT on Cora: PyG's ``examples/gat.py`` with GATConv swapped
for AlignedGATConv and the alignment loss added to the task loss.

    python examples/train_cora.py --divergence ct --align-weight 0.1
"""
import argparse
import os
import time

import torch
import torch.nn.functional as F

import torch_geometric.transforms as T
from torch_geometric.datasets import Planetoid

from align_gnn import AlignedGATConv, alignment_loss

parser = argparse.ArgumentParser(
    formatter_class=argparse.ArgumentDefaultsHelpFormatter)
parser.add_argument('--root', default=os.environ.get('ALIGN_GNN_DATA',
                                                     'datasets'),
                    help='data root holding Cora/raw/')
parser.add_argument('--divergence', default='ct',
                    choices=['ct', 'adversarial', 'sinkhorn', 'mmd'],
                    help='divergence between queries and keys')
parser.add_argument('--align-weight', type=float, default=0.1,
                    help='weight of the alignment loss')
parser.add_argument('--epochs', type=int, default=200,
                    help='training epochs')
parser.add_argument('--seed', type=int, default=0, help='random seed')
args = parser.parse_args()

torch.manual_seed(args.seed)
dataset = Planetoid(args.root, 'Cora', transform=T.NormalizeFeatures())
data = dataset[0]


class GAT(torch.nn.Module):
    def __init__(self, in_channels, hidden_channels, out_channels, heads):
        super().__init__()
        self.conv1 = AlignedGATConv(in_channels, hidden_channels, heads,
                                    dropout=0.6, divergence=args.divergence)
        self.conv2 = AlignedGATConv(hidden_channels * heads, out_channels,
                                    heads=1, concat=False, dropout=0.6,
                                    divergence=args.divergence)

    def forward(self, x, edge_index):
        x = F.dropout(x, p=0.6, training=self.training)
        x = F.elu(self.conv1(x, edge_index))
        x = F.dropout(x, p=0.6, training=self.training)
        return self.conv2(x, edge_index)


model = GAT(dataset.num_features, 8, dataset.num_classes, heads=8)
optimizer = torch.optim.Adam(model.parameters(), lr=0.005, weight_decay=5e-4)


def train():
    model.train()
    optimizer.zero_grad()
    out = model(data.x, data.edge_index)
    task_loss = F.cross_entropy(out[data.train_mask], data.y[data.train_mask])
    align_loss = alignment_loss(model)
    (task_loss + args.align_weight * align_loss).backward()
    optimizer.step()
    return float(task_loss), float(align_loss)


@torch.no_grad()
def test():
    model.eval()
    pred = model(data.x, data.edge_index).argmax(dim=-1)
    return [
        float((pred[mask] == data.y[mask]).float().mean())
        for mask in (data.train_mask, data.val_mask, data.test_mask)
    ]


best_val_acc = test_acc = 0.0
start = time.perf_counter()
for epoch in range(1, args.epochs + 1):
    task_loss, align_loss = train()
    train_acc, val_acc, tmp_test_acc = test()
    if val_acc > best_val_acc:
        best_val_acc, test_acc = val_acc, tmp_test_acc
    if epoch % 20 == 0 or epoch == args.epochs:
        print(f'Epoch: {epoch:03d}, Loss: {task_loss:.4f}, '
              f'Alignment: {align_loss:.4f}, Train: {train_acc:.4f}, '
              f'Val: {val_acc:.4f}, Test: {tmp_test_acc:.4f}')
print(f'Best validation accuracy: {best_val_acc:.4f}, test accuracy at it: '
      f'{test_acc:.4f} ({time.perf_counter() - start:.1f}s)')
