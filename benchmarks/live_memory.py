"""Exact peak of live torch tensor bytes during a call, on any device.

``LiveBytes`` is a ``TorchDispatchMode``: every op output tensor is mapped to its
storage (keyed by the storage's ``StorageImpl`` address, so views share one entry and
meta tensors work too). A storage counts, with ``storage.nbytes()``, when it first
appears as an output and does not alias any of the op's tensor inputs; storages that
existed before the window (inputs, parameters, in-place and ``out=`` targets) never
count. A weak reference on the storage's Python object reports its death: torch keeps
that object alive for exactly as long as the ``StorageImpl`` (PyObject preservation),
whoever holds it (tensors, views, autograd's saved tensors, ``.grad``).

Only op outputs are seen: scratch that a C++ kernel allocates and frees internally is
not, whereas the profiler's allocator events include it. Autograd's backward runs
inside the mode (it inherits the thread's dispatch modes), so its tensors count.
"""

from __future__ import annotations

import collections
import threading
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


def _storages(tree):
    """The untyped storages of the strided tensors in ``tree`` (sparse etc. have none)."""
    return [x.untyped_storage() for x in tree_flatten(tree)[0]
            if isinstance(x, torch.Tensor) and x.layout == torch.strided]


class LiveBytes(TorchDispatchMode):
    """Context manager: ``.current`` and ``.peak`` are bytes of storages created inside it."""

    def __init__(self):
        super().__init__()
        self.peak = 0
        self._current = 0
        self._live = {}  # StorageImpl address -> [nbytes, weakref to the storage]
        # Deaths are queued by the weakref callbacks (from any thread, possibly in the middle
        # of an update) and applied before the next allocation is counted: the peak can only
        # rise at an allocation, so it stays exact, and no update is ever interleaved.
        self._dead = collections.deque()
        self._lock = threading.Lock()

    @property
    def current(self) -> int:
        with self._lock:
            self._drain()
            return self._current

    def _drain(self):
        while self._dead:
            self._current -= self._live.pop(self._dead.popleft())[0]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = {s._cdata for s in _storages((args, kwargs))}
        out = func(*args, **kwargs)
        with self._lock:
            self._drain()
            for storage in _storages(out):
                key, nbytes = storage._cdata, storage.nbytes()
                entry = self._live.get(key)
                if entry is not None:  # an in-window storage seen again: count a resize
                    self._current += nbytes - entry[0]
                    entry[0] = nbytes
                elif key not in inputs:
                    ref = weakref.ref(storage, lambda _, key=key, dead=self._dead: dead.append(key))
                    self._live[key] = [nbytes, ref]
                    self._current += nbytes
            self.peak = max(self.peak, self._current)
        return out


def peak_live_bytes(fn) -> int:
    """Run ``fn()`` and return the peak of live bytes of the storages it created."""
    with LiveBytes() as live:
        fn()
    return live.peak


__all__ = ["LiveBytes", "peak_live_bytes"]
