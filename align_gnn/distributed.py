r"""Several processes with :mod:`torch.distributed`, launched by
:obj:`torchrun`: the process group from torchrun's environment variables,
shards of the training nodes, and the few collectives that keep the ranks'
decisions identical. With one process every function is a no-op."""
import os
from contextlib import contextmanager
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import Tensor


def world_size() -> int:
    r"""The number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    r"""The rank of this process (0 without a process group)."""
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    r"""Whether this is rank 0, the process that prints and writes."""
    return rank() == 0


def local_rank() -> int:
    r"""The rank of this process on its machine (torchrun's
    :obj:`LOCAL_RANK`)."""
    return int(os.environ.get('LOCAL_RANK', 0))


def launched() -> bool:
    r"""Whether torchrun started several processes (:obj:`WORLD_SIZE` > 1)."""
    return int(os.environ.get('WORLD_SIZE', 1)) > 1


def init(cuda: bool):
    r"""Joins the process group torchrun describes in the environment
    (:obj:`MASTER_ADDR`, :obj:`RANK`, :obj:`WORLD_SIZE`, ...), with the
    :obj:`"nccl"` backend on GPUs and :obj:`"gloo"` on CPUs; on GPUs, this
    process uses GPU :obj:`LOCAL_RANK`."""
    if not launched() or dist.is_initialized():
        return
    if cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group('nccl' if cuda else 'gloo')


def shutdown():
    r"""Leaves the process group, if any."""
    if dist.is_initialized():
        dist.destroy_process_group()


def shard(index: Tensor) -> Tensor:
    r"""This rank's share of :obj:`index`: every :obj:`world_size()`-th
    entry from :obj:`rank()`, all shards of the same size (up to
    :obj:`world_size() - 1` trailing entries are left out), so that every
    rank runs the same number of steps."""
    size = index.numel() // world_size()
    return index[rank()::world_size()][:size]


def broadcast_object(obj: Any) -> Any:
    r""":obj:`obj` as rank 0 has it (picklable objects)."""
    if world_size() == 1:
        return obj
    objects = [obj]
    dist.broadcast_object_list(objects, src=0)
    return objects[0]


def sync_buffers(module: torch.nn.Module):
    r"""Copies rank 0's buffers (e.g. batch normalization statistics, which
    each rank updates from its own batches) to every rank."""
    if world_size() > 1:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def mean(tensor: Tensor) -> Tensor:
    r"""The mean of :obj:`tensor` over ranks."""
    if world_size() == 1:
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor)
    return tensor / world_size()


@contextmanager
def main_first() -> Iterator[None]:
    r"""Runs the block on rank 0 first and on the other ranks after it, e.g.
    to let one process write a data set's processed files."""
    if not is_main():
        dist.barrier()
    yield
    if is_main() and world_size() > 1:
        dist.barrier()
