"""Small helpers shared by the captioners: varied wording, shuffled order, readable numbers.

A captioner turns a trajectory into *facts* (each a list of alternative phrasings, some
stating parameters, some stating features measured from the solution) and asks
:func:`compose_captions` for ``k`` different sentences. Wording and fact order vary with a
seeded generator, so captions are deterministic per trajectory but not a single template.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def fmt(value: float, digits: int = 2) -> str:
    """A number as people write it: 0.004, 3.2e-5, 1e-5, 12, 0.35."""
    v = float(value)
    if v == 0:
        return "0"
    if abs(v) >= 1e-3 and abs(v) < 1e4:
        s = f"{v:.{digits}g}"
        return s
    mant, exp = f"{v:.{digits - 1}e}".split("e")
    mant = mant.rstrip("0").rstrip(".") if "." in mant else mant
    return f"{mant}e{int(exp)}"


def choose(rng: np.random.Generator, options: Sequence[str]) -> str:
    """One of ``options``, uniformly."""
    return options[int(rng.integers(len(options)))]


def sentence(text: str) -> str:
    """Capitalise the first letter and end with a full stop."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def compose_captions(rng: np.random.Generator, subject: Sequence[str],
                     facts: Sequence[Sequence[str]], k: int = 3,
                     min_facts: int | None = None) -> list[str]:
    """``k`` distinct captions, each a subject phrase followed by a shuffled subset of facts.

    ``subject``: alternative openings ("Viscous Burgers flow", "A 1D Burgers simulation").
    ``facts``: each a list of alternative phrasings of one fact; every caption states at
    least ``min_facts`` of them (default: all), in a random order with random wording.
    """
    facts = [f for f in facts if len(f)]
    n_min = len(facts) if min_facts is None else min(min_facts, len(facts))
    out: list[str] = []
    for _ in range(50 * k):
        n = int(rng.integers(n_min, len(facts) + 1))
        idx = rng.permutation(len(facts))[:n]
        parts = [choose(rng, facts[i]) for i in idx]
        head = choose(rng, subject)
        if not parts:
            cap = sentence(head)
        elif rng.random() < 0.5:
            cap = sentence(head + " with " + _join(parts[:1])) + (
                " " + " ".join(sentence(p) for p in parts[1:]) if len(parts) > 1 else "")
        else:
            cap = sentence(head + ": " + _join(parts))
        if cap not in out:
            out.append(cap)
        if len(out) == k:
            break
    return out


def _join(parts: Sequence[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]
