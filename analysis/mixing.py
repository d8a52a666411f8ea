"""How relative positions mix tokens: one query token's row of a gating unit's N x N mixing matrix.

A `PositionalGatingUnit` stores one learned weight per offset (query - key) and channel group, flat as
``relative_position_bias_table`` ``(prod(2 w_i - 1), gamma)``, and a buffer ``relative_position_index``
``(N, N)`` that says which table row each (query, key) pair of its window reads. Everything here reads those
two tensors of the model itself: a query's row is ``table[index[query], group]``; for a temporal unit the
whole ``(T, T)`` matrix is Toeplitz (constant along diagonals: the weight depends only on Δt).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from analysis.biases import gating_units
from analysis.errors import AnalysisError
from posmlp_video.models.gating import AXES, PositionalGatingUnit


@dataclass(frozen=True)
class MixingRow:
    """What one query token of a window takes from every key token, and where each weight was read.

    Attributes:
        name: the unit, e.g. ``stage 0 block 0 spatial``.
        unit: "temporal", "spatial" or "spatiotemporal"; `axes` its mixed axes ("t", "hw", "thw").
        window: the window over the mixed axes; N = prod(window) tokens, numbered row-major.
        group: the channel group (channel c uses group c mod gamma).
        query: the query token's coordinates in the window.
        weights: window-shaped; ``weights[key]`` is the weight of that key token in the query's output.
        offsets: ``(*window, D)``; the offset query - key of each key token.
        index: window-shaped; the flat table row each key token reads (``relative_position_index[query]``).
        table: the group's offset table ``(2 w_1 - 1, ...)``; ``table[*(offset + w - 1)]`` is the weight of
            that offset, so offset 0 is the centre.
        matrix: the group's full ``(N, N)`` mixing matrix (row m: query m), read through the index.
        token_bias: the bias the unit adds to the query's output (the same for every channel).
    """

    name: str
    unit: str
    window: tuple[int, ...]
    group: int
    query: tuple[int, ...]
    weights: np.ndarray
    offsets: np.ndarray
    index: np.ndarray
    table: np.ndarray
    matrix: np.ndarray
    token_bias: float

    @property
    def axes(self) -> str:
        return AXES[self.unit]

    @property
    def query_token(self) -> int:
        """The query's row number in the N x N matrix (row-major over the window)."""
        return int(np.ravel_multi_index(self.query, self.window))

    def table_cell(self, key: Sequence[int]) -> tuple[int, ...]:
        """Where in `table` the weight of key token `key` was read: its offset shifted by w - 1."""
        key = check_token(key, self.window, "key")
        return tuple(int(q - k + w - 1) for q, k, w in zip(self.query, key, self.window))


def check_token(token: Sequence[int], window: Sequence[int], what: str = "query") -> tuple[int, ...]:
    """`token` as a tuple of ints if it lies in `window`, else a one-line `AnalysisError`."""
    token = tuple(int(v) for v in np.atleast_1d(token))
    if len(token) != len(window) or any(not 0 <= v < w for v, w in zip(token, window)):
        raise AnalysisError(f"{what} token {token} is outside the {tuple(window)} window")
    return token


def get_unit(model: nn.Module, stage: int, block: int, unit: str) -> PositionalGatingUnit:
    """The gating unit of `model` at stage/block of kind `unit` ("temporal", "spatial", "spatiotemporal")."""
    units = gating_units(model)
    for i, j, gate in units:
        if (i, j, gate.kind) == (stage, block, unit):
            return gate
    have = sorted((i, j, gate.kind) for i, j, gate in units)
    raise AnalysisError(f"no gating unit with stage={stage}, block={block}, unit={unit!r}; the model has {have}")


def mixing_matrix(gate: PositionalGatingUnit, group: int) -> np.ndarray:
    """Group `group`'s ``(N, N)`` mixing matrix of `gate`'s own window: the table read through its index."""
    if not 0 <= group < gate.gamma:
        raise AnalysisError(f"group {group} out of range: the unit has {gate.gamma} groups")
    table = gate.relative_position_bias_table.detach().float().cpu()[:, group]
    return table[gate.relative_position_index.cpu()].numpy()


def mixing_row(gate: PositionalGatingUnit, group: int, query: Sequence[int], stage: int = 0,
               block: int = 0) -> MixingRow:
    """The row of `query` in group `group`'s mixing matrix, with the offsets and table cells it reads."""
    window = tuple(gate.window)
    query = check_token(query, window)
    matrix = mixing_matrix(gate, group)
    m = int(np.ravel_multi_index(query, window))
    coords = np.stack(np.meshgrid(*[np.arange(w) for w in window], indexing="ij"), axis=-1)  # (*window, D)
    flat = gate.relative_position_bias_table.detach().float().cpu()[:, group].numpy()
    return MixingRow(
        name=f"stage {stage} block {block} {gate.kind}", unit=gate.kind, window=window, group=group, query=query,
        weights=matrix[m].reshape(window), offsets=np.array(query) - coords,
        index=gate.relative_position_index[m].cpu().numpy().reshape(window),
        table=flat.reshape([2 * w - 1 for w in window]), matrix=matrix,
        token_bias=float(gate.token_bias.detach().float().cpu()[m]),
    )


def model_mixing_row(model: nn.Module, stage: int, block: int, unit: str, group: int,
                     query: Sequence[int]) -> MixingRow:
    """`mixing_row` for the unit of `model` at stage/block (the app's and notebook's one call)."""
    return mixing_row(get_unit(model, stage, block, unit), group, query, stage, block)
