"The house's layers hold: `lint-imports` keeps the contract of pyproject.toml, and breaks it when a module imports upwards."
import os, shutil, subprocess

import pytest

from conftest import BIN, ROOT


def lint_imports(package_parent=ROOT) -> subprocess.CompletedProcess:
    "`lint-imports` with the contract of pyproject.toml, on the package found in `package_parent`."
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run([str(BIN / "lint-imports"), str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=package_parent, capture_output=True, text=True, timeout=300, env=env)


def test_the_layers_are_kept():
    p = lint_imports()
    assert p.returncode == 0 and "2 kept, 0 broken" in p.stdout, p.stdout + p.stderr


@pytest.mark.parametrize("module, imported", [
    ("config", "pipeline"),  # upwards: a cycle through every layer
    ("monitor", "deploy"),  # sideways: the phases are independent of one another
])
def test_a_forbidden_import_breaks_the_contract(tmp_path, module, imported):
    "A copy of the package where `module` imports `imported` is refused, naming the import."
    shutil.copytree(ROOT / "mlops_nb", tmp_path / "mlops_nb", ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "mlops_nb" / f"{module}.py", "a") as f: f.write(f"\nfrom mlops_nb import {imported}  # forbidden\n")
    p = lint_imports(tmp_path)
    assert p.returncode != 0 and "BROKEN" in p.stdout and f"mlops_nb.{module} -> mlops_nb.{imported}" in p.stdout, p.stdout + p.stderr


def test_every_module_has_a_layer():
    "A new module joins the contract: one left out of every layer would be free to import anything."
    import tomllib
    contract = next(c for c in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    layered = {m.strip() for layer in contract["layers"] for m in layer.split("|")}
    modules = {f"mlops_nb.{p.stem}" for p in (ROOT / "mlops_nb").glob("*.py") if not p.stem.startswith("_")}
    assert modules == layered, (modules - layered, layered - modules)
