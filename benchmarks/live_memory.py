"""Exact peak of the live bytes of torch tensor storages created during a call, on any device.

``LiveBytes`` is a ``TorchDispatchMode``. Each op output tensor is mapped to its untyped
storage, keyed by the address of its ``StorageImpl``: views share one entry, and meta
tensors (whose data pointers are all 0) work too. A storage counts, with
``storage.nbytes()``, when it first appears as an output without being one of the op's
inputs. So storages that existed before the window never count: inputs, parameters, and
the targets of in-place and ``out=`` ops.

A storage's death is reported by a weak reference on its Python object. Torch keeps that
object alive exactly as long as the ``StorageImpl`` (PyObject preservation), whoever
holds it: tensors, views, autograd's saved tensors, ``.grad``.

Autograd's backward inherits the thread's dispatch modes, so its tensors count too. Only
op outputs are seen. Scratch that a kernel allocates and frees before returning is not
(a C++ kernel's workspace, or the body of a Python custom op called below autograd),
whereas the profiler's allocator events include it.
"""

from __future__ import annotations

import collections
import threading
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


def _storages(tree):
    """The untyped storages in ``tree``: of its strided tensors, and those passed as storages."""
    leaves = tree_flatten(tree)[0]
    return ([x.untyped_storage() for x in leaves if isinstance(x, torch.Tensor) and x.layout == torch.strided]
            + [x for x in leaves if isinstance(x, torch.UntypedStorage)])


class LiveBytes(TorchDispatchMode):
    """Context manager: ``.current`` and ``.peak`` are bytes of the storages created inside it."""

    def __init__(self):
        super().__init__()
        self.peak = 0
        self._current = 0
        self._live = {}  # StorageImpl address -> [nbytes, weak reference to the storage]
        # Weakref callbacks (from any thread, maybe in the middle of an update) only queue the
        # death; it is applied before the next output is counted. The peak can only rise at an
        # output, so it stays exact, and only the lock holder ever changes the counts.
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
        # torch.tensor() and list indices build a tensor outside dispatch and hand it to
        # lift_fresh. It is new unless its memory is borrowed (from_numpy, frombuffer): a
        # borrowed storage is the kind that cannot be resized.
        if func is torch.ops.aten.lift_fresh.default and args[0].untyped_storage().resizable():
            inputs = set()
        out = func(*args, **kwargs)
        with self._lock:
            # Deaths first: a dead storage's address may already belong to a new one.
            self._drain()
            for storage in _storages(out):
                key, nbytes = storage._cdata, storage.nbytes()
                entry = self._live.get(key)
                if entry is not None:  # seen before in the window: count a resize
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
