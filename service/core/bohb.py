"""BOHB's configuration generator (Falkner et al., ICML 2018), as HpBandSter implements it.

Every result is kept per budget (a trial's `epochs`) as a point in the unit cube: a
numerical hyperparameter by where Keras Tuner's sampling would draw its value, a choice or
a boolean by its index, an inactive conditional one as NaN. A model is a pair of kernel
density estimates over the results of the largest budget that has enough of them: `good`
over the best 15 % (at least `dimension + 1` points), `bad` over the rest (at most 85 %),
with statsmodels' `normal_reference` bandwidths (1.06 · std · n^(-1/(4+d))) clipped below
at 1e-3, Gaussian kernels for numbers and Aitchison–Aitken kernels for categories. A
third of the draws are random (Keras Tuner's sampling, so that without a model `bohb`
draws exactly what `random` would); the rest draw 64 candidates around points of `good`,
with the numerical bandwidths widened ×3 and truncated to [0, 1], and keep the one with
the smallest bad/good density ratio.

Where Rung differs from HpBandSter, on purpose (docs/search.md says why):
- fixed hyperparameters are not dimensions of the model;
- every NaN of a training row is imputed (HpBandSter's loop skips a NaN in column 0);
- randomness comes from the study's seed state, not from a process-wide generator.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from rung.space import Boolean, Choice, Fixed, HyperParameter, SearchSpace

from .sampler import sample_values

TOP_PERCENT = 15
CANDIDATES = 64
RANDOM_FRACTION = 1 / 3
BANDWIDTH_FACTOR = 3.0
MIN_BANDWIDTH = 1e-3
_TINY = 1e-32
_BELOW_ONE = math.nextafter(1.0, 0.0)


def dimensions(space: SearchSpace) -> list[HyperParameter]:
    """The hyperparameters the model spans: all but the fixed ones, in the space's order."""
    return [hp for hp in space if not isinstance(hp, Fixed)]


def levels(hp: HyperParameter) -> int:
    """How many categories a dimension has; 0 for a numerical one."""
    if isinstance(hp, Choice):
        return len(hp.values)
    if isinstance(hp, Boolean):
        return 2
    return 0


def encode(dims: list[HyperParameter], values: Mapping[str, Any]) -> list[float]:
    """A configuration as a point of the model's space (NaN where a value is inactive)."""
    point = []
    for hp in dims:
        if hp.name not in values:
            point.append(math.nan)
        elif isinstance(hp, Choice):
            point.append(float(hp.values.index(values[hp.name])))
        elif isinstance(hp, Boolean):
            point.append(float(bool(values[hp.name])))
        else:
            point.append(_unit(hp, values[hp.name]))
    return point


def _unit(hp: Any, value: float) -> float:
    """Where in [0, 1] Keras Tuner's sampling draws `value` (the middle of its interval
    for a value on a grid or an integer)."""
    lo, hi = float(hp.min_value), float(hp.max_value)
    if hp.step is not None:
        n = hp.n_values()
        if hp.sampling == "linear":
            index = round((value - lo) / hp.step)
        elif hp.sampling == "log":
            index = round(math.log(value / lo, hp.step))
        else:
            index = round(math.log((hi + lo - value) / lo, hp.step))
        return (min(max(index, 0), n - 1) + 0.5) / n
    if hp.type == "int":  # drawn as int(x) for x in [lo, hi + 1)
        hi, value = hi + 1, value + 0.5
    if hi == lo:
        return 0.5
    if hp.sampling == "linear":
        unit = (value - lo) / (hi - lo)
    elif hp.sampling == "log":
        unit = math.log(value / lo) / math.log(hi / lo)
    else:
        unit = 1 - math.log((hi + lo - value) / lo) / math.log(hi / lo)
    return min(max(unit, 0.0), 1.0)


def decode(space: SearchSpace, dims: list[HyperParameter], point: Any) -> dict[str, Any]:
    """The configuration of a point: the active hyperparameters, drawn in the space's order."""
    by_name = {hp.name: x for hp, x in zip(dims, point, strict=True)}
    values: dict[str, Any] = {}
    for hp in space:
        if not hp.is_active(values):
            continue
        if isinstance(hp, Fixed):
            values[hp.name] = hp.value
        elif isinstance(hp, Choice):
            values[hp.name] = hp.values[int(np.rint(by_name[hp.name]))]
        elif isinstance(hp, Boolean):
            values[hp.name] = bool(int(np.rint(by_name[hp.name])))
        else:
            values[hp.name] = hp.prob_to_value(min(max(float(by_name[hp.name]), 0.0), _BELOW_ONE))
    return values


@dataclass
class History:
    """The results the model learns from, per budget, in the order they were told; `seen`
    counts them (the store reads the ones numbered after it)."""

    points: dict[int, list[list[float]]] = field(default_factory=dict)
    losses: dict[int, list[float]] = field(default_factory=dict)
    seen: int = 0


class Result(Protocol):
    """A trial's final result, as the stores hold it."""

    @property
    def epochs(self) -> int: ...
    @property
    def values(self) -> dict[str, Any]: ...
    @property
    def score_key(self) -> float | None: ...


def read_results(history: History, space: SearchSpace, results: Iterable[Result]) -> None:
    """Add results told after the ones `history` has: a completed trial's loss is its
    score's key (smaller is better), a failed trial's is inf (HpBandSter's rule)."""
    dims = dimensions(space)
    for result in results:
        loss = math.inf if result.score_key is None else result.score_key
        history.points.setdefault(result.epochs, []).append(encode(dims, result.values))
        history.losses.setdefault(result.epochs, []).append(loss)
        history.seen += 1


@dataclass(frozen=True)
class Density:
    """statsmodels' KDEMultivariate with var_type 'c'/'u' per dimension."""

    data: np.ndarray  # (n, d)
    bandwidth: np.ndarray  # (d,)
    levels: np.ndarray  # (d,): 0 for a numerical dimension

    @classmethod
    def fit(cls, data: np.ndarray, levels: np.ndarray) -> Density:
        n, d = data.shape
        bandwidth = 1.06 * data.std(axis=0) * n ** (-1.0 / (4 + d))
        return cls(data, np.clip(bandwidth, MIN_BANDWIDTH, None), levels)

    def pdf(self, points: np.ndarray) -> np.ndarray:
        """The density at each of `points` (m, d): the mean over the data of the product of
        each dimension's kernel (the Gaussians' product as one exponential of their sum)."""
        numeric = self.levels == 0
        kernels = np.ones((len(points), len(self.data)))
        if numeric.any():
            bw = self.bandwidth[numeric]
            z = (points[:, None, numeric] - self.data[None, :, numeric]) / bw
            norm = np.prod(math.sqrt(2 * math.pi) * bw)
            kernels *= np.exp(-0.5 * np.einsum("mnd,mnd->mn", z, z)) / norm
        if not numeric.all():
            bw, count = self.bandwidth[~numeric], self.levels[~numeric]
            same = points[:, None, ~numeric] == self.data[None, :, ~numeric]
            kernels *= np.prod(np.where(same, 1 - bw, bw / np.maximum(count - 1, 1)), axis=2)
        return kernels.mean(axis=1)


@dataclass(frozen=True)
class Model:
    budget: int
    good: Density
    bad: Density

    def ratio(self, points: np.ndarray) -> np.ndarray:
        """What the generator minimises: bad density over good density."""
        good = np.maximum(self.good.pdf(points), _TINY)
        return np.maximum(self.bad.pdf(points), _TINY) / good


def fit(history: History, dims: list[HyperParameter], rng: np.random.Generator) -> Model | None:
    """The model of the largest budget with enough results, or None while there is none."""
    d = len(dims)
    if d == 0:
        return None
    kinds = np.array([levels(hp) for hp in dims])
    minimum = d + 1
    for budget in sorted(history.points, reverse=True):
        losses = np.asarray(history.losses[budget], dtype=float)
        n = len(losses)
        n_good = max(minimum, TOP_PERCENT * n // 100)
        n_bad = max(minimum, (100 - TOP_PERCENT) * n // 100)
        if n < minimum or n_good <= d or min(n - n_good, n_bad) <= d:
            continue
        points = np.asarray(history.points[budget], dtype=float)
        order = np.argsort(losses, kind="stable")
        good = _impute(points[order[:n_good]], kinds, rng)
        bad = _impute(points[order[n_good : n_good + n_bad]], kinds, rng)
        return Model(budget, Density.fit(good, kinds), Density.fit(bad, kinds))
    return None


def _impute(rows: np.ndarray, kinds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fill an inactive value from a random row where it is active, else at random."""
    rows = rows.copy()
    for i, j in zip(*np.nonzero(np.isnan(rows)), strict=True):
        active = np.flatnonzero(~np.isnan(rows[:, j]))
        if active.size:
            rows[i, j] = rows[rng.choice(active), j]
        else:
            rows[i, j] = rng.random() if kinds[j] == 0 else rng.integers(kinds[j])
    return rows


def candidates(model: Model, rng: np.random.Generator, count: int = CANDIDATES) -> np.ndarray:
    """Points drawn around points of `good`: a truncated normal with the bandwidth ×3 for a
    number; for a category, the point's own with probability 1 - bandwidth, else any."""
    good = model.good
    centers = good.data[rng.integers(0, len(good.data), size=count)]
    points = np.empty_like(centers)
    for j, (bw, kind) in enumerate(zip(good.bandwidth, good.levels, strict=True)):
        m = centers[:, j]
        if kind == 0:
            points[:, j] = _truncated_normal(m, BANDWIDTH_FACTOR * bw, rng)
        else:
            keep = rng.random(count) < 1 - bw
            points[:, j] = np.where(keep, np.floor(m), rng.integers(0, kind, size=count))
    return points


def _truncated_normal(mean: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """N(mean, scale) truncated to [0, 1]: draws outside are drawn again (with the scale
    at 3e-3 at least and the mean inside, at least a quarter of the draws land inside)."""
    points = rng.normal(mean, scale)
    outside = (points < 0) | (points > 1)
    while outside.any():
        points[outside] = rng.normal(mean[outside], scale)
        outside = (points < 0) | (points > 1)
    return points


def best_candidate(model: Model, points: np.ndarray) -> np.ndarray:
    """The candidate with the smallest bad/good ratio (the first of equals)."""
    return points[int(np.argmin(model.ratio(points)))]


class Generator:
    """Draws for one decision. The history is read, and the model fitted, at the first
    draw (a decision that promotes reads neither)."""

    def __init__(self, space: SearchSpace, history: Callable[[], History]):
        self.space, self.history = space, history
        self.dims = dimensions(space)
        self.model: Model | None = None
        self.fitted = False

    def draw(self, seed_state: int) -> tuple[dict[str, Any], int]:
        """One configuration and the seed state after it. Until there is a model, this is
        Keras Tuner's random draw; then a third of the draws stay random."""
        if not self.fitted:
            self.model = fit(self.history(), self.dims, np.random.default_rng(seed_state))
            self.fitted = True
        if self.model is None:
            return sample_values(self.space, seed_state)
        if random.Random(seed_state).random() < RANDOM_FRACTION:
            return sample_values(self.space, seed_state + 1)
        rng = np.random.default_rng(seed_state + 1)
        point = best_candidate(self.model, candidates(self.model, rng))
        return decode(self.space, self.dims, point), seed_state + 2
