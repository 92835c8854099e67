"""Token-wise Linear Modulation (TLM), FUSAR-GPT §3.2, Eq. 4–11.

Each prior vector ``v_i`` (an AlphaEarth embedding at an anchor-grid node) is mapped by a
two-layer SiLU MLP to a per-channel scale and shift ``(γ_i, β_i)`` (Eq. 4–5). The sparse
parameters are spread over the merged visual-token grid with Gaussian weights centred on
each node's grid position, normalised over the valid priors at every cell (Eq. 6–10), and
applied as ``x' = x ⊙ (1 + γ) + β`` (Eq. 11).

The last MLP layer starts at zero, so an untrained TLM is exactly the identity; so is a
TLM whose image has no valid prior (every Gaussian weight is masked to zero).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

# Marks a layer that must start at zero; sarvlm models re-zero it whenever transformers
# (re-)initialises weights (post_init, from_pretrained of a stock checkpoint).
ZERO_INIT_ATTR = "_sarvlm_zero_init"


def gaussian_weights(
    positions: torch.Tensor, mask: torch.Tensor | None, grid_hw: tuple[int, int], sigma: float, eps: float
) -> torch.Tensor:
    """Normalised interpolation weights ``W`` of Eq. 6–9, transposed to ``(B, H·W, S)``.

    ``positions`` is ``(B, S, 2)`` holding ``(y, x)`` in [0, 1]; ``mask`` ``(B, S)`` marks valid
    priors. Row ``k = h·W + w`` holds the weights of every prior at grid cell ``(h, w)``;
    it sums to just under 1 (the ``eps`` of Eq. 8), or to 0 when no prior is valid.
    """
    height, width = grid_hw
    pos = positions.float()
    y = pos[..., 0] * (height - 1)  # Eq. 6
    x = pos[..., 1] * (width - 1)
    rows = torch.arange(height, device=pos.device, dtype=pos.dtype)
    cols = torch.arange(width, device=pos.device, dtype=pos.dtype)
    # The Gaussian of Eq. 7 is separable: exp(-(dy²+dx²)/2σ²) = exp(-dy²/2σ²)·exp(-dx²/2σ²).
    gy = torch.exp(-((rows[None, :, None] - y[:, None, :]) ** 2) / (2 * sigma**2))  # (B, H, S)
    gx = torch.exp(-((cols[None, :, None] - x[:, None, :]) ** 2) / (2 * sigma**2))  # (B, W, S)
    raw = (gy[:, :, None, :] * gx[:, None, :, :]).reshape(pos.shape[0], height * width, -1)
    if mask is not None:
        raw = raw * mask[:, None, :].to(raw.dtype)
    return raw / (raw.sum(dim=-1, keepdim=True) + eps)  # Eq. 8


class TLM(nn.Module):
    """FUSAR-GPT's Token-wise Linear Modulation of visual tokens by geospatial priors.

    Args:
        prior_dim: D, the prior vector size (64 for AlphaEarth).
        channels: C, the visual token size (the LLM hidden size for Qwen-VL merged tokens).
        hidden: h, the MLP hidden size.
        sigma: Gaussian width in merged-grid cells.
        eps: the ε of the weight normalisation (Eq. 8).
    """

    def __init__(
        self, prior_dim: int = 64, channels: int = 3584, hidden: int = 256, sigma: float = 1.0, eps: float = 1e-6
    ) -> None:
        super().__init__()
        if sigma <= 0:
            raise ValueError(f"TLM sigma must be > 0, got {sigma}")
        self.prior_dim = prior_dim
        self.channels = channels
        self.hidden = hidden
        self.sigma = float(sigma)
        self.eps = float(eps)
        self.mlp = nn.Sequential(nn.Linear(prior_dim, hidden), nn.SiLU(), nn.Linear(hidden, 2 * channels))
        self.reset_identity()

    def reset_identity(self) -> None:
        """Zero the last layer so the module starts as the identity (first layer keeps its init)."""
        last = cast(nn.Linear, self.mlp[2])
        setattr(last, ZERO_INIT_ATTR, True)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def prior_params(self, priors: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``[Γ | B]`` of Eq. 4-5 as one ``(B, S, 2C)`` tensor; invalid priors are zeroed first."""
        if mask is not None:
            priors = priors.masked_fill(~mask[..., None], 0.0)
        return self.mlp(priors.to(cast(nn.Linear, self.mlp[0]).weight.dtype))

    def modulation(self, priors: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Γ, B)`` of Eq. 4-5: ``(B, S, C)`` each (e.g. to inspect what each anchor does)."""
        gamma_beta = self.prior_params(priors, mask)
        return gamma_beta[..., : self.channels], gamma_beta[..., self.channels :]

    def forward(
        self,
        x: torch.Tensor,
        grid_hw: tuple[int, int],
        priors: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Modulate visual tokens.

        Args:
            x: ``(B, H·W, C)`` tokens in raster order over the ``(H, W)`` grid; ``(B, t·H·W, C)``
                for a temporal grid (each temporal slice gets the same field).
            grid_hw: ``(H, W)`` of the merged token grid.
            priors: ``(B, S, D)`` prior vectors.
            positions: ``(B, S, 2)`` ``(y, x)`` in [0, 1] relative to the image.
            mask: ``(B, S)`` bool, True = valid. ``None`` = all valid.

        Returns:
            ``(B, N, C)`` modulated tokens, same dtype as ``x``.
        """
        height, width = int(grid_hw[0]), int(grid_hw[1])
        batch, n_tokens, channels = x.shape
        if channels != self.channels:
            raise ValueError(f"TLM expects {self.channels} channels, got {channels}")
        if n_tokens % (height * width):
            raise ValueError(f"TLM: {n_tokens} tokens are not a multiple of the {height}x{width} grid")
        if priors.shape[1] == 0:
            return x
        gamma_beta = self.prior_params(priors, mask)  # Eq. 4-5: (B, S, 2C)
        weights = gaussian_weights(positions, mask, (height, width), self.sigma, self.eps).to(gamma_beta.dtype)
        field = weights @ gamma_beta  # Eq. 10, Γ_hw and B_hw in one product: (B, H·W, 2C)
        slices = n_tokens // (height * width)
        if slices > 1:
            field = field.repeat(1, slices, 1)
        gamma_hw, beta_hw = field.to(x.dtype).split(self.channels, dim=-1)
        # Eq. 11 as x + β + x·γ: one fused pass, and exactly x where γ = β = 0.
        return torch.addcmul(x + beta_hw, x, gamma_hw)

    def extra_repr(self) -> str:
        return f"prior_dim={self.prior_dim}, channels={self.channels}, hidden={self.hidden}, sigma={self.sigma}, eps={self.eps}"
