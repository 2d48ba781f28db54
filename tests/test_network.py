import math

import pytest
import torch
from torch import nn

from scoredenoise.network import PRESETS, UNetConfig, build_network, network_info


@pytest.mark.parametrize("dims, shape", [(2, (1, 2, 37, 45)), (3, (2, 1, 9, 21, 18))])
def test_any_size_and_channels(dims, shape):
    net = build_network("small", dims=dims, channels=shape[1])
    assert net(torch.randn(shape)).shape == shape


def test_flops_match_a_direct_count_by_hooks():
    """FLOPs per pixel from the layer formula equal a count over the actual conv calls."""
    for dims in (2, 3):
        net = build_network("small", dims=dims)
        macs = []

        def hook(mod, inp, out, macs=macs):
            k = math.prod(mod.kernel_size)
            macs.append(out.numel() * mod.in_channels * k)

        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                m.register_forward_hook(hook)
        shape = (1, 1) + (32,) * dims
        net(torch.zeros(shape))
        per_pixel = 2 * sum(macs) / 32 ** dims
        assert network_info(net)["flops_per_pixel"] == pytest.approx(per_pixel, rel=1e-9)


def test_receptive_field_bound():
    net = build_network("small")
    r = network_info(net)["receptive_field_radius"]
    x = torch.zeros(1, 1, 128, 128, requires_grad=True)
    net(x)[0, 0, 64, 64].backward()
    nz = (x.grad[0, 0].abs() > 0).nonzero()
    assert (64 - nz.min(0).values).max() <= r and (nz.max(0).values - 64).max() <= r


def test_presets_grow():
    p = [network_info(build_network(k))["parameters"] for k in ("small", "default", "large")]
    assert p[0] < p[1] < p[2]
    assert set(PRESETS) == {"small", "default", "large"}


def test_bad_config():
    with pytest.raises(ValueError, match="dims must be 2 or 3, got 4"):
        UNetConfig(dims=4)
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        build_network("huge")


def test_sigma_conditioned_network_takes_sigma_per_sample():
    net = build_network("small", sigma_input=True).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        both = net(x, torch.tensor([0.02, 0.2]))
        one = net(x[:1], 0.02)
        other = net(x[1:], 0.2)
    torch.testing.assert_close(both, torch.cat([one, other]))
    assert not torch.allclose(net(x[:1], 0.02), net(x[:1], 0.2))  # sigma changes the output
    with pytest.raises(ValueError, match="needs sigma"):
        net(x)
    with pytest.raises(ValueError, match="sigma_a must be > 0"):
        net(x, 0.0)
    with pytest.raises(ValueError, match="not sigma-conditioned; drop sigma"):
        build_network("small")(x, 0.1)
    # the sigma channel costs one more input channel of the first convolution; the
    # modulation a 1 -> 32 -> 32 embedding and a (scale, shift) head per block
    blocks = [16, 32, 64, 32, 16]
    extra = 16 * 9 + (32 + 32) + (32 * 32 + 32) + sum(2 * w * 32 + 2 * w for w in blocks)
    assert network_info(net)["parameters"] - network_info(build_network("small"))[
        "parameters"] == extra
    old = build_network("small", sigma_input=True, sigma_modulation=False)
    assert old.modulation is None and network_info(old)["parameters"] - network_info(
        build_network("small"))["parameters"] == 16 * 9
