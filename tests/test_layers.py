"The house's layers hold: `lint-imports` keeps the contract of pyproject.toml, and breaks it when a module imports upwards."
import os, shutil, subprocess

from conftest import BIN, ROOT


def lint_imports(package_parent=ROOT) -> subprocess.CompletedProcess:
    "`lint-imports` with the contract of pyproject.toml, on the package found in `package_parent`."
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run([str(BIN / "lint-imports"), str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=package_parent, capture_output=True, text=True, timeout=300, env=env)


def test_the_layers_are_kept():
    p = lint_imports()
    assert p.returncode == 0 and "2 kept, 0 broken" in p.stdout, p.stdout + p.stderr


def test_an_upward_import_breaks_the_contract(tmp_path):
    "A copy of the package whose config imports the runner (a cycle through every layer) is refused."
    shutil.copytree(ROOT / "mlops_nb", tmp_path / "mlops_nb", ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "mlops_nb" / "config.py", "a") as f: f.write("\nfrom mlops_nb import pipeline  # upwards\n")
    p = lint_imports(tmp_path)
    assert p.returncode != 0 and "BROKEN" in p.stdout and "mlops_nb.config -> mlops_nb.pipeline" in p.stdout, p.stdout + p.stderr


def test_every_module_has_a_layer():
    "A new module joins the contract: one left out of every layer would be free to import anything."
    import tomllib
    contract = next(c for c in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    layered = {m.strip() for layer in contract["layers"] for m in layer.split("|")}
    modules = {f"mlops_nb.{p.stem}" for p in (ROOT / "mlops_nb").glob("*.py") if not p.stem.startswith("_")}
    assert modules == layered, (modules - layered, layered - modules)
