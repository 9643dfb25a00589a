"""The CPU convolution path in training: a batch of one that needs gradients (modeling.common.conv3d)."""
from __future__ import annotations

import torch
from torch.profiler import ProfilerActivity, profile

from ctsam3d_nb.modeling.common import conv3d


def _conv_batches(fn) -> list[int]:
    """Batch sizes of the oneDNN convolutions ``fn`` runs."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    return [e.input_shapes[0][0] for e in prof.events() if e.name == "aten::mkldnn_convolution"]


def test_a_batch_of_one_that_needs_gradients_runs_as_two_with_the_same_result(monkeypatch):
    """oneDNN's backward of a batch of one took 2-10x as long as that of two for the CPP net's narrow convs
    (docs/benchmarks.md, session 23): with gradients, conv3d runs a zero sample beside it, which must change neither
    the output nor any gradient; without gradients (every click) it runs the batch of one as it is."""
    from ctsam3d_nb.modeling import common

    g = torch.Generator().manual_seed(7)
    x = torch.rand(1, 4, 16, 16, 16, generator=g).requires_grad_()
    w = (torch.randn(1, 4, 3, 3, 3, generator=g) * 0.1).requires_grad_()
    bias = torch.randn(1, generator=g).requires_grad_()
    grad_out = torch.randn(1, 1, 16, 16, 16, generator=g)
    results = {}
    for pad in (True, False):
        monkeypatch.setattr(common, "_PAD_SINGLE_FOR_BACKWARD", pad)
        holder = {}
        batches = _conv_batches(lambda: holder.update(out=conv3d(x, w, bias, 1, 1)))
        results[pad] = (holder["out"], torch.autograd.grad(holder["out"], (x, w, bias), grad_out), batches)
    (out, grads, batches), (out1, grads1, batches1) = results[True], results[False]
    assert batches == [2] and batches1 == [1]
    assert out.shape == (1, 1, 16, 16, 16) and torch.allclose(out, out1, atol=1e-6, rtol=1e-5)
    for a, b in zip(grads, grads1):
        assert torch.allclose(a, b, atol=1e-6 * max(1.0, b.abs().max().item()), rtol=1e-5)
    with torch.no_grad():
        assert _conv_batches(lambda: conv3d(x, w, bias, 1, 1)) == [1]
    with torch.inference_mode():  # as PatchModel runs every click
        assert _conv_batches(lambda: conv3d(x, w, bias, 1, 1)) == [1]
    assert _conv_batches(lambda: conv3d(x.detach(), w.detach(), bias.detach(), 1, 1)) == [1]
