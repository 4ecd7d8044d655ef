"""The options of ``ecbo``: one frozen, keyword-only dataclass, validated on construction.

Options reach :class:`~tocsr_nas.strategies.ecbo.strategy.ECBO` as keyword arguments
(``make_strategy("ecbo", problem, pool_random=500)``, or ``--strategy-option pool_random=500`` on
the command line); :class:`~tocsr_nas.strategies.base.Strategy` rejects an unknown or misspelt key
with a :class:`~tocsr_nas.strategies.base.StrategyError` that lists the valid ones, and
:class:`ECBOOptions` rejects an invalid value the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tocsr_nas.strategies.base import StrategyError

__all__ = ["AUTO_WARPS", "ECBOOptions", "WARPS"]

#: the output warps of quality (:class:`~tocsr_nas.strategies.ecbo.warp.QualityWarp`), and ``auto``
WARPS = ("log1p", "linear", "hinge", "auto")
#: the warps ``warp="auto"`` chooses from, per fit (:mod:`~tocsr_nas.strategies.ecbo.select`), reference first
AUTO_WARPS = ("linear", "hinge")

_BOOLS = ("use_pairs", "use_rbf", "trust_region", "chain_dp", "use_shared", "use_prior_pairs", "anchor_mean", "cost_prior", "block_scale", "rbf_free", "far_model", "saturating_warp", "early_saturating", "failures_far", "prior_block_scale")
_COUNTS = ("pool_random", "pool_local", "posterior_tables", "n_local_starts", "local_steps", "thompson_every", "chain_window", "far_pairs_blocks")
_POSITIVE_COUNTS = ("tr_init", "tr_fail_tolerance")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, kw_only=True)
class ECBOOptions:
    """Every option of ``ecbo``, with its default.

    Grouped by the part they tune: the model (:mod:`~tocsr_nas.strategies.ecbo.gp`), the
    acquisition (:mod:`~tocsr_nas.strategies.ecbo.acquisition`), the candidate pool
    (:mod:`~tocsr_nas.strategies.ecbo.pool`), the local search (:mod:`~tocsr_nas.strategies.ecbo.local`)
    and running.

    Attributes:
        warp: output warp of quality before the GP: ``"linear"`` (``q / e_ref``), ``"log1p"``
            (``sign(r) log1p(|r|)``), ``"hinge"`` (linear up to twice the largest epsilon, then
            logarithmic), see :class:`~tocsr_nas.strategies.ecbo.warp.QualityWarp`, or ``"auto"``
            (the default): per fit, ``linear`` or ``hinge``, whichever predicts the observations'
            feasibility better when each is left out (:mod:`~tocsr_nas.strategies.ecbo.select`);
            the reference that the other must beat is ``linear``, or ``hinge`` once an observed
            quality lies beyond :data:`~tocsr_nas.strategies.ecbo.select.FAR` times the largest
            epsilon (:func:`~tocsr_nas.strategies.ecbo.select.reference_first`); with
            ``saturating_warp`` the saturating warp competes too.
        use_pairs: include the neighbour-pair kernel term.
        use_rbf: include the residual RBF (Hamming) kernel term.
        use_prior: use ``problem.prior`` (as kernel features and as a damage table of the pool):
            ``true``, ``false`` or ``"auto"`` (the default): per fit, the model with the prior
            terms or without them (prior weight 0), chosen like ``warp="auto"``, so a prior that
            misleads is dropped; the pool keeps the prior's table either way.
        use_shared: include the kernel term for candidate names shared by several blocks.
        use_prior_pairs: include the compounding term ``z2`` (summed geometric-mean prior damage
            of neighbouring blocks); only with a prior.
        anchor_mean: fix the GP's constant mean at the teacher's warped quality (once told)
            instead of fitting it, so that every weight is a damage relative to the teacher.
        prior_rel_sd: the prior's assumed relative error per cell: the prior-scaled per-cell
            weights get ``prior_rel_sd`` times the fitted prior scale as their standard deviation
            (``None``: a separately fitted variance), see
            :func:`~tocsr_nas.strategies.ecbo.gp.fit_quality_gp`.
        cost_prior: without a prior (``problem.prior`` is ``None``), offer the model a cost-derived
            one: each cell's fraction of its block's cost removed
            (:meth:`~tocsr_nas.strategies.ecbo.costs.KnownCost.saving_prior`), so that the model
            can start from "the cheaper a block's option, the more it damages" and the pool gets
            its frontier. With ``use_prior="auto"`` each fit keeps it only when it predicts
            feasibility :data:`~tocsr_nas.strategies.ecbo.select.MARGIN` nats better than the
            model without it (the reference); its per-cell corrections are fitted freely
            (``prior_rel_sd`` is for a measured prior). Off by default: on the chain30 stress
            landscape it cuts the regret at 40 evaluations from 15.6% to 6.4%, but on range100
            it raises it from 0% to 14.6% (docs/BENCHMARKS.md section 5).
        block_scale: without a prior, offer each fit candidate models with a per-block-scale
            term beside the one-hot (one learned damage scale per block times each option's
            fraction of its block's cost removed,
            :meth:`~tocsr_nas.strategies.ecbo.costs.KnownCost.saving_prior`: ``B`` weights
            instead of ``B (K - 1)`` independent cells), with the linear warp; the per-fit choice
            (:mod:`~tocsr_nas.strategies.ecbo.select`) keeps it only when it predicts
            feasibility :data:`~tocsr_nas.strategies.ecbo.select.MARGIN` nats better than the
            reference and than the linear model without it. Unlike ``cost_prior`` it does not
            enter the pool's frontiers. On the chain30 stress landscape it cuts the median regret
            at 40 evaluations from 15.6% to 13.3%, no landscape of the suite worse at 40
            (docs/BENCHMARKS.md section 5).
        prior_block_scale: with a prior, offer each fit a candidate model with a per-block-scale
            term shaped by the prior itself (``linear+prior+blocks``): one learned scale per block
            for the prior, beside its global scale, for a prior whose units differ by block,
            chosen like ``block_scale``'s model (:data:`~tocsr_nas.strategies.ecbo.select.MARGIN`
            nats better than the reference and than ``linear+prior``). A surrogate library's
            distillation losses are such a prior: each is measured on its own block's features,
            and on ``make demo``'s library one unit of prior costs 0.001 to 2.6 units of
            denoising loss depending on the block, while within a block the prior ranks the
            options well (rank correlation 0.84 on average; ``benchmarks/prior_scales.py``).
            Off by default: on the demo's library it raises the reduction at 0.05 and 0.1 (mean
            and worst seed, 20 seeds), but on a library distilled the same way with another seed
            it is no better (worse at every epsilon on seeds 10-19), and on a library distilled
            briefly in bfloat16, whose prior ranks the options within blocks backwards, the worst
            seed's reduction drops (docs/BENCHMARKS.md section 4). On every benchmark landscape with a prior that was
            run (A, B, the stress and probe instances 100-109, the fixed instances) the
            searches are those of the option off.
        far_pairs_blocks: in a space of 3 to this many blocks, every model also has the
            distant-pair term: one-hot pairs of every two blocks that are not neighbours
            (:class:`~tocsr_nas.strategies.ecbo.features.ConfigFeatures`), beside the neighbour
            pairs. The neighbour pairs follow the block order, which in a cell need not be the
            order of its interactions: NAS-Bench-Graph's link pattern (the first block) changes
            how every layer acts. The chain tables leave the term out, so the chain DP searches
            such a model approximately (the GP scores every candidate exactly). ``0`` (the
            default) never adds it; larger spaces are left out because the term's columns grow
            with the square of the number of blocks. Off by default: with ``8``, on
            NAS-Bench-Graph's cells ecbo finds CiteSeer's and PubMed's optimum sooner, but
            ``failing``'s instances end worse at 40 evaluations, CS at the 0.02-quantile at 20
            and 40, and ``product`` without a prior falls below random search at 10
            (docs/BENCHMARKS.md section 7, "Confirmation tables"). ``benchmarks/table_structure.py``
            shows whether a table's damage needs the distant pairs.
        rbf_free: without a prior and with ``block_scale`` (and ``use_rbf``), the linear-warp
            candidate models leave the residual RBF term out (``linear-rbf``,
            ``linear+blocks-rbf`` in ``last_selection``); the hinge model keeps it. On an
            additive landscape the RBF term takes up damage the per-block weights should carry
            and the model misjudges configurations far from the data (chain30, seed 0: the optimum
            predicted at 1.6 to 2.0 epsilon after 40 evaluations). On by default: it cuts chain30's
            median regret at 40 evaluations from 6.4% to 1.4% (10 seeds). Alone it made range100
            worse (0.0% to 15.8% at 40), whose first evaluations need the RBF term; with the
            reference chosen by the data (the hinge model, which keeps the term, once an observed
            quality lies beyond ``FAR`` times epsilon:
            :func:`~tocsr_nas.strategies.ecbo.select.reference_first`) range100 is unchanged and
            no landscape of the suite is worse at 10, 20 or 40 evaluations (docs/BENCHMARKS.md
            section 5).
        far_model: split the model at far failures (:mod:`~tocsr_nas.strategies.ecbo.far`): once
            :data:`~tocsr_nas.strategies.ecbo.far.MIN_FAR` observed qualities lie beyond
            :data:`~tocsr_nas.strategies.ecbo.select.FAR` times the largest epsilon and at least
            :data:`~tocsr_nas.strategies.ecbo.select.MIN_OBSERVATIONS` others are told, the
            quality model is fitted to the others only and a second GP, fitted to every
            observation's far / not-far label, multiplies the feasibility by ``P(not far)``
            (to the power ``far_weight``). On by default: over range100's instances 0-9 (one
            search seed each) it cuts the median regret at 20 / 40 evaluations from 16.4 / 5.0% to
            4.6 / 0.0% (the worst instance at 40 from 39.7% to 11.6%), deadpath's from 11.8 / 1.1%
            to 1.5 / 0.0%; A, B, chain30, failing and misleading are unchanged (no far failures),
            and so are the real tables (10 seeds to 160 evaluations). Three range100 instances are
            worse at one budget (two at 20 evaluations, one at 40: 0.0% to 2.3%;
            docs/BENCHMARKS.md sections 5 and 9).
        failures_far: with ``far_model``, failed evaluations (quality ``nan`` / ``inf``) count as far
            failures: the label model learns where evaluations fail and the quality model describes
            the working configurations only, instead of imputing ``fail_quality`` inside it (which
            an additive model spreads over the failures' cells, working neighbours included). On by
            default: on the ``failing`` stress landscape, instances 100-109 (10 seeds) the median
            regret at 40 / 80 evaluations goes from 1.7 / 1.3% to 1.5 / 0.7% (instance 100 at 40:
            26.1 -> 0.6%), no instance worse; on instances 0-9 (run after the choice) one instance
            is better at 80 (2.1 -> 0.0%), the others identical; landscapes whose evaluations do
            not fail are unchanged (docs/BENCHMARKS.md section 9). It acts only once the far split
            starts, which waits for :data:`~tocsr_nas.strategies.ecbo.select.MIN_OBSERVATIONS`
            working observations: where nearly every evaluation fails it never does (``failing``
            instance 105, search seed 5: 3 of the first 37 evaluations work;
            ``benchmarks/ecbo_trace.py --landscape failing --landscape-seed 105 --seed 5 --budget 40``).
        far_weight: with ``far_model``, the power of ``P(not far)`` in the feasibility
            (``P(not far)^far_weight * P(feasible | not far)``, before ``pof_power``); positive. A
            far failure costs an evaluation and, left out of the quality model, teaches it
            nothing, where a near miss sharpens the model at the threshold: the acquisition
            shuns the first more. 3 by default: over range100's instances 0-9 the median regret
            at 20 evaluations drops from 9.7% (``far_weight=1``) to 4.6% and the worst instance
            from 27.6% to 20.9%, deadpath's median from 3.1% to 1.5%; NAS-Bench-Macro, the Graph
            tables and deadpath's fixed instance are unchanged. Swept over 1, 2, 3 and 5 on the
            development instances 100-109, 3 is the best or tied at every budget on range100 and
            deadpath (docs/BENCHMARKS.md section 9).
        saturating_warp: with ``warp="auto"``, offer each fit candidate models with the
            saturating warp too (:class:`~tocsr_nas.strategies.ecbo.warp.QualityWarp`,
            ``-u log(1 - r / u)``, the ceiling ``u`` fitted to the observations by
            :meth:`~tocsr_nas.strategies.ecbo.warp.QualityWarp.fit_ceiling`: the one that makes them
            most additive, and no saturating model where no ceiling beats the linear warp by
            :data:`~tocsr_nas.strategies.ecbo.select.MARGIN` nats), once an
            observed quality lies beyond the largest epsilon and while none lies beyond
            :data:`~tocsr_nas.strategies.ecbo.select.FAR` times it (far failures are the hinge
            warp's and ``far_model``'s case); chosen like the other warps
            (:mod:`~tocsr_nas.strategies.ecbo.select`: only :data:`~tocsr_nas.strategies.ecbo.select.MARGIN`
            nats better than the reference). For a quality that compounds towards a ceiling (an
            accuracy that is a product of per-block retentions: the ``product`` probe landscape,
            ``benchmarks/probe_landscapes.py``), where a linear model, told that the cheapest
            configuration is only 1.2 epsilon away, believes most of the space feasible. On by
            default: over the ``product`` probe's instances 100-109 it cuts the median regret at
            10 / 20 / 40 evaluations from 36.7 / 10.8 / 2.1% to 1.6 / 0.0 / 0.0% (instances 0-9:
            13.1 / 1.1 / 0.0% to 6.3 / 0.0 / 0.0%), and without the prior from 212.7 / 49.9 /
            15.0% to 70.4 / 5.1 / 0.0%; on every other landscape measured (A, B, the suite's
            fixed instances, the stress and the other probe landscapes' instances 100-109) the
            searches are those of the option off, instance by instance
            (docs/BENCHMARKS.md section 10).
        early_saturating: with ``saturating_warp``, below
            :data:`~tocsr_nas.strategies.ecbo.select.MIN_OBSERVATIONS` observations (where no model
            comparison is made and the reference alone is fitted) a fitted ceiling makes the
            saturating model the one fitted (same prior setting as the reference). Off by default:
            it helps ``product`` with its prior at 10 evaluations (1.6 -> 0.0%) but with 3 to 7
            observations a ceiling wins by chance on landscapes that do not saturate (``unordered``,
            ``loose``, ``wide``, ``misleading`` instances worse; docs/BENCHMARKS.md section 10).
        fail_quality: the quality imputed for failed evaluations, in units of the largest
            epsilon (at least the worst finite quality observed is used); greater than 1. With
            ``far_model`` and ``failures_far`` only until the far split starts (they leave the
            quality model then).
        pof_power: ``gamma`` in ``(c* - c)^+ * P(feasible)^gamma`` (1 = the exact expectation;
            larger prefers likely-feasible steps to long, unlikely jumps); positive.
        min_pof: when > 0, only candidates feasible with at least this probability compete
            (when any are); in ``[0, 1)``.
        calib_band: proposals aim at the threshold minus the model's mean leave-one-out
            optimism over the observations whose warped quality is within ``calib_band`` of it
            (at least 5 of them; 0 turns the correction off); nonnegative.
        thompson_every: when > 0, every ``thompson_every``-th proposal is a Thompson sample: the
            cheapest configuration that one posterior sample of the chain model deems feasible.
        pool_random: random configurations in the pool (three quarters biased towards cheap
            candidates, one quarter uniform).
        pool_local: random double swaps of the incumbents in the pool (and half as many triple
            swaps and crossovers).
        posterior_tables: joint posterior samples of the damage tables (model frontiers) and of
            the chain model (chain frontiers).
        chain_dp: add the exact chain-frontier candidates
            (:mod:`~tocsr_nas.strategies.ecbo.chain_knapsack`; only when the cost is additive).
        chain_window: frontier points taken on each side of the cheapest predicted-feasible one.
        n_local_starts: hill-climbing starts from the best pool members.
        local_steps: maximum hill-climbing steps.
        trust_region: restrict the pool (but not the chain frontiers) to a Hamming ball around
            the incumbent whose radius is replayed from the history
            (:func:`~tocsr_nas.strategies.ecbo.local.trust_radius`).
        tr_init: the initial trust radius; positive.
        tr_fail_tolerance: evaluations in a row without a new incumbent that halve the radius;
            positive.
        threads: torch intra-op threads and BLAS threads (scipy's, numpy's) while proposing
            (restored afterwards; ``None`` leaves both alone). The matrices are small (hundreds of rows), where one thread
            is fastest and avoids oversubscribing a shared CPU.

    Raises:
        StrategyError: an option has an invalid type or value.

    Example:
        >>> ECBOOptions(pool_random=500).pool_random
        500
        >>> ECBOOptions(warp="log")
        Traceback (most recent call last):
        ...
        tocsr_nas.strategies.base.StrategyError: ecbo: warp must be one of ['log1p', 'linear', 'hinge', 'auto'], got 'log'
    """

    # the model
    warp: str = "auto"
    use_pairs: bool = True
    use_rbf: bool = True
    use_prior: bool | str = "auto"
    use_shared: bool = False
    use_prior_pairs: bool = True
    anchor_mean: bool = True
    prior_rel_sd: float | None = 1.0
    cost_prior: bool = False
    block_scale: bool = True
    rbf_free: bool = True
    far_model: bool = True
    far_weight: float = 3.0
    failures_far: bool = True
    prior_block_scale: bool = False
    far_pairs_blocks: int = 0
    saturating_warp: bool = True
    early_saturating: bool = False
    fail_quality: float = 3.0
    # the acquisition
    pof_power: float = 2.0
    min_pof: float = 0.0
    calib_band: float = 0.25
    thompson_every: int = 0
    # the candidate pool
    pool_random: int = 1000
    pool_local: int = 400
    posterior_tables: int = 16
    chain_dp: bool = True
    chain_window: int = 6
    # the local search
    n_local_starts: int = 12
    local_steps: int = 8
    trust_region: bool = True
    tr_init: int = 4
    tr_fail_tolerance: int = 3
    # running
    threads: int | None = 1

    def __post_init__(self) -> None:
        if self.warp not in WARPS:
            raise StrategyError(f"ecbo: warp must be one of {list(WARPS)}, got {self.warp!r}")
        if not (isinstance(self.use_prior, bool) or self.use_prior == "auto"):
            raise StrategyError(f"ecbo: use_prior must be true, false or 'auto', got {self.use_prior!r}")
        for name in _BOOLS:
            if not isinstance(getattr(self, name), bool):
                raise StrategyError(f"ecbo: {name} must be true or false, got {getattr(self, name)!r}")
        for name in _COUNTS:
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                raise StrategyError(f"ecbo: {name} must be a nonnegative integer, got {value!r}")
        for name in _POSITIVE_COUNTS:
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise StrategyError(f"ecbo: {name} must be a positive integer, got {value!r}")
        if self.threads is not None and (not _is_int(self.threads) or self.threads < 1):
            raise StrategyError(f"ecbo: threads must be a positive integer or None, got {self.threads!r}")
        if self.prior_rel_sd is not None and not (_is_number(self.prior_rel_sd) and self.prior_rel_sd > 0):
            raise StrategyError(f"ecbo: prior_rel_sd must be a positive number or None, got {self.prior_rel_sd!r}")
        if not (_is_number(self.fail_quality) and self.fail_quality > 1):
            raise StrategyError(f"ecbo: fail_quality must be a number > 1, got {self.fail_quality!r}")
        if not (_is_number(self.far_weight) and self.far_weight > 0):
            raise StrategyError(f"ecbo: far_weight must be a positive number, got {self.far_weight!r}")
        if not (_is_number(self.pof_power) and self.pof_power > 0):
            raise StrategyError(f"ecbo: pof_power must be a positive number, got {self.pof_power!r}")
        if not (_is_number(self.min_pof) and 0 <= self.min_pof < 1):
            raise StrategyError(f"ecbo: min_pof must be a number in [0, 1), got {self.min_pof!r}")
        if not (_is_number(self.calib_band) and self.calib_band >= 0):
            raise StrategyError(f"ecbo: calib_band must be a nonnegative number, got {self.calib_band!r}")
