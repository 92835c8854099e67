"""TLM (FUSAR-GPT Eq. 4-11) against an independent loop implementation, identity, locality, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sarvlm.core.errors import SarvlmError
from sarvlm.models.fusion import ConcatFusion, NoFusion, SumFusion, build_fusion
from sarvlm.models.tlm import TLM


def naive_tlm(x, grid_hw, priors, positions, mask, w1, b1, w2, b2, sigma, eps):
    """Eq. 4-11 written out element by element in float64 (one image)."""
    height, width = grid_hw
    channels = x.shape[1]
    silu = lambda v: v / (1.0 + np.exp(-v))  # noqa: E731
    gammas, betas = [], []
    for v in priors:  # Eq. 4
        h = silu(w1 @ v + b1)
        gb = w2 @ h + b2
        gammas.append(gb[:channels])
        betas.append(gb[channels:])
    out = np.array(x, dtype=np.float64)
    for hh in range(height):
        for ww in range(width):
            raw = []
            for i, (y, xx) in enumerate(positions):
                ty, tx = y * (height - 1), xx * (width - 1)  # Eq. 6
                w = math.exp(-((hh - ty) ** 2 + (ww - tx) ** 2) / (2 * sigma**2))  # Eq. 7
                raw.append(w if mask[i] else 0.0)
            total = sum(raw)
            gamma = np.zeros(channels)
            beta = np.zeros(channels)
            for i, r in enumerate(raw):
                wi = r / (total + eps)  # Eq. 8
                gamma += wi * gammas[i]  # Eq. 10
                beta += wi * betas[i]
            k = hh * width + ww  # raster order
            out[k] = x[k] * (1 + gamma) + beta  # Eq. 11
    return out


def _random_tlm(channels=8, prior_dim=16, hidden=12, sigma=1.0, eps=1e-6, seed=0):
    torch.manual_seed(seed)
    tlm = TLM(prior_dim=prior_dim, channels=channels, hidden=hidden, sigma=sigma, eps=eps).double()
    torch.nn.init.normal_(tlm.mlp[2].weight, std=0.3)
    torch.nn.init.normal_(tlm.mlp[2].bias, std=0.3)
    return tlm


@pytest.mark.parametrize("grid_hw", [(1, 1), (3, 5), (6, 4), (9, 9)])
@pytest.mark.parametrize("n_priors", [1, 2, 7, 33, 100])
def test_tlm_matches_naive_loop(grid_hw, n_priors):
    rng = np.random.default_rng(n_priors * 31 + grid_hw[0] * 7 + grid_hw[1])
    sigma = float(rng.uniform(0.5, 2.0))
    tlm = _random_tlm(sigma=sigma, seed=n_priors)
    batch, channels = 2, 8
    x = torch.from_numpy(rng.normal(size=(batch, grid_hw[0] * grid_hw[1], channels)))
    priors = torch.from_numpy(rng.normal(size=(batch, n_priors, 16)))
    positions = torch.from_numpy(rng.uniform(size=(batch, n_priors, 2)))
    mask = torch.from_numpy(rng.uniform(size=(batch, n_priors)) < 0.7)
    mask[0, 0] = True
    out = tlm(x, grid_hw, priors, positions, mask).detach().numpy()
    w1, b1 = tlm.mlp[0].weight.detach().numpy(), tlm.mlp[0].bias.detach().numpy()
    w2, b2 = tlm.mlp[2].weight.detach().numpy(), tlm.mlp[2].bias.detach().numpy()
    for b in range(batch):
        ref = naive_tlm(
            x[b].numpy(), grid_hw, priors[b].numpy(), positions[b].numpy(), mask[b].numpy(), w1, b1, w2, b2, sigma, 1e-6
        )
        np.testing.assert_allclose(out[b], ref, atol=1e-5, rtol=1e-5)


def test_tlm_float32_close_to_naive():
    tlm = _random_tlm(seed=3).float()
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.normal(size=(1, 20, 8)).astype(np.float32))
    pri = torch.from_numpy(rng.normal(size=(1, 5, 16)).astype(np.float32))
    pos = torch.from_numpy(rng.uniform(size=(1, 5, 2)).astype(np.float32))
    out = tlm(x, (4, 5), pri, pos).detach().numpy()[0]
    p = {k: v.detach().double().numpy() for k, v in tlm.state_dict().items()}
    ref = naive_tlm(
        x[0].numpy(),
        (4, 5),
        pri[0].numpy(),
        pos[0].numpy(),
        [True] * 5,
        p["mlp.0.weight"],
        p["mlp.0.bias"],
        p["mlp.2.weight"],
        p["mlp.2.bias"],
        1.0,
        1e-6,
    )
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-4)


def test_identity_at_init_and_without_valid_priors():
    torch.manual_seed(0)
    tlm = TLM(prior_dim=64, channels=32, hidden=16)
    x = torch.randn(3, 24, 32)
    priors, pos = torch.randn(3, 10, 64), torch.rand(3, 10, 2)
    assert torch.equal(tlm(x, (4, 6), priors, pos), x)  # zero-initialised output layer
    torch.nn.init.normal_(tlm.mlp[2].weight)
    torch.nn.init.normal_(tlm.mlp[2].bias)
    mask = torch.zeros(3, 10, dtype=torch.bool)
    mask[1, 3] = True
    priors[0, 2] = float("nan")  # invalid slots may hold anything
    out = tlm(x, (4, 6), priors, pos, mask)
    assert torch.equal(out[0], x[0]) and torch.equal(out[2], x[2])
    assert not torch.equal(out[1], x[1])
    assert torch.equal(tlm(x, (4, 6), priors[:, :0], pos[:, :0]), x)  # S = 0


def test_temporal_slices_share_the_field():
    tlm = _random_tlm(seed=5)
    x = torch.randn(1, 2 * 12, 8, dtype=torch.float64)
    pri, pos = torch.randn(1, 4, 16, dtype=torch.float64), torch.rand(1, 4, 2, dtype=torch.float64)
    out = tlm(x, (3, 4), pri, pos)
    first = tlm(x[:, :12], (3, 4), pri, pos)
    second = tlm(x[:, 12:], (3, 4), pri, pos)
    torch.testing.assert_close(out, torch.cat([first, second], dim=1))
    with pytest.raises(ValueError, match="not a multiple"):
        tlm(torch.randn(1, 13, 8, dtype=torch.float64), (3, 4), pri, pos)


def test_gaussian_locality():
    """Moving one prior of a 4x4 anchor grid changes only tokens near its old and new positions."""
    tlm = _random_tlm(sigma=1.0, seed=7)
    height, width = 16, 16
    x = torch.randn(1, height * width, 8, dtype=torch.float64)
    anchors = torch.linspace(0, 1, 4, dtype=torch.float64)
    pos = torch.stack(torch.meshgrid(anchors, anchors, indexing="ij"), -1).reshape(1, 16, 2)
    pri = torch.randn(1, 16, 16, dtype=torch.float64)
    moved = pos.clone()
    moved[0, 5] += 1.0 / 15  # node at cell (5, 5) moves to (6, 6)
    diff = (tlm(x, (height, width), pri, moved) - tlm(x, (height, width), pri, pos)).abs().amax(-1)[0]
    diff = diff.reshape(height, width)
    assert diff[5:8, 5:8].max() > 1e-2
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    far = torch.maximum((rows - 5.5).abs(), (cols - 5.5).abs()) > 7
    assert far.any() and diff[far].max() < 1e-6


def test_gradients_only_where_meant():
    torch.manual_seed(0)
    tlm = TLM(prior_dim=16, channels=8, hidden=12)
    x = torch.randn(2, 12, 8, requires_grad=True)
    pri, pos = torch.randn(2, 5, 16), torch.rand(2, 5, 2)
    mask = torch.tensor([[True] * 5, [False] * 5])
    tlm(x, (3, 4), pri, pos, mask).pow(2).sum().backward()
    # At init only the zeroed output layer learns (dL/dh = W2ᵀ·g = 0), so training starts from the identity.
    assert tlm.mlp[2].weight.grad.abs().sum() > 0 and tlm.mlp[2].bias.grad.abs().sum() > 0
    assert tlm.mlp[0].weight.grad.abs().sum() == 0
    # An image without valid priors contributes nothing to the TLM's gradient.
    tlm.zero_grad()
    tlm(x[1:], (3, 4), pri[1:], pos[1:], mask[1:]).pow(2).sum().backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in tlm.parameters())
    # After a step the first layer learns too.
    torch.nn.init.normal_(tlm.mlp[2].weight, std=0.1)
    tlm.zero_grad()
    tlm(x, (3, 4), pri, pos, mask).pow(2).sum().backward()
    assert tlm.mlp[0].weight.grad.abs().sum() > 0


def test_public_api_shape():
    tlm = TLM(prior_dim=64, channels=3584, hidden=256, sigma=1.0, eps=1e-6)
    assert isinstance(tlm.mlp, torch.nn.Sequential)
    assert [type(m).__name__ for m in tlm.mlp] == ["Linear", "SiLU", "Linear"]
    assert tlm.mlp[0].in_features == 64 and tlm.mlp[0].out_features == 256 and tlm.mlp[2].out_features == 2 * 3584


def test_sum_fusion_is_additive_with_tlm_weights():
    torch.manual_seed(1)
    fusion = SumFusion(prior_dim=16, channels=8, hidden=12, sigma=1.5).double()
    x = torch.randn(1, 20, 8, dtype=torch.float64)
    pri, pos = torch.randn(1, 6, 16, dtype=torch.float64), torch.rand(1, 6, 2, dtype=torch.float64)
    assert torch.equal(fusion(x, (4, 5), pri, pos), x)  # identity at init
    torch.nn.init.normal_(fusion.mlp[2].weight)
    tlm = TLM(prior_dim=16, channels=8, hidden=12, sigma=1.5).double()
    # A TLM whose γ is 0 and whose β is the sum fusion's projection is the sum fusion.
    with torch.no_grad():
        tlm.mlp[0].load_state_dict(fusion.mlp[0].state_dict())
        tlm.mlp[2].weight[8:] = fusion.mlp[2].weight
        tlm.mlp[2].bias[8:] = fusion.mlp[2].bias
    torch.testing.assert_close(fusion(x, (4, 5), pri, pos), tlm(x, (4, 5), pri, pos))


def test_fusion_factory():
    assert isinstance(build_fusion("tlm", prior_dim=64, channels=8), TLM)
    assert isinstance(build_fusion("sum", prior_dim=64, channels=8), SumFusion)
    concat = build_fusion("concat", prior_dim=64, channels=8, num_tokens=4)
    assert isinstance(concat, ConcatFusion) and concat.appends_tokens
    assert concat.prior_tokens(torch.randn(2, 4, 64), None).shape == (2, 4, 8)
    none = build_fusion("none", prior_dim=64, channels=8)
    assert isinstance(none, NoFusion) and not list(none.parameters())
    with pytest.raises(SarvlmError, match="unknown fusion 'film'"):
        build_fusion("film", prior_dim=64, channels=8)
