"""Dependable runs: a model URI means what its registry holds; wrong arguments end in one line."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests.test_restore import gray_of, make_package

CLI = [sys.executable, "-m", "cli"]


def _registry(tmp_path, name):
    return f"sqlite:///{tmp_path / f'{name}.db'}"


def test_a_model_uri_means_what_its_registry_holds(tmp_path, monkeypatch, prefect_harness):
    """Two registries each hold a different model as colorizer v1; one local state folder serves both."""
    import mlflow

    from colorize_core.package import load_package
    from colorize_core.package_files import package_checksum
    from flows.restore import restore_flow
    from tasks.registry import register_package, resolve_model

    monkeypatch.setenv("COLORIZE_HOME", str(tmp_path / "state"))
    src = tmp_path / "src"
    src.mkdir()
    gray_of("chelsea.png").save(src / "cat.png")
    refs, outputs = {}, {}
    for name, seed in (("a", 0), ("b", 1)):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", _registry(tmp_path, name))
        mlflow.set_tracking_uri(_registry(tmp_path, name))
        pkg_dir = make_package(tmp_path / f"pkg-{name}", "1", seed=seed)
        version = register_package(load_package(pkg_dir), "colorizer", f"test model {name}", alias="champion")
        assert version == "1"
        ref = resolve_model("models:/colorizer@champion")
        assert ref.sha256 == package_checksum(pkg_dir), "the local copy is the registry's model"
        refs[name] = ref
        dest = tmp_path / f"dest-{name}"
        s = restore_flow(str(src), str(dest), model="models:/colorizer@champion", progress=False)
        assert s.done == 1
        rows = pq.read_table(s.manifest).to_pylist()
        assert rows[0]["model_sha256"] == ref.sha256
        outputs[name] = np.asarray(Image.open(dest / "colorizer-v1" / "cat.png"))
    assert refs["a"].directory != refs["b"].directory and refs["a"].sha256 != refs["b"].sha256
    assert np.abs(outputs["a"].astype(int) - outputs["b"].astype(int)).mean() > 1, "each registry's model made its own colours"
    # back to the first registry: its own cached copy, still verified
    monkeypatch.setenv("MLFLOW_TRACKING_URI", _registry(tmp_path, "a"))
    mlflow.set_tracking_uri(_registry(tmp_path, "a"))
    assert resolve_model("models:/colorizer/1").sha256 == refs["a"].sha256


def test_a_champion_nobody_chose_follows_the_bundled_model_of_each_release(tmp_path, monkeypatch):
    """An upgraded checkout gets the new bundled model; a champion someone set is never moved."""
    import mlflow

    import tasks.model_resolve as resolving
    import tasks.registry as registry
    from colorize_core.package import load_package
    from colorize_core.package_files import package_checksum

    monkeypatch.setenv("COLORIZE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", _registry(tmp_path, "u"))
    mlflow.set_tracking_uri(_registry(tmp_path, "u"))
    monkeypatch.setattr(resolving, "BUNDLED_MODEL_DIR", make_package(tmp_path / "release-1", "1", seed=0))
    assert registry.resolve_model().version == "1"  # fresh registry: the bundled model becomes champion
    assert registry.resolve_model().version == "1", "the same release registers nothing more"
    monkeypatch.setattr(resolving, "BUNDLED_MODEL_DIR", make_package(tmp_path / "release-2", "2", seed=1))
    ref = registry.resolve_model()
    assert (ref.version, ref.sha256) == ("2", package_checksum(resolving.BUNDLED_MODEL_DIR))
    assert registry.resolve_model().version == "2"
    chosen = registry.register_package(
        load_package(make_package(tmp_path / "trained", "x", seed=2)), "colorizer", "trained", alias="champion"
    )
    monkeypatch.setattr(resolving, "BUNDLED_MODEL_DIR", make_package(tmp_path / "release-3", "3", seed=3))
    assert registry.resolve_model().version == chosen == "3", "a champion someone set stays"
    assert len(mlflow.MlflowClient().search_model_versions("name='colorizer'")) == 3


RESOLVE_ALONE = """
import json, sys
from tasks.model_resolve import resolve_model
try:
    ref = resolve_model(sys.argv[1])
    said = [ref.version, ref.directory, ref.sha256]
except LookupError as e:
    said = str(e)
print(json.dumps({"said": said, "mlflow": "mlflow" in sys.modules, "prefect": "prefect" in sys.modules}))
"""


def test_a_copied_version_resolves_from_the_registry_file_without_mlflow(tmp_path, monkeypatch):
    """The embedded registry's aliases and deletions are read from its own tables: the same verified
    copy as through MLflow, without importing MLflow or Prefect; anything not copied yet goes through MLflow."""
    import mlflow

    from colorize_core.package import load_package
    from tasks.registry import register_package, resolve_model

    monkeypatch.setenv("COLORIZE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", _registry(tmp_path, "f"))
    mlflow.set_tracking_uri(_registry(tmp_path, "f"))
    for seed in (0, 1):
        register_package(load_package(make_package(tmp_path / f"pkg{seed}", "x", seed=seed)), "colorizer", "test", alias="champion")
    first, second = resolve_model("models:/colorizer/1"), resolve_model("models:/colorizer@champion")
    env = dict(os.environ)

    def alone(uri: str) -> dict:
        out = subprocess.run([sys.executable, "-c", RESOLVE_ALONE, uri], env=env, capture_output=True, text=True, check=True)
        return json.loads(out.stdout.splitlines()[-1])

    said = alone("models:/colorizer@champion")
    assert said["said"] == ["2", second.directory, second.sha256] and not said["mlflow"] and not said["prefect"]
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("colorizer", "champion", "1")  # moved by someone else
    said = alone("models:/colorizer@champion")
    assert said["said"] == ["1", first.directory, first.sha256] and not said["mlflow"]
    client.delete_model_version("colorizer", "2")
    said = alone("models:/colorizer/2")
    assert "not in the registry" in said["said"] and said["mlflow"], "a deleted version is MLflow's to answer"


def test_an_alias_on_the_command_line_is_looked_up_in_the_projects_registry(tmp_path, monkeypatch):
    """`--compare-with colorizer@champion`, `compare --models`, `promote NAME@ALIAS`: the alias is read
    from the registry the project uses, never from MLflow's default ./mlflow.db of the user's folder."""
    import mlflow

    from colorize_core.package import load_package
    from tasks.registry import register_package

    monkeypatch.setenv("COLORIZE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the embedded default: the state folder's registry
    register_package(load_package(make_package(tmp_path / "pkg", "x")), "colorizer", "test", alias="champion")
    mlflow.set_tracking_uri(None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = "from tasks.model_names import output_folder; print(output_folder('colorizer@champion', '--compare-with'))"
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=os.getcwd()), cwd=elsewhere,
                         capture_output=True, text=True)  # fmt: skip
    assert out.stdout.strip().splitlines()[-1:] == ["colorizer-v1"], out.stderr[-2000:]
    assert not list(elsewhere.iterdir())


def test_a_tampered_local_copy_is_refused(tmp_path, monkeypatch):
    import mlflow

    from colorize_core.package import load_package
    from tasks.checks import ModelMismatch
    from tasks.registry import register_package, resolve_model

    monkeypatch.setenv("COLORIZE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", _registry(tmp_path, "r"))
    mlflow.set_tracking_uri(_registry(tmp_path, "r"))
    register_package(load_package(make_package(tmp_path / "pkg", "1")), "colorizer", "test")
    ref = resolve_model("models:/colorizer/1")
    with open(os.path.join(ref.directory, "config.json"), "a") as f:
        f.write(" ")
    with pytest.raises(ModelMismatch, match="does not match the registry"):
        resolve_model("models:/colorizer/1")


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    src = root / "src"
    src.mkdir()
    gray_of("chelsea.png").save(src / "cat.png")
    (root / "notanimage.jpg").write_text("this is text, not a JPEG")
    env = dict(os.environ, COLORIZE_HOME=str(root / "state"), MLFLOW_TRACKING_URI=f"sqlite:///{root / 'state' / 'mlflow.db'}",
               PREFECT_HOME=str(root / "prefect"))  # fmt: skip
    return root, src, env


WRONG = {
    "missing source": (["restore", "{root}/nowhere", "{root}/dest"], "no such folder"),
    "dest inside source": (["restore", "{src}", "{src}/out"], "inside the source"),
    "malformed URL": (["restore", "s3:/archive/photos", "{root}/dest"], "malformed URL"),
    "unknown protocol": (["restore", "nosuch://archive/photos", "{root}/dest"], "unknown storage protocol"),
    "unknown model": (["restore", "{src}", "{root}/dest", "--model", "models:/nosuchmodel@champion"], "not in the registry"),
    "unknown decode": (["restore", "{src}", "{root}/dest", "--decode", "sepia"], "unknown decode"),
    "missing image": (["image", "{root}/missing.jpg", "{root}/dest/out.jpg"], "no such folder or file"),
    "unreadable image": (["image", "{root}/notanimage.jpg", "{root}/dest/out.jpg"], "not an image"),
    "missing shards": (["evaluate", "{root}/noshards"], "no such folder"),
    "bad --set": (["train", "{src}", "--bins", "{src}/cat.png", "--set", "stepz=3"], "no field"),
}


@pytest.mark.parametrize("case", list(WRONG))
def test_wrong_arguments_give_one_line_exit_2_and_create_nothing(cli_env, case):
    root, src, env = cli_env
    args, reason = WRONG[case]
    args = [a.format(root=root, src=src) for a in args]
    p = subprocess.run(CLI + args, capture_output=True, text=True, env=env, timeout=300)
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert p.returncode == 2, p.stderr
    assert len(errors) == 1 and reason in errors[0], p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    assert not (root / "dest").exists() and not (src / "out").exists(), "nothing created"


def _processes_with(marker: str) -> list[str]:
    """Command lines of this user's processes whose environment holds `marker`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker.encode() in f.read():
                    found.append(open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return found


def test_a_run_that_fails_after_its_api_and_cluster_started_leaves_no_process_and_no_traceback(cli_env):
    """An unknown model version is found once the temporary Prefect API and the local cluster are
    already starting (both start before the model is resolved): one line, and both are gone with the command."""
    root, src, env = cli_env
    marker = f"COLORIZE_HOME={root / 'state-fails'}"
    env = dict(env, COLORIZE_HOME=str(root / "state-fails"))
    p = subprocess.run(CLI + ["restore", str(src), str(root / "dest-fails"), "--model", "colorizer/999"], capture_output=True, text=True,
                       env=env, timeout=300)  # fmt: skip
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert (root / "state-fails" / "logs" / "prefect-api.log").exists()  # the API had been started
    deadline = time.time() + 10
    while (left := _processes_with(marker)) and time.time() < deadline:
        time.sleep(0.2)
    assert not left, left


def test_the_temporary_api_ends_with_a_command_killed_outright(cli_env):
    import signal

    root, src, env = cli_env
    marker = f"COLORIZE_HOME={root / 'state-killed'}"
    env = dict(env, COLORIZE_HOME=str(root / "state-killed"))
    p = subprocess.Popen(CLI + ["restore", str(src), str(root / "dest-killed")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not [c for c in _processes_with(marker) if "create_app" in c] and time.time() < deadline:
        time.sleep(0.1)
    assert [c for c in _processes_with(marker) if "create_app" in c], "the API was started"
    p.send_signal(signal.SIGKILL)
    p.wait()
    deadline = time.time() + 10
    while (left := [c for c in _processes_with(marker) if "create_app" in c]) and time.time() < deadline:
        time.sleep(0.2)
    assert not left, left


def test_an_unreachable_tracking_server_is_a_clear_error_within_a_minute(cli_env):
    from tasks.ports import free_port

    root, src, env = cli_env
    t0 = time.time()
    p = subprocess.run(
        CLI + ["restore", str(src), str(root / "dest")],
        capture_output=True,
        text=True,
        env=dict(env, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}"),
        timeout=120,
    )
    assert time.time() - t0 < 60
    assert p.returncode == 1 and "does not answer" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not (root / "dest").exists()


def test_help_does_not_load_torch_or_mlflow():
    code = "import sys; from cli import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass\nprint(sorted(m for m in ('torch', 'mlflow', 'prefect', 'dask') if m in sys.modules))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.stdout.strip().splitlines()[-1] == "[]", p.stdout + p.stderr


CLIENT_MODULES = """
import atexit, json, sys
heavy = ("torch", "numba", "iiif_prezi3", "mlflow")
atexit.register(lambda: print("imported here:", json.dumps(sorted(m for m in heavy if m in sys.modules))))
sys.argv = ["colorize", *sys.argv[1:]]
from cli import main
main()
"""


def test_a_restore_runs_its_flow_without_torch_and_ends_at_once(cli_env, tmp_path):
    """Restore's own process (the flow, plan, reports, IIIF manifests) imports neither torch, numba,
    iiif-prezi3 nor MLflow: only its workers load the network, and their start and the temporary API's
    share two cores with it. It leaves without the interpreter's module teardown, yet after its exit
    work: Prefect's logs delivered before the API stops, no process left, the verb's exit status."""
    root, src, env = cli_env
    marker = f"COLORIZE_HOME={root / 'state-client'}"
    env = dict(env, COLORIZE_HOME=str(root / "state-client"))
    package = make_package(tmp_path / "pkg", "1")
    dest = tmp_path / "dest"
    p = subprocess.run([sys.executable, "-c", CLIENT_MODULES, "restore", str(src), str(dest), "--model", package, "--workers", "1"],
                       capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "imported here: []" in p.stdout, p.stdout
    assert "Error logging to API" not in p.stderr, p.stderr
    assert (dest / "testmodel-v1" / "cat.png").exists() and json.loads((dest / "_iiif" / "testmodel-v1" / "manifest.json").read_text())["items"]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "scan.jpg").write_bytes((root / "notanimage.jpg").read_bytes())
    failed = subprocess.run(CLI + ["restore", str(broken), str(dest), "--model", package, "--workers", "1"], capture_output=True, text=True,
                            env=env, timeout=600)  # fmt: skip
    assert failed.returncode == 3 and "scan.jpg" in failed.stderr, failed.stderr  # ITEMS_FAILED, through the quick exit
    deadline = time.time() + 10
    while (left := _processes_with(marker)) and time.time() < deadline:
        time.sleep(0.2)
    assert not left, left


def test_a_local_cluster_leaves_this_process_environment_as_it_was(monkeypatch):
    """Dask's nanny writes its workers' settings (OMP_NUM_THREADS=1, the allocator's) into the parent's
    environment to spawn them; left there, torch first imported afterwards, here or in any subprocess,
    would run one thread."""
    from tasks.cluster import WORKER_MALLOC, dask_client

    def torch_threads_of_a_subprocess() -> int:
        code = "import torch; print(torch.get_num_threads())"
        return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)

    keys = ("OMP_NUM_THREADS", *WORKER_MALLOC)
    for k in keys:
        monkeypatch.delenv(k, raising=False)
    threads = torch_threads_of_a_subprocess()
    with dask_client(n_workers=1) as client:
        on_worker = next(iter(client.run(lambda: {k: os.environ.get(k) for k in keys}).values()))
        here = {k: os.environ.get(k) for k in keys}
        assert torch_threads_of_a_subprocess() == threads
    assert on_worker == {"OMP_NUM_THREADS": "1", **WORKER_MALLOC}  # the workers still get them
    assert here == dict.fromkeys(keys)
