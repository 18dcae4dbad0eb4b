"""Score a trained model on held-out solver trajectories (``genphys eval``).

Each held-out trajectory conditions the model on its first frame, its parameters and (for
text models) its first caption; ``num_samples`` samples are drawn per trajectory with seeds
``seed + i * num_samples + k`` (trajectory i, member k), so a sample does not depend on the
batch it was drawn in. The samples are compared with the stored solver trajectory in
physical units (:mod:`genphys.evaluation.metrics`) and, for Burgers, re-solved from their own
first frame with the stated viscosity (the physical-consistency error,
:func:`genphys.physics.spectral1d.consistency_error`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genphys.errors import UserInputError
from genphys.evaluation import metrics as M

CONSISTENT_SYSTEMS = ("burgers1d",)  # systems with an independent re-solver


@dataclass
class HeldOut:
    """Held-out trajectories on the model grid, physical units."""

    truth: np.ndarray  # (N, C, T, *space) float64
    params: dict[str, np.ndarray]  # model parameter name -> (N,)
    captions: list[str]  # (N,) first caption ("" if none)
    seeds: list[int]  # (N,) trajectory seeds from the file
    indices: list[int]  # (N,) positions in the file
    time: np.ndarray  # (T,)
    system: str


@dataclass
class Evaluation:
    """The JSON report plus the arrays the plots need."""

    report: dict[str, Any]
    data: HeldOut
    samples: np.ndarray  # (N, K, C, T, *space) float64
    per_time: dict[str, np.ndarray]  # curve name -> (N, T), member- and channel-mean
    notes: list[str] = field(default_factory=list)


def check_options(steps: Any, sampler: Any, num_samples: Any, limit: Any,
                  batch_size: Any) -> None:
    """One clear sentence for each bad option, before anything is loaded."""
    from genphys.pipelines.sampling import check_sampler, check_steps

    check_steps(steps)
    check_sampler(sampler)
    for name, v, lo in (("num_samples", num_samples, 1), ("batch_size", batch_size, 1),
                        ("limit", 1 if limit is None else limit, 1)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise UserInputError(f"{name}={v!r} is invalid; allowed: an integer >= {lo}.")


def _match_axis(values: np.ndarray, wanted: Any) -> np.ndarray | None:
    """Indices of ``values`` equal (to 1e-6 of the extent) to each ``wanted`` entry, or None."""
    if wanted is None or len(wanted) == 0:
        return None
    v, w = np.asarray(values, np.float64), np.asarray(wanted, np.float64)
    idx = np.abs(v[:, None] - w[None, :]).argmin(axis=0)  # (len(w),)
    tol = 1e-6 * max(float(np.ptp(v)), 1e-12)
    return idx if np.all(np.abs(v[idx] - w) <= tol) else None


def model_grid(spec: Any, u: np.ndarray, time: np.ndarray,
               coords: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``u (N, C, T, *space)`` to the model's frames and points (training strides)."""
    want = tuple(spec.field_shape[1:])  # (T, *space)
    if tuple(u.shape[2:]) == want:
        return u, time
    ti = _match_axis(time, spec.extra.get("time"))
    model_coords = spec.extra.get("coords", {})
    axes = [_match_axis(coords.get(a, []), model_coords.get(a)) for a in list(coords)]
    if ti is None or len(axes) != len(want) - 1 or any(a is None for a in axes):
        raise UserInputError(f"the data grid (T, *space)={tuple(u.shape[2:])} differs from the "
                             f"model grid {want}; evaluate on data made with the model's grid.")
    u = u[:, :, ti]
    for d, idx in enumerate(axes):
        u = np.take(u, idx, axis=3 + d)
    return u, np.asarray(time)[ti]


def _param_names(spec: Any, data_names: list[str]) -> dict[str, str]:
    """Model parameter name -> data parameter name."""
    if not spec.params:
        return {}
    names = list(spec.param_names)
    if all(n in data_names for n in names):
        return {n: n for n in names}
    if names == [f"p{i}" for i in range(len(names))] and len(data_names) == len(names):
        return dict(zip(names, data_names))  # export without its training file: by position
    raise UserInputError(f"the model is conditioned on parameters {names} but the data has "
                         f"{data_names}.")


def split_fractions(model_dir: str | os.PathLike) -> tuple[float, float, float]:
    """The training run's ``data.split_fractions`` (export ``config.yaml``), else 0.8/0.1/0.1."""
    import yaml

    cfg = Path(model_dir) / "config.yaml"
    try:
        fr = (yaml.safe_load(cfg.read_text()) or {}).get("data", {}).get("split_fractions")
    except (OSError, yaml.YAMLError, AttributeError):
        fr = None
    return tuple(float(v) for v in fr) if fr and len(fr) == 3 else (0.8, 0.1, 0.1)


def load_held_out(spec: Any, data_path: str | os.PathLike, split: str, limit: int | None,
                  fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> HeldOut:
    """The ``split`` trajectories of a grid file (seed-hash splits), checked against the model."""
    from genphys.data import open_trajectories
    from genphys.data.dataset import SPLITS, seed_split

    if split not in SPLITS:
        raise UserInputError(f"split={split!r} is not allowed; use one of {', '.join(SPLITS)}.")
    if not Path(data_path).is_file():
        raise UserInputError(f"data file {str(data_path)!r} does not exist.")
    with open_trajectories(data_path) as f:
        if f.kind != "grid":
            raise UserInputError(f"{data_path} holds mesh data; genphys eval scores grid models.")
        if spec.system and f.system != spec.system:
            raise UserInputError(f"{data_path} holds {f.system!r} trajectories but the model "
                                 f"was trained on {spec.system!r}.")
        missing = [n for n in spec.field_names if n not in f.field_names]
        if missing:
            raise UserInputError(f"{data_path} lacks the model's fields {missing}; it has "
                                 f"{f.field_names}.")
        pmap = _param_names(spec, f.param_names)
        idx = [i for i, s in enumerate(f.seeds())
               if split == "all" or seed_split(int(s), fractions) == split]
        idx = idx[:limit] if limit else idx
        if not idx:
            raise UserInputError(f"the {split!r} split of {data_path} holds no trajectories.")
        items = [f[i] for i in idx]
        chans = [f.field_names.index(n) for n in spec.field_names]
        system = f.system
    u = np.stack([np.asarray(it["fields"], np.float64)[chans] for it in items])  # (N, C, T, *sp)
    u, time = model_grid(spec, u, np.asarray(items[0]["time"]), items[0]["coords"])
    params = {m: np.array([it["params"].get(d, np.nan) for it in items], np.float64)
              for m, d in pmap.items()}
    return HeldOut(truth=u, params=params, captions=[(it["captions"] or [""])[0] for it in items],
                   seeds=[int(it["seed"]) for it in items], indices=idx, time=time,
                   system=system)


def _takes_text(pipe: Any, notes: list[str]) -> bool:
    cfg = pipe.backbone.config
    if not (cfg.get("token_dim", 0) or cfg.get("pooled_dim", 0)):
        return False
    if pipe.text_encoder is None:
        notes.append("the model takes text but its folder names no text encoder; sampled "
                     "without captions.")
        return False
    return True


def generate(pipe: Any, data: HeldOut, steps: int, sampler: str, num_samples: int, seed: int,
             batch_size: int, progress: bool, notes: list[str],
             conserve: bool | None = None) -> np.ndarray:
    """Samples ``(N, K, C, T, *space)`` conditioned on each trajectory's frame 0, parameters
    and (text models) first caption."""
    from tqdm.auto import tqdm

    text = _takes_text(pipe, notes)
    if text and not all(data.captions):
        text = False
        notes.append("some trajectories have no caption; sampled without captions.")
    n, k = len(data.truth), num_samples
    cond_state = pipe.spec.condition == "first_frame"
    if not cond_state:
        notes.append("the model is not first-frame conditioned; samples are conditioned on "
                     "parameters/captions only.")
        if not text:  # the pipeline takes one parameter set per call without states or prompts
            batch_size = 1
    out = []
    with tqdm(total=n, desc="eval", unit="traj", disable=not progress) as bar:
        for lo in range(0, n, batch_size):
            sl = slice(lo, min(lo + batch_size, n))
            params = {p: v[sl] for p, v in data.params.items()} or None
            m = sl.stop - sl.start
            res = pipe(data.captions[sl] if text else None, num_inference_steps=steps,
                       sampler=sampler, num_samples=k, params=params,
                       initial_state=data.truth[sl, :, 0] if cond_state else None,
                       generator=[seed + i * k + j for i in range(sl.start, sl.stop)
                                  for j in range(k)], conserve=conserve)
            traj = res.trajectories.detach().cpu().double().numpy()  # (m K, C, T, *space)
            out.append(traj.reshape(m, k, *traj.shape[1:]))  # (m, K, C, T, *space)
            bar.update(m)
    return np.concatenate(out)


def consistency(data: HeldOut, samples: np.ndarray, notes: list[str],
                progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(samples (N, K), truth (N,)) relative L2 vs a re-solve from their own frame 0; NaN where
    the system has no re-solver, nu is unknown or a sample is not finite.

    One re-solve per trajectory (its K samples and its stored truth together), so each runs at
    the resolution its own viscosity needs (``spectral1d.resolve_from_first_frame``).
    """
    from tqdm.auto import tqdm

    from genphys.physics.spectral1d import consistency_error

    n, k = samples.shape[:2]
    err, ref = np.full((n, k), np.nan), np.full(n, np.nan)
    nu = data.params.get("nu")
    if data.system not in CONSISTENT_SYSTEMS or samples.ndim != 5 or nu is None:
        notes.append(f"physical consistency is not measured for {data.system!r} (re-solver for "
                     f"{', '.join(CONSISTENT_SYSTEMS)} with a known nu only).")
        return err, ref
    t_final = float(data.time[-1] - data.time[0])
    for i in tqdm(range(n), desc="re-solve", unit="traj", disable=not progress):
        if not (np.isfinite(nu[i]) and nu[i] > 0):
            continue
        u = np.concatenate([samples[i, :, 0], data.truth[i, 0][None]])  # (K + 1, T, X)
        ok = np.isfinite(u).reshape(k + 1, -1).all(axis=1)
        e = np.full(k + 1, np.nan)
        e[ok] = consistency_error(u[ok], nu[i], t_final)
        err[i], ref[i] = e[:k], e[k]
    bad = int(np.isnan(err).sum())
    if bad:
        notes.append(f"{bad} samples are not finite or lack nu; their consistency is NaN.")
    return err, ref


def _per_member(fn, samples: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``fn(pred, true)`` of every member, averaged over members: (N, ...)."""
    n, k = samples.shape[:2]
    val = fn(samples.reshape(n * k, *samples.shape[2:]), np.repeat(truth, k, axis=0))
    return val.reshape(n, k, *val.shape[1:]).mean(axis=1)  # (N, ...)


def trajectory_metrics(truth: np.ndarray, samples: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric per trajectory (member-mean where it is per sample): name -> (N,)."""
    n, k = samples.shape[:2]
    out = {"rel_l2": _per_member(M.rel_l2, samples, truth),
           "nrmse": _per_member(M.nrmse, samples, truth)}
    bands = _per_member(lambda p, t: np.stack(list(M.frmse(p, t).values()), axis=1),
                        samples, truth)  # (N, n_bands)
    out.update({f"frmse_{b}": bands[:, j] for j, b in enumerate(M.BANDS)})
    drift = M.conservation_drift(samples.reshape(n * k, *samples.shape[2:]))  # (N K, C, T)
    out["conservation_drift_pred"] = np.abs(drift).max(axis=2).mean(axis=1).reshape(n, k).mean(1)
    out["conservation_drift_true"] = np.abs(M.conservation_drift(truth)).max(axis=2).mean(axis=1)
    out["crps"] = M.crps_ensemble(samples, truth)
    if k >= 2:
        out["spread_skill"] = M.spread_skill(samples, truth)
        out["ensemble_mean_rel_l2"] = M.rel_l2(samples.mean(axis=1), truth)
    return out


def per_time_metrics(truth: np.ndarray, samples: np.ndarray) -> dict[str, np.ndarray]:
    """Curves over time: name -> (N, T) (member-mean, channel-mean)."""
    n, k = samples.shape[:2]
    drift = M.conservation_drift(samples.reshape(n * k, *samples.shape[2:]))  # (N K, C, T)
    return {"rel_l2": _per_member(M.rel_l2_per_time, samples, truth),
            "nrmse": _per_member(M.nrmse_per_time, samples, truth),
            "drift_pred": drift.mean(axis=1).reshape(n, k, -1).mean(axis=1),
            "drift_true": M.conservation_drift(truth).mean(axis=1)}


def _summary(per_traj: dict[str, np.ndarray], samples: np.ndarray, truth: np.ndarray,
             cons: np.ndarray, cons_truth: np.ndarray) -> dict[str, float]:
    """Means over trajectories (medians of the relative L2 too) and pooled ensemble scores."""
    out = {name: float(np.mean(v)) for name, v in per_traj.items()}
    out["rel_l2_median"] = float(np.median(per_traj["rel_l2"]))
    n, k = samples.shape[:2]
    if k >= 2:  # one ratio over all points of all trajectories: (1, K, N*C*T*space)
        pooled = np.moveaxis(samples, 1, 0).reshape(1, k, -1)
        out["spread_skill_pooled"] = float(M.spread_skill(pooled, truth.reshape(1, -1))[0])
    out["consistency"] = float(np.nanmean(cons)) if np.isfinite(cons).any() else math.nan
    out["consistency_truth"] = (float(np.nanmean(cons_truth)) if np.isfinite(cons_truth).any()
                                else math.nan)
    return out


def by_decade(nu: np.ndarray, values: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Mean of each per-trajectory value per viscosity decade ``[1e-3, 1e-2)``."""
    ok = np.isfinite(nu) & (nu > 0)
    dec = np.floor(np.log10(np.where(ok, nu, 1.0)) + 1e-12).astype(int)
    out = {}
    for d in sorted(set(dec[ok].tolist())):
        sel = ok & (dec == d)
        row = {"n": int(sel.sum())}
        row.update({k: float(np.nanmean(v[sel])) if np.isfinite(v[sel]).any() else math.nan
                    for k, v in values.items()})
        out[f"[1e{d}, 1e{d + 1})"] = row
    return out


def build_report(data: HeldOut, samples: np.ndarray, cons: np.ndarray, cons_truth: np.ndarray,
                 options: dict[str, Any], notes: list[str],
                 field_names: list[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The ``metrics.json`` content and the per-time curves ``(N, T)``."""
    per_traj = trajectory_metrics(data.truth, samples)
    per_traj["consistency"] = np.nanmean(cons, axis=1) if np.isfinite(cons).any() else cons[:, 0]
    curves = per_time_metrics(data.truth, samples)
    spec_t = M.power_spectrum(data.truth).mean(axis=0)  # (C, S)
    spec_p = M.power_spectrum(samples.reshape(-1, *samples.shape[2:])).mean(axis=0)  # (C, S)
    n_shell = spec_t.shape[-1]  # shells 0..n_shell-1; bands are [lo, hi)
    report = {
        **options, "system": data.system, "n_trajectories": len(data.truth),
        "field_names": field_names, "param_names": list(data.params), "time": data.time,
        "fourier_bands": {b: [lo, min(hi or n_shell, n_shell)] for b, (lo, hi) in M.BANDS.items()},
        "summary": _summary({k: v for k, v in per_traj.items() if k != "consistency"},
                            samples, data.truth, cons, cons_truth),
        "per_time": {k: {"mean": v.mean(0), "p10": np.percentile(v, 10, axis=0),
                         "p90": np.percentile(v, 90, axis=0)} for k, v in curves.items()},
        "spectra": {"k": np.arange(spec_t.shape[-1]), "truth": dict(zip(field_names, spec_t)),
                    "pred": dict(zip(field_names, spec_p))},
        "per_trajectory": [
            {"index": data.indices[i], "seed": data.seeds[i], "caption": data.captions[i],
             "params": {p: v[i] for p, v in data.params.items()},
             "consistency_truth": cons_truth[i], "sample_consistency": cons[i],
             **{k: v[i] for k, v in per_traj.items()}} for i in range(len(data.truth))],
        "notes": notes,
    }
    if "nu" in data.params:
        report["by_viscosity_decade"] = by_decade(data.params["nu"], per_traj)
    return report, curves


def run_evaluation(model_dir: str | os.PathLike, data_path: str | os.PathLike,
                   split: str = "test", steps: int = 10, sampler: str = "dpmpp_2m",
                   num_samples: int = 1, limit: int | None = None, seed: int = 0,
                   batch_size: int = 16, *, device: str = "cpu", progress: bool = True,
                   check_consistency: bool = True, conserve: bool | None = None) -> Evaluation:
    """Generate for every held-out trajectory and score; see :func:`evaluate`."""
    from genphys.pipelines import TextToSimulationPipeline

    check_options(steps, sampler, num_samples, limit, batch_size)
    if not Path(data_path).is_file():
        raise UserInputError(f"data file {str(data_path)!r} does not exist.")
    pipe = TextToSimulationPipeline.from_pretrained(model_dir, device=device)
    fractions = split_fractions(model_dir)
    data = load_held_out(pipe.spec, data_path, split, limit, fractions)
    notes: list[str] = []
    samples = generate(pipe, data, steps, sampler, num_samples, seed, batch_size, progress,
                       notes, conserve)
    if check_consistency:
        cons, cons_truth = consistency(data, samples, notes, progress)
    else:
        cons, cons_truth = np.full(samples.shape[:2], np.nan), np.full(len(samples), np.nan)
        notes.append("physical consistency was skipped on request.")
    options = {"model": str(model_dir), "data": str(data_path), "split": split, "steps": steps,
               "sampler": sampler, "num_samples": num_samples, "limit": limit, "seed": seed,
               "split_fractions": list(fractions),
               "conserve": bool(pipe.conserved_channels(conserve))}
    report, per_time = build_report(data, samples, cons, cons_truth, options, notes,
                                    list(pipe.spec.field_names))
    return Evaluation(report=report, data=data, samples=samples, per_time=per_time,
                      notes=notes)


def evaluate(model_dir: str | os.PathLike, data_path: str | os.PathLike, split: str = "test",
             steps: int = 10, sampler: str = "dpmpp_2m", num_samples: int = 1,
             limit: int | None = None, seed: int = 0, batch_size: int = 16, *,
             device: str = "cpu", progress: bool = True,
             check_consistency: bool = True, conserve: bool | None = None) -> dict[str, Any]:
    """Metrics of a model's samples vs held-out solver trajectories, as a JSON-able dict."""
    return run_evaluation(model_dir, data_path, split, steps, sampler, num_samples, limit, seed,
                          batch_size, device=device, progress=progress,
                          check_consistency=check_consistency, conserve=conserve).report


def json_safe(obj: Any) -> Any:
    """Plain JSON values: numpy scalars/arrays to Python, NaN and infinities to None."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj
