"""Ways to fuse geospatial priors into visual tokens: FUSAR-GPT's TLM and the Fig. 7 / Table 6 ablations.

- ``tlm``: Token-wise Linear Modulation (:class:`sarvlm.models.tlm.TLM`), ``x ⊙ (1 + γ) + β``.
- ``sum``: each prior is projected to ``C`` and spread over the grid with the same normalised
  Gaussian weights as TLM, then added: ``x + Wᵀ·P(V)``.
- ``concat``: each prior is projected to ``C`` and becomes one extra token appended after the
  image's visual tokens (the processor reserves ``S`` placeholder tokens per image).
- ``none``: priors are ignored (the stock backbone; the "Base" column of Table 6).

Every fusion has the call signature of :class:`TLM` ``(x, grid_hw, priors, positions, mask)``
and starts as the identity on the visual tokens (zero-initialised output layer), except
``concat``, whose appended tokens change the sequence by construction.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from sarvlm.core.errors import ConfigurationError
from sarvlm.models.tlm import TLM, ZERO_INIT_ATTR, gaussian_weights

FUSIONS = ("tlm", "sum", "concat", "none")


def _prior_mlp(prior_dim: int, hidden: int, channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(prior_dim, hidden), nn.SiLU(), nn.Linear(hidden, channels))


class SumFusion(nn.Module):
    """Additive fusion: project priors to ``C``, interpolate with TLM's Gaussian weights, add."""

    appends_tokens = False

    def __init__(self, prior_dim: int, channels: int, hidden: int = 256, sigma: float = 1.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.channels, self.sigma, self.eps = channels, float(sigma), float(eps)
        self.mlp = _prior_mlp(prior_dim, hidden, channels)
        self.reset_identity()

    def reset_identity(self) -> None:
        last = cast(nn.Linear, self.mlp[2])
        setattr(last, ZERO_INIT_ATTR, True)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(
        self,
        x: torch.Tensor,
        grid_hw: tuple[int, int],
        priors: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        height, width = int(grid_hw[0]), int(grid_hw[1])
        if priors.shape[1] == 0:
            return x
        if mask is not None:
            priors = priors.masked_fill(~mask[..., None], 0.0)
        projected = self.mlp(priors.to(cast(nn.Linear, self.mlp[0]).weight.dtype))
        field = gaussian_weights(positions, mask, (height, width), self.sigma, self.eps).to(projected.dtype) @ projected
        slices = x.shape[1] // (height * width)
        if slices > 1:
            field = field.repeat(1, slices, 1)
        return (x + field.to(x.dtype)).to(x.dtype)


class ConcatFusion(nn.Module):
    """Token concatenation: each prior becomes one extra token after its image's visual tokens.

    The visual tokens themselves pass through unchanged; :meth:`prior_tokens` produces the
    ``(S, C)`` tokens the model writes into the ``S`` geo placeholder positions of the image.
    Invalid priors leave their placeholder's own (learned) embedding in place.
    """

    appends_tokens = True

    def __init__(self, prior_dim: int, channels: int, hidden: int = 256, num_tokens: int = 64) -> None:
        super().__init__()
        self.channels, self.num_tokens = channels, num_tokens
        self.mlp = _prior_mlp(prior_dim, hidden, channels)

    def reset_identity(self) -> None:
        """Nothing to do: appended tokens cannot be an identity; the default init is kept."""

    def prior_tokens(self, priors: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``(B, S, C)`` projected prior tokens (rows of invalid priors are projected from zeros)."""
        if mask is not None:
            priors = priors.masked_fill(~mask[..., None], 0.0)
        return self.mlp(priors.to(cast(nn.Linear, self.mlp[0]).weight.dtype))

    def forward(
        self,
        x: torch.Tensor,
        grid_hw: tuple[int, int],
        priors: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return x


class NoFusion(nn.Module):
    """Ignore the priors (the stock backbone). Has no parameters."""

    appends_tokens = False

    def reset_identity(self) -> None:
        """Nothing to reset."""

    def forward(
        self,
        x: torch.Tensor,
        grid_hw: tuple[int, int],
        priors: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return x


GeoFusion = TLM | SumFusion | ConcatFusion | NoFusion


def build_fusion(
    name: str,
    *,
    prior_dim: int,
    channels: int,
    hidden: int = 256,
    sigma: float = 1.0,
    eps: float = 1e-6,
    num_tokens: int = 64,
) -> nn.Module:
    """Build a fusion module by name: ``"tlm" | "sum" | "concat" | "none"``."""
    if name == "tlm":
        return TLM(prior_dim=prior_dim, channels=channels, hidden=hidden, sigma=sigma, eps=eps)
    if name == "sum":
        return SumFusion(prior_dim, channels, hidden=hidden, sigma=sigma, eps=eps)
    if name == "concat":
        return ConcatFusion(prior_dim, channels, hidden=hidden, num_tokens=num_tokens)
    if name == "none":
        return NoFusion()
    raise ConfigurationError(f"fusion: unknown fusion {name!r} (expected one of {', '.join(FUSIONS)})")


def is_fusion_module(module: nn.Module) -> bool:
    return isinstance(module, (TLM, SumFusion, ConcatFusion, NoFusion))
