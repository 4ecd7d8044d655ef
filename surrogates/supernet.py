"""The supernet: a teacher UNet whose searchable blocks can be re-routed to distilled surrogates.

Construction replaces every searchable block of the UNet, in place, by a :class:`Switch` that holds
the original block and every candidate of that block from the library (loaded ONCE, here).
:meth:`SuperNet.set_configuration` then only sets which candidate each switch forwards to: no
copying, no loading, no parameter changes. A switch calls its active module with exactly the
arguments it received, so the all-``teacher`` configuration runs the very same operations as the
unwrapped teacher and reproduces its output bit for bit.

:meth:`SuperNet.assembled` builds a standalone UNet with the chosen blocks actually installed
(a deep copy; no switches), for fvcore traces and export.

Example:
    >>> import tempfile
    >>> from diffusers.models.downsampling import Downsample2D
    >>> from tocsr_nas.searchspace import SearchSpace
    >>> from tocsr_nas.searchspace.candidates import Candidate
    >>> from tocsr_nas.searchspace.space import Block
    >>> from tocsr_nas.surrogates.library import PairRecord, library_header, write_manifest, write_pair
    >>> from tocsr_nas.surrogates.registry import build_surrogate
    >>> net = nn.Sequential(Downsample2D(4, use_conv=True), nn.ReLU())
    >>> space = SearchSpace([Block("0", "Downsample2D", "r", (Candidate("teacher"), Candidate("skip")))])
    >>> root = tempfile.mkdtemp()
    >>> write_manifest(root, library_header(teacher_fingerprint="t", space=space, resolution=8), [])
    >>> skip = build_surrogate("skip", net[0])
    >>> _ = write_pair(root, PairRecord("0", "skip", "skip", {}, dict(skip.config), 1.0, 1.0, 0, 0.0, False), skip)
    >>> x = torch.randn(1, 4, 8, 8)
    >>> before = net(x)
    >>> supernet = SuperNet(net, SurrogateLibrary.open(root))
    >>> torch.equal(supernet(x), before)
    True
    >>> supernet.set_configuration({"0": "skip"})
    >>> torch.equal(supernet(x), torch.relu(torch.nn.functional.avg_pool2d(x, 2)))
    True
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from tocsr_nas.searchspace.candidates import TEACHER
from tocsr_nas.searchspace.configuration import Configuration
from tocsr_nas.searchspace.space import SearchSpace
from tocsr_nas.surrogates.errors import SurrogateError
from tocsr_nas.surrogates.library import LibraryMismatchError, SurrogateLibrary

__all__ = ["Switch", "SuperNet"]


class Switch(nn.Module):
    """Forwards every call to one of several modules: the teacher block or one of its surrogates.

    The modules live in an ``nn.ModuleDict`` under ``teacher``, ``choice1``, ``choice2``...
    (candidate names contain characters module names may not); :attr:`active` is the
    candidate name in use.

    Args:
        path: the block's dotted path (for messages).
        teacher: the original block.
        candidates: ``{candidate name: module}`` of the surrogates (``teacher`` excluded).
    """

    def __init__(self, path: str, teacher: nn.Module, candidates: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.path = path
        self.choices = nn.ModuleDict({TEACHER: teacher})
        self._keys = {TEACHER: TEACHER}
        for i, (name, module) in enumerate(candidates.items(), start=1):
            key = f"choice{i}"
            self.choices[key] = module
            self._keys[name] = key
        self._active_key = TEACHER
        self._active = TEACHER

    @property
    def names(self) -> list[str]:
        """Candidate names this switch can route to, ``teacher`` first."""
        return list(self._keys)

    @property
    def active(self) -> str:
        """The candidate name calls are forwarded to."""
        return self._active

    @active.setter
    def active(self, name: str) -> None:
        try:
            self._active_key = self._keys[name]
        except KeyError:
            raise SurrogateError(f"block {self.path}: no candidate {name!r}; loaded: {self.names}") from None
        self._active = name

    @property
    def teacher(self) -> nn.Module:
        """The original block."""
        return self.choices[TEACHER]

    def module(self, name: str | None = None) -> nn.Module:
        """The module of candidate ``name`` (default: the active one)."""
        name = self._active if name is None else name
        if name not in self._keys:
            raise SurrogateError(f"block {self.path}: no candidate {name!r}; loaded: {self.names}")
        return self.choices[self._keys[name]]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.choices[self._active_key](*args, **kwargs)

    def extra_repr(self) -> str:
        return f"path={self.path!r}, active={self._active!r}"


class SuperNet(nn.Module):
    """A teacher UNet with every searchable block behind a :class:`Switch`.

    The UNet is modified IN PLACE (its blocks are wrapped; call :meth:`restore` to unwrap it);
    the supernet's ``forward`` is the UNet's.

    Args:
        unet: the teacher's UNet (or any ``nn.Module``; an object with a ``.unet`` is unwrapped).
        library: the distilled surrogates; it must be complete.
        space: the search space (default: the library's); its hash must equal the library's.

    Raises:
        LibraryMismatchError: another space, missing pairs, or a block path not in ``unet``.
    """

    def __init__(self, unet: nn.Module, library: SurrogateLibrary, space: SearchSpace | None = None) -> None:
        super().__init__()
        if not isinstance(unet, nn.Module) and isinstance(getattr(unet, "unet", None), nn.Module):
            unet = unet.unet
        space = space or library.space
        if space.hash != library.space_hash:
            raise LibraryMismatchError(
                f"surrogate library {library.root} was distilled for search space {library.space_hash}, "
                f"not for this one ({space.hash})"
            )
        missing = library.missing()
        if missing:
            raise LibraryMismatchError(
                f"surrogate library {library.root} lacks {len(missing)} pairs; finish it with "
                f"`tocsr-nas distill --out {library.root} --resume`"
            )
        self.unet = unet
        self.space = space
        self.library = library
        self._switches: dict[str, Switch] = {}
        for block in space.blocks:
            try:
                original = unet.get_submodule(block.path)
            except AttributeError:
                raise LibraryMismatchError(f"the model has no block {block.path!r} of the library's space") from None
            if isinstance(original, Switch):
                raise SurrogateError(f"block {block.path} is already wrapped by a supernet; use that one or restore() it")
            candidates = {
                cand.name: library.load(block.path, cand.name, original)
                for cand in block.choices
                if cand.name != TEACHER
            }
            switch = Switch(block.path, original, candidates)
            switch.train(original.training)
            unet.set_submodule(block.path, switch)
            self._switches[block.path] = switch
        self._config = space.teacher_config()

    # ------------------------------------------------------------------ routing
    @property
    def configuration(self) -> Configuration:
        """The active configuration."""
        return self._config

    @property
    def switches(self) -> dict[str, Switch]:
        """``{block path: Switch}``."""
        return dict(self._switches)

    def set_configuration(self, config: Mapping[str, str]) -> None:
        """Route every block to its candidate in ``config`` (blocks left out: ``teacher``).

        Only names are set: no module is copied, loaded or changed.

        Raises:
            SearchSpaceError: an unknown block or candidate, or a violated constraint.
        """
        cfg = self.space.validate(config)
        for path, name in cfg.items():
            self._switches[path].active = name
        self._config = cfg

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.unet(*args, **kwargs)

    # ------------------------------------------------------------------ standalone models
    def assembled(self, config: Mapping[str, str] | None = None) -> nn.Module:
        """A standalone deep copy of the UNet with the candidates of ``config`` installed.

        No switches remain: each searchable block is the chosen module itself (the teacher block
        for ``teacher``). The supernet is left as it was.

        Args:
            config: the configuration (default: the active one).

        Returns:
            The assembled UNet (same class as the teacher's).
        """
        cfg = self._config if config is None else self.space.validate(config)
        unet = self.unet
        try:
            for path, name in cfg.items():
                unet.set_submodule(path, self._switches[path].module(name))
            return copy.deepcopy(unet)
        finally:
            for path, switch in self._switches.items():
                unet.set_submodule(path, switch)

    def restore(self) -> nn.Module:
        """Put the original blocks back into the UNet and return it (the supernet is then unusable)."""
        for path, switch in self._switches.items():
            self.unet.set_submodule(path, switch.teacher)
        self._switches = {}
        return self.unet

    @torch.no_grad()
    def candidate_parameters(self) -> int:
        """Parameters of every loaded surrogate (the memory the supernet adds to the teacher)."""
        return sum(
            p.numel()
            for sw in self._switches.values()
            for key, m in sw.choices.items()
            if key != TEACHER
            for p in m.parameters()
        )
