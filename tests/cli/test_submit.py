"""spark-submit support: scripts/package_env.sh, scripts/submit_*.sh and a real standalone master.

The executors (and the driver) of the cluster test run a Python that has the third-party stack
but not sparkdl, like a cluster node that was given only the pinned stack: the ingest can only
succeed if the code really travels with ``--py-files``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, SCRIPTS, TEST_KEY, run_child

#: The repository's own scripts (packaging, spark-submit), not the tests'.
REPO_SCRIPTS = ROOT / "scripts"
#: Each case builds the package, runs the scripts or starts a cluster in child processes.
pytestmark = pytest.mark.slow


def _spark_home() -> str:
    import pyspark

    return os.path.dirname(pyspark.__file__)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel and the --py-files zip, built once by scripts/package_env.sh."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [str(REPO_SCRIPTS / "package_env.sh"), "--dist", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SPARKDL_PYTHON": sys.executable},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str(out / "sparkdl-0.1.0.zip")
    return out


def test_zip_carries_the_package_and_its_rule_table(dist: Path, bare_python: Path) -> None:
    """The zip alone makes sparkdl importable, and rules.json loads from inside it."""
    zip_path = dist / "sparkdl-0.1.0.zip"
    # No PYTHONPATH: the bare Python must find sparkdl in the zip or nowhere.
    loaded = run_child(
        SCRIPTS / "import_from_zip.py",
        str(zip_path),
        python=bare_python,
        env={"PYTHONPATH": None},
        cwd=dist,
        timeout=120,
    ).result
    assert loaded["file"].startswith(str(zip_path))
    assert loaded["num_rules"] > 500  # PS3.15 Table E.1-1 has several hundred rows
    assert (dist / "sparkdl-0.1.0-py3-none-any.whl").read_bytes() == zip_path.read_bytes()


def _dry_run(args: list[str], dist: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # No SPARK_HOME or SPARK_MASTER from the caller's shell: the script's own defaults are tested.
    inherited = {k: v for k, v in os.environ.items() if k not in ("SPARK_HOME", "SPARK_MASTER")}
    env = {**inherited, "SPARKDL_DIST": str(dist), "SPARKDL_PYTHON": sys.executable, **env}
    return subprocess.run(
        [str(REPO_SCRIPTS / "submit_ingest.sh"), "--dry-run", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_submit_script_builds_the_spark_submit_command(dist: Path) -> None:
    proc = _dry_run(
        ["--conf", "spark.executor.memory=3g", "--", "/in", "--output", "/out"],
        dist,
        SPARK_MASTER="spark://127.0.0.1:7077",
    )
    assert proc.returncode == 0, proc.stderr
    cmd = proc.stdout.split()
    assert cmd[0] == os.path.join(_spark_home(), "bin", "spark-submit")
    assert cmd[cmd.index("--master") + 1] == "spark://127.0.0.1:7077"
    assert cmd[cmd.index("--py-files") + 1] == str(dist / "sparkdl-0.1.0.zip")
    assert cmd[cmd.index("--properties-file") + 1] == str(ROOT / "conf" / "spark-local.conf")
    assert f"spark.pyspark.python={sys.executable}" in cmd
    # The user's --conf comes after the script's, so it wins; sparkdl's arguments come last.
    python_conf = f"spark.pyspark.python={sys.executable}"
    assert cmd.index("spark.executor.memory=3g") > cmd.index(python_conf)
    assert cmd[-5:] == [str(REPO_SCRIPTS / "sparkdl_main.py"), "ingest", "/in", "--output", "/out"]

    # --master beats SPARK_MASTER; a packed venv is shipped and used by the executors (and by
    # the driver in cluster mode); the user's own properties file replaces conf/spark-local.conf.
    proc = _dry_run(
        [
            "--master",
            "yarn",
            "--deploy-mode",
            "cluster",
            "--env-archive",
            "hdfs://nn/env.tgz",
            "--properties-file",
            "my.conf",
            "--",
            "/in",
            "--output",
            "/out",
        ],
        dist,
        SPARK_MASTER="spark://127.0.0.1:7077",
    )
    assert proc.returncode == 0, proc.stderr
    cmd = proc.stdout.split()
    assert cmd[cmd.index("--master") + 1] == "yarn"
    assert cmd[cmd.index("--archives") + 1] == "hdfs://nn/env.tgz#environment"
    assert "spark.pyspark.python=./environment/bin/python" in cmd
    assert "spark.pyspark.driver.python=./environment/bin/python" in cmd
    assert cmd.count("--properties-file") == 1 and "my.conf" in cmd
    assert "SPARKDL_DEID_KEY" in proc.stderr  # cluster mode: says how the key reaches the driver

    proc = _dry_run(["/in", "--output", "/out"], dist)
    assert proc.returncode == 2
    assert "missing `--`" in proc.stderr
    proc = _dry_run(["--", "/in", "--output", "/out", "--conf", "spark.executor.memory=3g"], dist)
    assert proc.returncode == 2
    assert "would be ignored" in proc.stderr


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _wait_for(what: str, check: Any, timeout_s: float, logs: Path) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            result = check()
            if result:
                return result
        time.sleep(1)
    tail = logs.read_text()[-3000:]
    raise AssertionError(f"{what} not ready after {timeout_s:.0f} s; logs:\n{tail}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop one daemon we started: its own process group (spark-class execs java)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@contextlib.contextmanager
def standalone_cluster(base: Path, env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """A Spark standalone master and one worker (1 core, 1 GB) on 127.0.0.1, from pip pyspark.

    Yields the master URL and the master's JSON status URL; both daemons are always stopped.
    """
    spark_class = os.path.join(env["SPARK_HOME"], "bin", "spark-class")
    port, ui_port, worker_port, worker_ui_port = (_free_port() for _ in range(4))
    master_url, status_url = f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}/json/"
    logs = base / "daemons.log"
    procs: list[subprocess.Popen[bytes]] = []
    with open(logs, "wb") as log:
        try:
            procs.append(
                subprocess.Popen(
                    [
                        spark_class,
                        "org.apache.spark.deploy.master.Master",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--webui-port",
                        str(ui_port),
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            _wait_for(
                "standalone master", lambda: _get_json(status_url)["status"] == "ALIVE", 150, logs
            )
            procs.append(
                subprocess.Popen(
                    [
                        spark_class,
                        "org.apache.spark.deploy.worker.Worker",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(worker_port),
                        "--webui-port",
                        str(worker_ui_port),
                        "--cores",
                        "1",
                        "--memory",
                        "1g",
                        "--work-dir",
                        str(base / "work"),
                        master_url,
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            _wait_for(
                "standalone worker",
                lambda: any(w["state"] == "ALIVE" for w in _get_json(status_url)["workers"]),
                150,
                logs,
            )
            yield master_url, status_url
        finally:
            for proc in reversed(procs):
                _stop(proc)


def test_ingest_through_spark_submit_on_a_standalone_master(
    tmp_path: Path, dist: Path, bare_python: Path
) -> None:
    import pyarrow.parquet as pq

    from sparkdl.synth import synthesize_cohort

    cohort = synthesize_cohort(tmp_path / "cohort", num_patients=1, seed=2, image_size=48)
    env = {
        **os.environ,
        "SPARK_HOME": _spark_home(),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOCAL_DIRS": str(tmp_path / "local"),
        "SPARK_DAEMON_MEMORY": "384m",
        "SPARKDL_DIST": str(dist),
        "SPARKDL_DEID_KEY": TEST_KEY,
    }
    env.pop("SPARK_CONF_DIR", None)
    out = tmp_path / "out"
    with standalone_cluster(tmp_path, env) as (master_url, status_url):
        proc = subprocess.run(
            [
                str(REPO_SCRIPTS / "submit_ingest.sh"),
                "--master",
                master_url,
                "--conf",
                f"spark.pyspark.python={bare_python}",
                "--conf",
                f"spark.pyspark.driver.python={bare_python}",
                "--conf",
                "spark.driver.memory=1g",
                "--conf",
                "spark.executor.memory=768m",
                "--conf",
                "spark.ui.enabled=false",
                "--conf",
                "spark.driver.host=127.0.0.1",
                "--conf",
                "spark.driver.bindAddress=127.0.0.1",
                "--",
                str(cohort.dicom_dir),
                "--output",
                str(out),
                "--annotations",
                str(cohort.annotations_csv),
            ],
            capture_output=True,
            text=True,
            timeout=420,
            env=env,
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr[-5000:]
        finished = _wait_for(
            "the finished application on the master",
            lambda: [
                app
                for app in _get_json(status_url)["completedapps"]
                if app["name"].startswith("sparkdl")
            ],
            60,
            tmp_path / "daemons.log",
        )

    (app,) = finished
    assert app["state"] == "FINISHED"
    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["files_seen"] == counts["units"] == cohort.num_files
    assert counts["cataloged"] > 0 and counts["volumes"] > 0 and counts["patches"] > 0
    assert pq.read_table(out / "catalog").num_rows == counts["cataloged"]
    # conf/spark-local.conf (the default --properties-file) reached the session.
    catalog_file = next((out / "catalog").glob("*.parquet"))
    assert pq.ParquetFile(catalog_file).metadata.row_group(0).column(0).compression == "ZSTD"
    # The executor ran on the worker, fetched the zip and imported sparkdl from it.
    (executor_dir,) = (tmp_path / "work").glob(f"{app['id']}/*")
    assert (executor_dir / "sparkdl-0.1.0.zip").is_file()
    # The key is in no log: not the driver's, not the executor's.
    executor_logs = [executor_dir / "stdout", executor_dir / "stderr"]
    logs = proc.stdout + proc.stderr + "".join(p.read_text(errors="replace") for p in executor_logs)
    assert TEST_KEY not in logs
