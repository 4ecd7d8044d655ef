"""The search-space DSL (torch-free).

Rules select blocks of a model by module path and type and list candidate replacements;
constraints restrict combinations; a resolved :class:`SearchSpace` samples, enumerates, encodes
for botorch and speaks NNI's search-space format.

Example:
    >>> from tocsr_nas.searchspace import SpaceSpec
    >>> spec = SpaceSpec.from_yaml('''
    ... name: demo
    ... rules:
    ...   - name: resnets
    ...     match: "*.resnets.*"
    ...     type: ResnetBlock2D
    ...     candidates: [skip, {type: bottleneck_resnet, grid: {ratio: [0.25, 0.5]}}]
    ... ''')
    >>> space = spec.resolve([("down_blocks.0.resnets.0", "ResnetBlock2D")])
    >>> space.blocks[0].names
    ['teacher', 'skip', 'bottleneck_resnet(ratio=0.25)', 'bottleneck_resnet(ratio=0.5)']
"""

from tocsr_nas.searchspace.candidates import TEACHER, Candidate, CandidateSpec, parse_candidate_name
from tocsr_nas.searchspace.configuration import Configuration
from tocsr_nas.searchspace.constraints import (
    Constraint,
    Forbid,
    MaxCount,
    SameChoice,
    constraint_from_dict,
    register_constraint,
)
from tocsr_nas.searchspace.errors import SearchSpaceError, TocsrError
from tocsr_nas.searchspace.rules import Rule
from tocsr_nas.searchspace.space import Block, SearchSpace, SpaceSpec

__all__ = [
    "TEACHER",
    "Block",
    "Candidate",
    "CandidateSpec",
    "Configuration",
    "Constraint",
    "Forbid",
    "MaxCount",
    "Rule",
    "SameChoice",
    "SearchSpace",
    "SearchSpaceError",
    "SpaceSpec",
    "TocsrError",
    "constraint_from_dict",
    "parse_candidate_name",
    "register_constraint",
]
