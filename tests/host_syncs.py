r"""A dispatch mode that lists the operators which would make the host wait
for a CUDA device: reads of a value (:obj:`.item()`, :obj:`bool()`) and
operators whose output size depends on the data (:obj:`nonzero`, boolean
masks, :obj:`unique`, :obj:`repeat_interleave` without its size). Used on
the CPU to show that a step could be captured as a CUDA graph."""
import traceback
from typing import Iterable, List, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
WAITING = {
    aten._local_scalar_dense.default, aten.nonzero.default,
    aten.masked_select.default, aten.equal.default, aten.is_nonzero.default,
    aten._unique2.default, aten.unique_consecutive.default,
    aten.unique_dim.default, aten.repeat_interleave.Tensor,
}
INDEXING = {aten.index.Tensor, aten.index_put.default,
            aten.index_put_.default, aten._index_put_impl_.default}


class HostSyncs(TorchDispatchMode):
    r"""Within, :attr:`found` collects :obj:`(operator, where)` for each
    operator that waits; reads of the tensors in :obj:`host` (e.g. an
    optimizer's step counters, which CUDA keeps on the host or, capturable,
    on the device) are not counted."""
    def __init__(self, host: Iterable[torch.Tensor] = ()):
        super().__init__()
        self.host = {id(tensor) for tensor in host}
        self.found: List[Tuple[str, str]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self._waits(func, args, kwargs):
            where = [line for line in traceback.format_stack(limit=20)
                     if '/torch/' not in line.split(',')[0]]
            self.found.append((str(func), where[-2].strip()))
        return func(*args, **kwargs)

    def _waits(self, func, args, kwargs) -> bool:
        if func is aten._local_scalar_dense.default:
            return id(args[0]) not in self.host
        if func is aten.repeat_interleave.Tensor:
            return kwargs.get('output_size') is None
        if func in INDEXING:
            return any(index is not None and index.dtype in (torch.bool,
                                                             torch.uint8)
                       for index in args[1])
        return func in WAITING
