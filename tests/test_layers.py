"""The import direction of DESIGN.md: samplers never imports genphys; layers point down."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    mods = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mods.add(node.module)
    return mods


def test_samplers_import_nothing_from_genphys():
    files = list((ROOT / "samplers").rglob("*.py"))
    assert files, "samplers/ package is missing"
    for f in files:
        bad = {m for m in _imports(f) if m == "genphys" or m.startswith("genphys.")}
        assert not bad, f"{f.relative_to(ROOT)} imports {sorted(bad)}"


# layer -> packages it must not import (higher layers)
FORBIDDEN = {
    "physics": ["genphys.data", "genphys.wavelets", "genphys.backbone", "genphys.train",
                "genphys.pipelines", "genphys.commands", "genphys.cli", "samplers"],
    "data": ["genphys.wavelets", "genphys.backbone", "genphys.train", "genphys.pipelines",
             "genphys.commands", "genphys.cli", "samplers"],
    "diffusion": ["genphys.physics", "genphys.data", "genphys.train", "genphys.pipelines",
                  "genphys.commands", "genphys.cli"],
    "backbone": ["genphys.physics", "genphys.data", "genphys.train", "genphys.pipelines",
                 "genphys.commands", "genphys.cli"],
    "autoencoder": ["genphys.train", "genphys.pipelines", "genphys.commands", "genphys.cli"],
    "wavelets": ["genphys.physics", "genphys.data", "genphys.backbone", "genphys.train",
                 "genphys.pipelines", "genphys.commands", "genphys.cli"],
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_point_down(layer):
    for f in (ROOT / "genphys" / layer).rglob("*.py"):
        for m in _imports(f):
            for bad in FORBIDDEN[layer]:
                assert not (m == bad or m.startswith(bad + ".")), (
                    f"{f.relative_to(ROOT)} imports {m} (layer {layer} may not import {bad})")
