"""The live-bytes counter is exact: each expected value is derived from the tensors' sizes."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from benchmarks.live_memory import LiveBytes, peak_live_bytes  # noqa: E402


def test_a_new_tensor_counts_its_storage_bytes():
    # 1000*1000 float32 = 4,000,000 bytes.
    assert peak_live_bytes(lambda: torch.empty(1000, 1000)) == 4_000_000


def test_a_freed_tensor_leaves_the_count():
    with LiveBytes() as live:
        a = torch.empty(1000, 1000)
        del a
        b = torch.empty(1000, 1000)
        # Only one 4,000,000-byte tensor is ever alive at a time.
        assert live.current == 4_000_000
        del b
    assert live.peak == 4_000_000 and live.current == 0


def test_inputs_views_and_in_place_ops_do_not_count():
    x = torch.randn(100, 100)
    with LiveBytes() as live:
        # Views share x's storage, in-place ops return it, and x existed before: 0 bytes.
        x[1:].t().reshape(-1)
        x.mul_(2).add_(1)
        y = x.exp()  # 100*100 float32 = 40,000 bytes
        y[::2].exp_()  # a view of y, changed in place: nothing new
    assert live.peak == 40_000


def test_python_data_counts_unless_its_memory_is_borrowed():
    numpy = pytest.importorskip("numpy")
    array = numpy.ones(1000, dtype=numpy.float32)
    # 3 float32 = 12 bytes, built by torch; from_numpy shares the array's memory: 0 bytes.
    assert peak_live_bytes(lambda: torch.tensor([1.0, 2.0, 3.0])) == 12
    assert peak_live_bytes(lambda: torch.from_numpy(array)) == 0


def test_a_storage_lives_as_long_as_autograd_saves_it():
    x = torch.randn(1000, requires_grad=True)
    with LiveBytes() as live:
        y = x.exp()  # 1000 float32 = 4,000 bytes, saved by ExpBackward
        z = y.sum()  # 4 bytes
        del y
        assert live.current == 4_004
        del z  # frees the graph, and with it the saved result
        assert live.current == 0


def test_backward_counts_and_the_grad_stays_at_the_end():
    x = torch.randn(1000, requires_grad=True)
    with LiveBytes() as live:
        x.exp().sum().backward()
    # Peak while ExpBackward multiplies: the saved exp (4,000) + the loss (4) + the ones seed
    # (4) + the new gradient (4,000) = 8,008. Only x.grad (4,000) is left.
    assert live.peak == 8_008 and live.current == 4_000


def test_cross_entropy_forward_backward():
    logits = torch.randn(64, 10, requires_grad=True)
    target = torch.randint(0, 10, (64,))
    with LiveBytes() as live:
        torch.nn.functional.cross_entropy(logits, target).backward()
    # 64*10 float32 = 2,560 bytes. Peak in _log_softmax_backward_data: the saved log_softmax,
    # its gradient and the logits' gradient (3 * 2,560) + the loss and the seed (2 * 4) = 7,688.
    assert live.peak == 7_688 and live.current == 2_560


def test_meta_tensors_count_by_storage():
    with LiveBytes() as live:
        a = torch.empty(1000, 1000, device="meta")  # 4,000,000 bytes, data pointer 0
        b = a @ a  # another 4,000,000
        b.view(-1)
    assert live.peak == 8_000_000


def test_a_resize_inside_the_window_counts():
    a, b = torch.randn(10, 20), torch.randn(20, 30)
    # mm resizes the empty out= target to 10*30 float32 = 1,200 bytes.
    assert peak_live_bytes(lambda: torch.mm(a, b, out=torch.empty(0))) == 1_200
