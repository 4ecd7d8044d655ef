"""The acquisition function of epsilon-constrained BO with a KNOWN objective.

Derivation. Let ``c(x)`` be the known cost of configuration ``x`` (GMACs or params, exact), ``q(x)``
its unknown quality loss, and ``c*`` the cheapest cost observed among configurations feasible at
``epsilon`` (``q <= epsilon``). The utility of evaluating ``x`` is the improvement of the feasible
incumbent::

    I(x) = (c* - c(x))^+ * 1[q(x) <= epsilon]                                            (1)

Because ``c`` is deterministic, only the indicator is random. With a GP posterior on a monotone
warp ``g`` of quality, ``g(q(x)) ~ N(mu(x), sigma(x)^2)``, and ``t = g(epsilon)``::

    E[I(x)] = (c* - c(x))^+ * P(g(q(x)) <= t) = (c* - c(x))^+ * Phi((t - mu(x)) / sigma(x))   (2)

i.e. expected improvement of the known objective collapses to the deterministic improvement times
the probability of feasibility (Gardner et al. 2014 and Gelbart et al. 2014 weight EI by the same
probability; here the EI factor is exact). We rank by its logarithm, computed stably with
``log Phi = log_ndtr``::

    log a(x) = log(c* - c(x)) + log_ndtr((t - mu(x)) / sigma(x))                         (3)

Candidates not cheaper than ``c*`` have ``a = 0`` (``log a = -inf``). When nothing is feasible yet
(``c*`` undefined, e.g. the teacher exceeds a hard bound), the improvement factor is dropped and
candidates are ranked by the probability of feasibility alone (``log a = log_ndtr(z)``), with cost
breaking ties.

Symbols: ``c*`` = ``best_cost``, ``t`` = ``threshold``, ``mu``/``sigma`` = the model's posterior
mean and standard deviation of the latent (noise-free) warped quality.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["log_feasible_improvement", "probability_of_feasibility"]


def log_feasible_improvement(
    mean: Tensor, sigma: Tensor, cost: Tensor, best_cost: float | None, threshold: float, pof_power: float = 1.0
) -> Tensor:
    """Eq. (3) from posterior moments: ``log (c* - c)^+ + log Phi((t - mu) / sigma)``, all ``(b,)``.

    With ``best_cost=None`` (nothing feasible yet) it is ``log Phi(z)`` minus a tiny cost tie-breaker.
    ``pof_power`` = ``gamma`` tempers eq. (2) to ``(c* - c)^+ * Phi(z)^gamma``: ``gamma > 1`` trades
    long, unlikely jumps for likely-feasible steps (``gamma = 1`` is the exact expectation).

    Example:
        >>> import torch
        >>> a = log_feasible_improvement(torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0]),
        ...                              torch.tensor([1.0, 3.0]), best_cost=2.0, threshold=0.0)
        >>> round(float(a[0].exp()), 3), float(a[1].exp())  # (2 - 1) * Phi(0); not cheaper than c*
        (0.5, 0.0)
    """
    log_pof = pof_power * torch.special.log_ndtr((threshold - mean) / sigma)  # gamma log Phi(z), eq. (2)
    if best_cost is None:
        scale = cost.abs().max().clamp_min(1e-12)
        return log_pof - 1e-6 * cost / scale
    gain = best_cost - cost  # (b,)
    log_gain = torch.where(gain > 0, gain.clamp_min(1e-300).log(), torch.full_like(gain, -torch.inf))
    return log_pof + log_gain


def probability_of_feasibility(mean: Tensor, sigma: Tensor, threshold: float) -> Tensor:
    """``P(g(q(x)) <= t) = Phi((t - mu) / sigma)``, the factor of eq. (2), all ``(b,)``.

    ``ecbo``'s ``min_pof`` option lets only candidates with at least this probability compete.

    Example:
        >>> import torch
        >>> probability_of_feasibility(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0]), threshold=0.0)
        tensor([0.5000, 0.1587])
    """
    return torch.special.ndtr((threshold - mean) / sigma)
