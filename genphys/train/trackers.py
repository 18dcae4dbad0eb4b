"""A CSV tracker for accelerate (accelerate ships TensorBoard/W&B/... but no CSV writer)."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from accelerate.tracking import GeneralTracker, on_main_process


class CSVTracker(GeneralTracker):
    """Append ``step`` + scalar values to ``<logging_dir>/<run_name>.csv``; new keys widen it."""

    name = "csv"
    requires_logging_directory = True

    @on_main_process
    def __init__(self, run_name: str, logging_dir: str | os.PathLike):
        super().__init__()
        self.path = Path(logging_dir) / f"{run_name}.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.columns: list[str] = []
        if self.path.exists():  # resuming: keep the rows already written
            with self.path.open(newline="") as f:
                self.columns = next(csv.reader(f), [])

    @property
    def tracker(self) -> Path:
        """The CSV file path."""
        return self.path

    @on_main_process
    def store_init_configuration(self, values: dict) -> None:
        """Hyper-parameters are saved as YAML next to checkpoints, not in the CSV."""

    @on_main_process
    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        """Write one row; the header is rewritten when a new key appears."""
        row = {"step": step, **{k: float(v) for k, v in values.items()}}
        new = [k for k in row if k not in self.columns]
        if new:
            self._rewrite([*self.columns, *new] if self.columns else list(row))
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns).writerow(row)

    def _rewrite(self, columns: list[str]) -> None:
        rows = []
        if self.path.exists():
            with self.path.open(newline="") as f:
                rows = list(csv.DictReader(f))
        self.columns = columns
        tmp = self.path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, self.path)


def read_csv_log(path: str | os.PathLike) -> list[dict[str, float]]:
    """Rows of a CSV log as dicts of floats (empty cells omitted)."""
    with Path(path).open(newline="") as f:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)}
                for r in csv.DictReader(f)]
