"""The notebooks in ``notebooks/`` run top to bottom, the way a user runs them.

Each notebook is executed by ``nbclient`` in a kernel that runs this interpreter (a kernelspec
written into a temporary folder, so whatever ``python3`` kernel the machine has is not used),
with ``SPARKDL_NB_FAST=1``. A failing cell raises ``CellExecutionError`` and fails the test.

Notebook 1 runs self-contained: it synthesizes and ingests its demo dataset into
``SPARKDL_NB_WORKDIR``. Notebook 2 then trains, evaluates and predicts on that dataset
(``SPARKDL_NB_DATA``), so the ingest runs once. The kernels start their own Spark sessions;
this process starts neither Spark nor TensorFlow.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import pytest

from tests.helpers import ROOT

NOTEBOOKS = ROOT / "notebooks"
#: The notebooks the README points to: a check over none of them would pass vacuously.
NAMES = ("01_explore_dataset.ipynb", "02_train_evaluate.ipynb")
KERNEL_NAME = "sparkdl-notebook-test"
#: Per-cell limit: ingest and training cells take about a minute on a loaded 2-core machine.
CELL_TIMEOUT_S = 900
#: A fixed key (the demo otherwise makes a random one) that puts the 3 demo patients in 3
#: different splits, so notebook 2 evaluates on a real test split. Other keys also work: the
#: notebook then evaluates on the split that has rows.
TEST_KEY = "sparkdl-notebooks-test-key-000006"


def _kernel_manager(tmp: Path) -> Any:
    """A kernel manager whose only kernelspec runs ``sys.executable``."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec_dir = tmp / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "sparkdl (test)",
                "language": "python",
            }
        )
    )
    specs = KernelSpecManager(kernel_dirs=[str(tmp / "kernels")])
    return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)


def run_notebook(name: str, tmp: Path, **env: str) -> Any:
    """Execute ``notebooks/<name>`` with ``env`` added; return the executed notebook."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    kernel_env = {
        **os.environ,
        "SPARKDL_NB_FAST": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": python_path,
        **env,
    }
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        km=_kernel_manager(tmp / f"{name}.kernel"),
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute(env=kernel_env)
    nbformat.write(nb, tmp / name)  # the executed copy, for a look when a test fails
    return nb


def outputs(nb: Any, kind: str) -> list[Any]:
    """Every output of one ``output_type`` (``stream``, ``display_data``, ...)."""
    return [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == kind
    ]


def text_of(nb: Any) -> str:
    parts = [out.text for out in outputs(nb, "stream")]
    parts += [
        out.data.get("text/plain", "")
        for kind in ("execute_result", "display_data")
        for out in outputs(nb, kind)
    ]
    return "\n".join(parts)


#: What Spark and TensorFlow print that a notebook user should not see in a cell.
CONSOLE_NOISE = (
    "NativeCodeLoader",
    "resolves to a loopback address",
    "Service 'SparkUI' could not bind",
    "Setting default log level",
    "[Stage ",
    "jdk.incubator.vector",
    "I0000 ",
    "E0000 ",
    "cuInit",
    "Memory patch applied",
)


def noise(nb: Any) -> list[str]:
    """The lines of the cells' outputs that are known console noise."""
    text = "\n".join(out.text for out in outputs(nb, "stream"))
    return [line for line in text.splitlines() if any(m in line for m in CONSOLE_NOISE)]


def pngs(nb: Any) -> list[bytes]:
    return [
        base64.b64decode(out.data["image/png"])
        for kind in ("display_data", "execute_result")
        for out in outputs(nb, kind)
        if "image/png" in out.data
    ]


@pytest.fixture(scope="module")
def explored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    tmp = tmp_path_factory.mktemp("notebooks")
    workdir = tmp / "work"
    nb = run_notebook(
        "01_explore_dataset.ipynb",
        tmp,
        SPARKDL_NB_DATA="",
        SPARKDL_NB_MODEL="",
        SPARKDL_NB_WORKDIR=str(workdir),
        SPARKDL_DEID_KEY=TEST_KEY,
    )
    return nb, workdir


def notebooks() -> list[Path]:
    """Every notebook in notebooks/; the two the README names must be among them."""
    found = sorted(NOTEBOOKS.glob("*.ipynb"))
    missing = [name for name in NAMES if NOTEBOOKS / name not in found]
    assert not missing, f"no {', '.join(missing)} in {NOTEBOOKS}"
    return found


def test_notebooks_are_committed_without_outputs() -> None:
    for path in notebooks():
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        assert code, path
        assert all(not cell.outputs and cell.execution_count is None for cell in code), path


def test_notebooks_use_the_public_api_only() -> None:
    """What a notebook shows a user is what the package promises to keep (sparkdl.__all__)."""
    import re

    import sparkdl

    for path in notebooks():
        source = "\n".join(
            cell.source
            for cell in nbformat.read(path, as_version=4).cells
            if cell.cell_type == "code"
        )
        assert not re.findall(r"(?:from|import)\s+sparkdl\.\w+", source), path
        for names in re.findall(r"from sparkdl import ([\w, ]+)", source):
            assert {n.strip() for n in names.split(",")} <= set(sparkdl.__all__), path


@pytest.mark.slow
def test_explore_notebook_runs_on_its_demo_dataset(explored: tuple[Any, Path]) -> None:
    nb, workdir = explored
    manifest = json.loads((workdir / "dataset" / "manifest.json").read_text())
    assert manifest["counts"]["patches"] > 0
    text = text_of(nb)
    assert f"dataset: {workdir / 'dataset'}" in text
    assert "CT Image Storage" in text  # the catalog query by SOP class
    assert "burned_in_annotation" in text  # reject reasons (the demo's dose report)
    assert "localizer" in text  # volume outcomes
    # The viewer (3 slices through a nodule) and the gallery (positives over negatives).
    assert len(pngs(nb)) == 2
    assert (workdir / "inspect.png").is_file()
    assert noise(nb) == []


@pytest.mark.slow
def test_train_evaluate_notebook_trains_evaluates_and_predicts(
    explored: tuple[Any, Path], tmp_path: Path
) -> None:
    _, workdir = explored
    data = workdir / "dataset"
    train_dir = tmp_path / "work"
    nb = run_notebook(
        "02_train_evaluate.ipynb",
        tmp_path,
        SPARKDL_NB_DATA=str(data),
        SPARKDL_NB_MODEL="",
        SPARKDL_NB_WORKDIR=str(train_dir),
    )
    history = json.loads((train_dir / "model" / "history.json").read_text())
    assert history["epoch"] == [0, 1]  # FAST: two epochs
    metrics = json.loads((train_dir / "report" / "metrics.json").read_text())
    text = text_of(nb)
    assert metrics["split"] == "test" or f"evaluating on the {metrics['split']} split" in text
    assert metrics["n"] > 0
    assert "AUC:" in text and "confusion matrix:" in text  # evaluate's summary
    assert "probability" in text  # the predictions table
    # A model defined in the notebook, trained through the same runner.
    assert "tiny_cnn: 1 epochs" in text
    assert (train_dir / "custom-model" / "model.keras").is_file()
    # Curves, ROC, confusion matrix, scored patches.
    assert len(pngs(nb)) == 4
    assert noise(nb) == []
