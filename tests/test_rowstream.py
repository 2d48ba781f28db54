"""Row-streamed U-Net inference equals the network's own forward pass."""

import numpy as np
import pytest
import torch

import scoredenoise as sd
from scoredenoise._rowstream import band_rows, stream_forward
from scoredenoise.network import build_network


def _net(dims=2, preset="default", channels=1, seed=0):
    torch.manual_seed(seed)
    net = build_network(preset, dims=dims, channels=channels).eval()
    # random biases, so that zero padding at the edges differs from a zero row in the data
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim == 1:
                p.normal_(0, 0.1)
    return net


@pytest.mark.parametrize("shape, rows", [
    ((1, 1, 64, 64), 8),          # many bands
    ((1, 1, 100, 77), 16),        # padded to the pooling grid in both axes
    ((2, 1, 131, 50), 24),        # a batch, an odd height
    ((1, 1, 40, 48), 64),         # one band holds the whole image
    ((1, 1, 9, 30), 8),           # fewer rows than the receptive field
])
def test_streamed_pass_equals_whole_pass_2d(shape, rows):
    net = _net()
    x = torch.randn(shape) * 3 + 1
    with torch.inference_mode():
        whole = net(x)
        streamed = stream_forward(net, x, rows=rows)
    assert streamed.shape == whole.shape
    torch.testing.assert_close(streamed, whole, rtol=1e-5, atol=1e-5)


def test_streamed_pass_equals_whole_pass_channels_last_multichannel():
    net = _net(preset="small", channels=2).to(memory_format=torch.channels_last)
    x = torch.randn(1, 2, 72, 90).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        torch.testing.assert_close(stream_forward(net, x, rows=8), net(x), rtol=1e-5,
                                   atol=1e-5)


def test_streamed_pass_equals_whole_pass_3d():
    net = _net(dims=3, preset="small")
    x = torch.randn(1, 1, 21, 18, 20)
    with torch.inference_mode():
        torch.testing.assert_close(stream_forward(net, x, rows=4), net(x), rtol=1e-5,
                                   atol=1e-5)


def test_streamed_pass_in_bf16_matches_fp32():
    net = _net().to(memory_format=torch.channels_last)
    x = torch.randn(1, 1, 96, 64).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        ref = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            s = stream_forward(net, x, rows=16).float()
    assert torch.abs(s - ref).max() < 0.05 * torch.abs(ref).max()


def test_progress_is_reported_per_band():
    net = _net(preset="small")
    seen = []
    with torch.inference_mode():
        stream_forward(net, torch.randn(1, 1, 64, 32), rows=16,
                       progress=lambda d, t: seen.append((d, t)))
    assert seen == [(16, 64), (32, 64), (48, 64), (64, 64)]


def test_band_rows_target_and_grid():
    assert band_rows(2048, 8) == 32  # 64 k pixels per band
    assert band_rows(100_000, 8) == 8  # at least the pooling grid
    assert band_rows(10, 4) % 4 == 0


def test_predict_streams_on_the_cpu_without_calling_the_whole_network():
    """On the CPU a 2-D image goes through the streamed pass (the network's forward, which
    would hold every activation of the whole image at once, is never called), with the
    same result as the whole-image pass and progress per band."""
    m = sd.ScoreModel(_net(preset="small"), offset=[10.0], scale=[100.0],
                      meta={"sigma_a_final": 0.01})
    y = np.random.default_rng(0).uniform(0, 100, (300, 700)).astype(np.float32)
    calls, steps = [], []
    h = m.network.register_forward_hook(lambda *a: calls.append(1))
    s = m.predict(y, device="cpu", progress=lambda d, t: steps.append((d, t)))
    h.remove()
    assert not calls
    assert len(steps) > 2 and steps[-1][0] == steps[-1][1]
    strips = m.predict(y, device="cpu", tile=64)  # also streamed, in strips along X
    np.testing.assert_allclose(s, strips, rtol=1e-4, atol=1e-4 * np.abs(s).max())
    with torch.inference_mode():
        t = torch.from_numpy(((y - m.offset[0]) / m.scale[0]).astype(np.float32))[None, None]
        direct = m.network(t)[0, 0].numpy() / (m.scale[0] * sd.model.SCORE_OUTPUT_SCALE)
    np.testing.assert_allclose(s, direct, rtol=1e-4, atol=1e-4 * np.abs(s).max())


def test_one_streamed_image_can_be_cancelled_between_bands():
    m = sd.ScoreModel(_net(preset="small"), offset=[10.0], scale=[100.0],
                      meta={"sigma_a_final": 0.01})
    with pytest.raises(sd.Cancelled, match="cancelled after 2 of 4"):  # 128-row bands
        m.score(np.ones((512, 512), np.float32), device="cpu", progress=lambda d, t: d < 2)


def test_streamed_pass_of_a_sigma_conditioned_network():
    torch.manual_seed(0)
    net = build_network("small", sigma_input=True).eval()
    assert net.config.sigma_modulation
    with torch.no_grad():  # trained-like modulation (a fresh network's is the identity)
        for head in net.modulation:
            head.weight.normal_(0, 0.3)
            head.bias.normal_(0, 0.3)
    x = torch.randn(1, 1, 70, 45)
    with torch.inference_mode():
        want = net(x, 0.07)
        torch.testing.assert_close(stream_forward(net, x, rows=8, sigma=0.07), want,
                                   rtol=1e-5, atol=1e-5)
        assert not torch.allclose(net(x, 0.2), want, atol=1e-3)
