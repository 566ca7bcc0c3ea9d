"""Eval-mode caching of expanded filters."""

from __future__ import annotations

import torch
from torch import nn


class CachedFilter(nn.Module):
    """Base for layers whose conv filter is a function of their own parameters and buffers.

    ``filter()`` rebuilds the filter with ``build_filter()`` while training or whenever
    autograd is recording. In eval mode under ``torch.no_grad()`` it reuses a detached copy
    while every parameter and buffer of the layer (its submodules included: the kernels of a
    mixed layer, the ``theta`` of constraint relaxation) still holds the values the copy was
    built from. Identity, storage, dtype, device, shape and version counter are compared
    first, then the values of the parameters and persistent buffers against a snapshot:
    in-place edits through ``.data`` do not bump the version counter, so versions alone
    would serve stale filters. Derived index tables (non-persistent buffers) are keyed by
    identity, storage and version only.
    The cache and the snapshot are plain attributes: they never enter ``state_dict`` and keep
    no autograd graph. Under ``torch.compile`` the filter is always rebuilt.
    """

    def __init__(self) -> None:
        super().__init__()
        self._filter_cache: torch.Tensor | None = None
        self._filter_key: tuple | None = None
        self._filter_inputs: tuple[torch.Tensor, ...] = ()

    def build_filter(self) -> torch.Tensor:
        raise NotImplementedError

    def _filter_tensors(self) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """What the filter may depend on, recursively: ``(values, tables)``. ``values`` are the
        parameters and persistent buffers (compared by value); ``tables`` are the derived
        non-persistent index tables (compared by identity, storage and version only)."""
        values: list[torch.Tensor] = list(self.parameters())
        tables: list[torch.Tensor] = []
        for module in self.modules():
            for name, buffer in module.named_buffers(recurse=False):
                if buffer is not None:
                    (tables if name in module._non_persistent_buffers_set else values).append(buffer)
        return tuple(values), tuple(tables)

    @staticmethod
    def _tensor_key(tensors: tuple[torch.Tensor, ...]) -> tuple:
        return tuple(
            (id(t), t.data_ptr(), t.dtype, t.device, tuple(t.shape), t.stride(), t._version) for t in tensors
        )

    def _cache_is_valid(self, values: tuple[torch.Tensor, ...], tables: tuple[torch.Tensor, ...]) -> bool:
        if self._filter_cache is None or self._filter_key != self._tensor_key((*values, *tables)):
            return False
        return all(torch.equal(t, saved) for t, saved in zip(values, self._filter_inputs, strict=True))

    def _drop_cache(self) -> None:
        self._filter_cache = self._filter_key = None
        self._filter_inputs = ()

    def filter(self) -> torch.Tensor:
        if self.training or torch.is_grad_enabled() or torch.compiler.is_compiling():
            self._drop_cache()
            return self.build_filter()
        values, tables = self._filter_tensors()
        if self._filter_cache is not None and self._cache_is_valid(values, tables):
            return self._filter_cache
        self._drop_cache()
        filt = self.build_filter().detach()
        self._filter_inputs = tuple(t.detach().clone() for t in values)
        self._filter_key = self._tensor_key((*values, *tables))
        self._filter_cache = filt
        return filt
