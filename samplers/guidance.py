"""Guidance and x0 corrections as wrappers around a denoiser ``denoise(x, sigma) -> x0_hat``.

Classifier-free guidance (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance") is usually
written on the noise prediction, ``eps = eps_u + s (eps_c - eps_u)``. In VE coordinates
``x = x0 + sigma eps`` both ``eps = (x - x0) / sigma`` and the score ``(x0 - x) / sigma**2``
are affine in ``x0`` with coefficients that do not depend on the condition, so

    x - sigma (eps_u + s (eps_c - eps_u)) = x0_u + s (x0_c - x0_u),

i.e. guidance on x0, eps or the score is the same operation; the same holds for VP models,
whose ``x0 = (x_t - sqrt(1 - a^2) eps) / a`` is affine in eps with condition-free coefficients.
Everything here therefore returns an ordinary denoiser and works with every sampler.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

Denoiser = Callable[[Tensor, Tensor], Tensor]
X0Fn = Callable[[Tensor, Tensor], Tensor]

__all__ = [
    "cfg",
    "cfg_batched",
    "multi_cfg",
    "multi_cfg_batched",
    "with_x0_correction",
    "project_mean",
    "project_values",
]


def _check_interval(interval: tuple[float, float] | None) -> None:
    """Reject a guidance interval that is not an increasing pair of non-negative floats."""
    if interval is None:
        return
    if len(interval) != 2 or not 0.0 <= interval[0] < interval[1]:
        raise ValueError(
            f"guidance interval {interval!r} is invalid; give (sigma_lo, sigma_hi) with "
            "0 <= sigma_lo < sigma_hi, or None for guidance at every noise level."
        )


def _in_interval(sigma: Tensor, interval: tuple[float, float] | None) -> Tensor:
    """Per-sample mask of noise levels where guidance is on: sigma_lo < sigma <= sigma_hi."""
    if interval is None:
        return torch.ones_like(sigma, dtype=torch.bool)
    return (sigma > interval[0]) & (sigma <= interval[1])


def _guided_or_plain(
    x: Tensor, sigma: Tensor, interval: tuple[float, float] | None,
    guided: Callable[[], Tensor], plain: Callable[[], Tensor],
) -> Tensor:
    """Evaluate ``guided`` inside the interval and ``plain`` outside, per sample."""
    mask = _in_interval(sigma, interval)
    if bool(mask.all()):
        return guided()
    if not bool(mask.any()):
        return plain()
    mask = mask.reshape(-1, *([1] * (x.ndim - 1)))  # (B, 1, ..., 1)
    return torch.where(mask, guided(), plain())


def cfg(
    denoise_cond: Denoiser,
    denoise_uncond: Denoiser,
    scale: float,
    *,
    interval: tuple[float, float] | None = None,
) -> Denoiser:
    """Classifier-free guidance x0_u + s (x0_c - x0_u) (Ho & Salimans 2022), optional interval.

    ``interval=(sigma_lo, sigma_hi)`` applies guidance only for sigma_lo < sigma <= sigma_hi and
    returns the conditional prediction elsewhere (Kynkaanniemi et al. 2024, "Applying Guidance
    in a Limited Interval Improves Sample and Distribution Quality in Diffusion Models").
    Scale 1 is exactly ``denoise_cond``; scale 0 is exactly ``denoise_uncond``.
    """
    _check_interval(interval)
    scale = float(scale)

    def guided(x: Tensor, sigma: Tensor) -> Tensor:
        if scale == 1.0:
            return denoise_cond(x, sigma)
        if scale == 0.0:
            return denoise_uncond(x, sigma)
        x0_c, x0_u = denoise_cond(x, sigma), denoise_uncond(x, sigma)
        return x0_u + scale * (x0_c - x0_u)

    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        return _guided_or_plain(
            x, sigma, interval, lambda: guided(x, sigma), lambda: denoise_cond(x, sigma)
        )

    return denoise


def _batch_size(tree: Any) -> int | None:
    """Leading dimension of the first tensor found in a condition pytree (None if none)."""
    if isinstance(tree, Tensor):
        return tree.shape[0] if tree.ndim > 0 else None
    if isinstance(tree, Mapping):
        tree = list(tree.values())
    if isinstance(tree, (list, tuple)):
        for item in tree:
            size = _batch_size(item)
            if size is not None:
                return size
    return None


def _cat_conditions(trees: Sequence[Any], batch: int) -> Any:
    """Concatenate condition pytrees (tensors, dicts, lists, tuples) along the batch axis.

    A tensor whose leading dimension is 1 is expanded to ``batch`` first (a shared null
    condition); non-tensor leaves (strings, numbers, None) must be equal across the trees.
    """
    first = trees[0]
    if isinstance(first, Tensor):
        parts = [t.expand(batch, *t.shape[1:]) if t.shape[0] == 1 else t for t in trees]
        return torch.cat(parts, dim=0)  # (len(trees) * B, ...)
    if isinstance(first, Mapping):
        return {k: _cat_conditions([t[k] for t in trees], batch) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(_cat_conditions(list(z), batch) for z in zip(*trees))
    if any(t != first for t in trees[1:]):
        raise ValueError(
            f"conditions differ in a non-tensor entry ({first!r} vs others); only tensors "
            "(batch-first), dicts, lists and tuples of them can be batched for guidance."
        )
    return first


def cfg_batched(
    denoise_with_cond: Callable[[Tensor, Tensor, Any], Tensor],
    cond: Any,
    uncond_cond: Any,
    scale: float,
    *,
    interval: tuple[float, float] | None = None,
) -> Denoiser:
    """CFG with one model call on a doubled batch: ``denoise_with_cond(x, sigma, c)``.

    ``cond`` and ``uncond_cond`` are conditions (a tensor or a dict/list/tuple of tensors,
    batch-first; a leading dimension of 1 is broadcast, e.g. a shared null embedding). The
    result equals :func:`cfg` of the two single-condition denoisers.
    """
    if float(scale) == 1.0:
        return lambda x, sigma: denoise_with_cond(x, sigma, cond)
    if float(scale) == 0.0 and interval is None:
        return lambda x, sigma: denoise_with_cond(x, sigma, uncond_cond)
    return multi_cfg_batched(
        denoise_with_cond, {"c": cond}, {"c": uncond_cond}, {"c": scale},
        mode="nested", interval=interval, merge=lambda d: d["c"],
    )


def _condition_sets(names: Sequence[str], mode: str) -> list[frozenset[str]]:
    """Condition sets a multi-condition CFG evaluates; the last one holds every condition."""
    if mode == "compositional":
        return [frozenset(), *(frozenset([n]) for n in names), frozenset(names)]
    if mode == "nested":
        return [frozenset(names[:k]) for k in range(len(names) + 1)]
    raise ValueError(f"multi-CFG mode {mode!r} is unknown; use 'compositional' or 'nested'.")


def _combine(
    x0: Mapping[frozenset[str], Tensor], names: Sequence[str], scales: Sequence[float], mode: str
) -> Tensor:
    """Combine per-condition-set predictions by the compositional or nested CFG formula."""
    empty = x0[frozenset()]
    out = empty
    for k, (name, s) in enumerate(zip(names, scales)):
        if mode == "compositional":
            out = out + s * (x0[frozenset([name])] - empty)
        else:
            out = out + s * (x0[frozenset(names[: k + 1])] - x0[frozenset(names[:k])])
    return out


def _check_scales(scales: Mapping[str, float]) -> tuple[list[str], list[float]]:
    """Split a non-empty name->scale mapping into ordered names and float scales."""
    if not scales:
        raise ValueError("multi-CFG scales are empty; give at least one {condition: scale}.")
    return list(scales), [float(s) for s in scales.values()]


def multi_cfg(
    denoise_fn_by_condition_set: Callable[[Tensor, Tensor, frozenset[str]], Tensor]
    | Mapping[frozenset[str], Denoiser],
    scales: Mapping[str, float],
    *,
    mode: str = "compositional",
    interval: tuple[float, float] | None = None,
) -> Denoiser:
    """Multi-condition CFG with a scale per condition, compositional or nested form.

    ``denoise_fn_by_condition_set(x, sigma, active)`` evaluates the model with only the
    conditions in the frozenset ``active`` kept (the others dropped); a mapping from
    frozensets to denoisers works too (it must hold every set used, including the set of all
    conditions). With condition sets written as subscripts:

    - ``"compositional"`` (Liu et al. 2022, "Compositional Visual Generation with Composable
      Diffusion Models"): x0_{} + sum_i s_i (x0_{i} - x0_{}) -- each condition guided on its
      own against the unconditional model; all scales 1 give a product of experts, not the
      jointly conditioned model.
    - ``"nested"`` (Brooks et al. 2023, "InstructPix2Pix"), in the order of ``scales``:
      x0_{} + sum_k s_k (x0_{1..k} - x0_{1..k-1}); all scales 1 telescope to x0_{1..n}.

    Both cost n + 1 model calls; outside ``interval`` the all-conditions model alone is used.
    """
    names, values = _check_scales(scales)
    sets = _condition_sets(names, mode)
    _check_interval(interval)
    if isinstance(denoise_fn_by_condition_set, Mapping):
        table = denoise_fn_by_condition_set
        missing = [sorted(s) for s in sets if s not in table]
        if missing:
            raise ValueError(f"multi-CFG needs denoisers for condition sets {missing}.")
        fn = lambda x, sigma, active: table[active](x, sigma)  # noqa: E731
    else:
        fn = denoise_fn_by_condition_set

    def guided(x: Tensor, sigma: Tensor) -> Tensor:
        x0 = {s: fn(x, sigma, s) for s in dict.fromkeys(sets[:-1] if mode != "nested" else sets)}
        return _combine(x0, names, values, mode)

    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        full = lambda: fn(x, sigma, sets[-1])  # noqa: E731
        return _guided_or_plain(x, sigma, interval, lambda: guided(x, sigma), full)

    return denoise


def multi_cfg_batched(
    denoise_with_cond: Callable[[Tensor, Tensor, Any], Tensor],
    cond: Mapping[str, Any],
    null_cond: Mapping[str, Any],
    scales: Mapping[str, float],
    *,
    mode: str = "compositional",
    interval: tuple[float, float] | None = None,
    merge: Callable[[dict[str, Any]], Any] = dict,
) -> Denoiser:
    """Multi-condition CFG in one model call on an (n+1)-fold batch (see :func:`multi_cfg`).

    ``cond`` and ``null_cond`` map each condition name (e.g. ``"text"``, ``"field"``) to its
    value and to its dropped (null) value; the condition passed to ``denoise_with_cond`` for a
    condition set is ``merge({name: cond or null value})``, by default that dict itself.
    """
    names, values = _check_scales(scales)
    unknown = [n for n in names if n not in cond or n not in null_cond]
    if unknown:
        raise ValueError(f"conditions {unknown} have a scale but no value in cond/null_cond.")
    sets = _condition_sets(names, mode)
    sets = list(dict.fromkeys(sets[:-1] if mode != "nested" else sets))
    _check_interval(interval)
    pick = lambda s: merge({n: cond[n] if n in s else null_cond[n] for n in cond})  # noqa: E731

    def guided(x: Tensor, sigma: Tensor) -> Tensor:
        k, b = len(sets), x.shape[0]
        c = _cat_conditions([pick(s) for s in sets], b)
        x_rep = x.repeat(k, *([1] * (x.ndim - 1)))  # (k * B, ...)
        out = denoise_with_cond(x_rep, sigma.repeat(k), c).chunk(k, dim=0)  # k x (B, ...)
        return _combine(dict(zip(sets, out)), names, values, mode)

    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        full = lambda: denoise_with_cond(x, sigma, pick(frozenset(names)))  # noqa: E731
        return _guided_or_plain(x, sigma, interval, lambda: guided(x, sigma), full)

    return denoise


def with_x0_correction(denoise: Denoiser, *fns: X0Fn) -> Denoiser:
    """Apply corrections ``fn(x0_hat, sigma) -> x0`` in order after every model call.

    The x0-correction hook of DPM-Solver (Lu et al. 2022, ``correcting_x0_fn``): projections
    such as :func:`project_mean` (conservation) or :func:`project_values` (boundary values,
    known observations) then hold for every sampler's intermediate and final predictions.
    """
    if not fns:
        raise ValueError("with_x0_correction needs at least one correction function.")

    def corrected(x: Tensor, sigma: Tensor) -> Tensor:
        x0 = denoise(x, sigma)
        for fn in fns:
            x0 = fn(x0, sigma)
        return x0

    return corrected


def project_mean(target: float | Tensor, dims: Sequence[int] | None = None) -> X0Fn:
    """Orthogonal projection onto {mean of x0 over ``dims`` = target} (e.g. conserved mass).

    ``dims`` defaults to every non-batch axis; ``target`` is a float or a tensor that
    broadcasts against the kept-dims mean, e.g. ``(B, C, T, 1)`` for a per-frame mass of a
    ``(B, C, T, X)`` trajectory with ``dims=(-1,)``.
    """

    def project(x0: Tensor, sigma: Tensor) -> Tensor:
        axes = tuple(dims) if dims is not None else tuple(range(1, x0.ndim))
        return x0 - x0.mean(dim=axes, keepdim=True) + target

    return project


def project_values(mask: Tensor, values: Tensor | float) -> X0Fn:
    """Overwrite x0 where ``mask`` is true with known ``values`` (Dirichlet data, observations)."""

    def project(x0: Tensor, sigma: Tensor) -> Tensor:
        v = values.to(x0) if isinstance(values, Tensor) else values
        return torch.where(mask.to(device=x0.device, dtype=torch.bool), v, x0)

    return project
