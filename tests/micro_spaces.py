"""The tiny teacher's micro search spaces of the tests, composed from a few rules (a library distilled
for one takes seconds). ``tests/`` is on the path (``tests/conftest.py``)."""

from __future__ import annotations

#: one rule per kind of block: the candidates a micro space offers it
RULES = {
    "attentions": """\
  - name: attentions
    match: "*attentions.*"
    type: Transformer2DModel
    candidates: [skip, conv_mixer]
""",
    "downsamplers": """\
  - name: downsamplers
    match: "*downsamplers.*"
    type: Downsample2D
    candidates: [pool_down]
""",
    "upsamplers": """\
  - name: upsamplers
    match: "*upsamplers.*"
    type: Upsample2D
    candidates: [light_up]
""",
}


def micro_space(name: str, *rules: str) -> str:
    """The space YAML named ``name`` with the rules of :data:`RULES` named ``rules``, in that order.

    Example:
        >>> print(micro_space("samplers", "upsamplers"))
        name: samplers
        rules:
          - name: upsamplers
            match: "*upsamplers.*"
            type: Upsample2D
            candidates: [light_up]
        <BLANKLINE>
    """
    return f"name: {name}\nrules:\n" + "".join(RULES[r] for r in rules)


#: the tiny teacher's samplers only
SAMPLERS_SPACE = micro_space("samplers", "downsamplers", "upsamplers")
