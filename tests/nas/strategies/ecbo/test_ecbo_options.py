"""ECBOOptions: every option documented, defaults, and invalid or unknown options as StrategyError."""

from __future__ import annotations

import dataclasses

import pytest
from tocsr_nas.strategies.testing import small

from tocsr_nas.strategies import StrategyError, get_strategy, make_strategy
from tocsr_nas.strategies.ecbo import ECBO, ECBOOptions


def test_ecbo_declares_its_options_class():
    assert get_strategy("ecbo") is ECBO and ECBO.Options is ECBOOptions


def test_every_option_is_documented():
    doc = ECBOOptions.__doc__
    attributes = doc[doc.index("Attributes:") : doc.index("Raises:")]
    missing = [f.name for f in dataclasses.fields(ECBOOptions) if f"\n        {f.name}: " not in attributes]
    assert not missing


def test_options_are_frozen_and_keyword_only():
    options = ECBOOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.warp = "log1p"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ECBOOptions("linear")  # type: ignore[misc]


def test_a_misspelt_option_lists_the_valid_ones():
    with pytest.raises(StrategyError) as exc:
        make_strategy("ecbo", small().problem(), pool_randm=10)
    message = str(exc.value)
    assert "pool_randm" in message
    assert all(f.name in message for f in dataclasses.fields(ECBOOptions))


@pytest.mark.parametrize(
    "option, value",
    [
        ("warp", "log"),
        ("use_pairs", 1),
        ("chain_dp", "yes"),
        ("pool_random", -1),
        ("pool_local", 2.5),
        ("posterior_tables", True),
        ("tr_init", 0),
        ("tr_fail_tolerance", 0),
        ("threads", 0),
        ("prior_rel_sd", 0.0),
        ("fail_quality", 1.0),
        ("pof_power", 0.0),
        ("min_pof", 1.0),
        ("min_pof", -0.1),
        ("calib_band", -1.0),
        ("calib_band", float("nan")),
    ],
)
def test_an_invalid_value_names_the_option(option, value):
    with pytest.raises(StrategyError, match=option):
        ECBOOptions(**{option: value})
    with pytest.raises(StrategyError, match=option):
        make_strategy("ecbo", small().problem(), **{option: value})


def test_json_values_are_accepted():
    """What ``--strategy-option KEY=VALUE`` reads from JSON: ints for floats, null for None."""
    options = ECBOOptions(pof_power=1, fail_quality=4, prior_rel_sd=None, threads=None, min_pof=0.5)
    assert options.pof_power == 1 and options.prior_rel_sd is None
    assert make_strategy("ecbo", small().problem(), calib_band=0).options.calib_band == 0
