"""``lossy_torch.AdaptiveLogSoftmaxWithLoss``: torch's module (parameters, names, shapes and
initialisation identical, so ``load_state_dict`` from torch's module works), computed by
``lossy_core.adaptive_log_softmax_with_loss`` / ``adaptive_log_prob``."""

from __future__ import annotations

from collections import namedtuple

import torch
from torch import nn

import lossy_core

_ASMoutput = namedtuple("_ASMoutput", ["output", "loss"])


class AdaptiveLogSoftmaxWithLoss(nn.Module):
    """Drop-in for ``torch.nn.AdaptiveLogSoftmaxWithLoss``.

    ``head`` is ``Linear(in_features, cutoffs[0] + n_clusters, bias=head_bias)``; ``tail[i]`` is
    ``Sequential(Linear(in_features, in_features // div_value ** (i + 1), bias=False),
    Linear(that, cluster size, bias=False))``. ``forward(input, target)`` returns
    ``(output, loss)``; see ``lossy_core.adaptive_log_softmax_with_loss``.
    """

    def __init__(self, in_features, n_classes, cutoffs, div_value=4.0, head_bias=False, device=None, dtype=None):
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        cutoffs = list(cutoffs)
        if len(cutoffs) == 0:
            raise ValueError("cutoffs should be a sequence of length larger than 0")
        if (cutoffs != sorted(cutoffs) or min(cutoffs) <= 0 or max(cutoffs) > (n_classes - 1)
                or len(set(cutoffs)) != len(cutoffs) or any(int(c) != c for c in cutoffs)):
            raise ValueError("cutoffs should be a sequence of unique, positive integers sorted in an increasing "
                             "order, where each value is between 1 and n_classes-1")
        self.in_features = in_features
        self.n_classes = n_classes
        self.cutoffs = cutoffs + [n_classes]
        self.div_value = div_value
        self.head_bias = head_bias
        self.shortlist_size = self.cutoffs[0]
        self.n_clusters = len(self.cutoffs) - 1
        self.head_size = self.shortlist_size + self.n_clusters
        self.head = nn.Linear(self.in_features, self.head_size, bias=self.head_bias, **factory_kwargs)
        self.tail = nn.ModuleList()
        for i in range(self.n_clusters):
            hsz = int(self.in_features // (self.div_value ** (i + 1)))
            osz = self.cutoffs[i + 1] - self.cutoffs[i]
            self.tail.append(nn.Sequential(
                nn.Linear(self.in_features, hsz, bias=False, **factory_kwargs),
                nn.Linear(hsz, osz, bias=False, **factory_kwargs),
            ))

    def reset_parameters(self) -> None:
        self.head.reset_parameters()
        for i2h, h2o in self.tail:
            i2h.reset_parameters()
            h2o.reset_parameters()

    def _weights(self):
        return ([(i2h.weight, h2o.weight) for i2h, h2o in self.tail],
                {"cutoffs": self.cutoffs, "head_bias": self.head.bias})

    def forward(self, input_: torch.Tensor, target_: torch.Tensor) -> _ASMoutput:
        tails, kw = self._weights()
        output, loss = lossy_core.adaptive_log_softmax_with_loss(input_, target_, self.head.weight, tails, **kw)
        return _ASMoutput(output, loss)

    def log_prob(self, input: torch.Tensor) -> torch.Tensor:
        tails, kw = self._weights()
        return lossy_core.adaptive_log_prob(input, self.head.weight, tails, **kw)

    def predict(self, input: torch.Tensor) -> torch.Tensor:
        tails, kw = self._weights()
        return lossy_core.adaptive_predict(input, self.head.weight, tails, **kw)
