"""Packaging, built every way a user installs it (real builds, no mocks), each from a copy of the source tree so no
build artefact lands in the repository:

- ``pip wheel``: the wheel carries every module, the shipped weights, presets and demo frames, the ROS share files
  (launch, config, package.xml), the ament index marker and the entry points;
- a non-editable install of that wheel: ``rgbd-fusion demo`` runs from outside the source tree on the installed
  copy's weights and frames;
- ``colcon build`` (plain and ``--symlink-install``) in a temporary ROS 2 workspace: the node executable under
  ``lib/rgbd_fusion_ros/``, launch and config under ``share/rgbd_fusion_ros/``, the package in the ament index.
  Needs colcon (colcon-core, colcon-ros, colcon-python-setup-py, colcon-package-selection), not a ROS installation;
  colcon-core pins setuptools<80, so it lives in a venv of its own: point ``RGBD_FUSION_COLCON`` at its ``colcon``
  or put it on PATH.
"""

import configparser
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import unavailable

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "rgbd_fusion_ros"
SCRIPTS = ("rgbd-fusion", "rgbd_fusion_node", "rgbd_fusion_bag")
PACKAGES = ("rgbd_fusion_core", "rgbd_fusion_ros")
PACKAGE_DATA = ("rgbd_fusion_core/weights", "rgbd_fusion_core/presets", "rgbd_fusion_core/demo_frames")
# what `share/rgbd_fusion_ros/` must hold, relative to the source tree
SHARE_SOURCES = ("launch", "config", "config/experiments")
TIMEOUT = 600
COLCON_HELP = (
    "colcon not found: set RGBD_FUSION_COLCON to a colcon executable or put colcon on PATH (in a venv of its own, "
    "colcon-core pins setuptools<80: python3 -m venv /tmp/colcon && /tmp/colcon/bin/pip install colcon-core "
    "colcon-ros colcon-python-setup-py colcon-package-selection)"
)


def run(cmd, cwd, env=None, timeout=TIMEOUT):
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def clean_env(**extra):
    """The environment minus anything that would point Python or ament at another copy of the package."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AMENT_PREFIX_PATH", "COLCON_PREFIX_PATH")}
    env.update(OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


def source_files() -> list[str]:
    """What a user's checkout holds: tracked files plus untracked ones git does not ignore."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs the git checkout of the source tree (git ls-files)")
    out = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO).stdout
    return sorted({name for name in out.split("\0") if name and (REPO / name).is_file()})


def under(path, folder) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory):
    """A copy of the source tree (the working tree's current state), so builds never touch the repository."""
    dest = tmp_path_factory.mktemp("source") / PACKAGE
    for name in source_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    return dest


@pytest.fixture(scope="module")
def wheel(source_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    build = shutil.copytree(source_tree, out / "build" / PACKAGE)  # the build's own copy: source_tree stays clean
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", out, "."], cwd=build)
    (built,) = out.glob("rgbd_fusion-*.whl")
    return built


@pytest.fixture(scope="module")
def site(wheel, tmp_path_factory):
    """The wheel installed (not editable) into a folder of its own."""
    target = tmp_path_factory.mktemp("install") / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run([*pip, "install", "--no-deps", "--no-index", "-q", "--target", target, wheel], cwd=wheel.parent)
    return target


def test_wheel_carries_modules_data_share_files_and_entry_points(wheel, source_tree):
    names = set(zipfile.ZipFile(wheel).namelist())
    (dist_info,) = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
    data = dist_info.removesuffix(".dist-info") + ".data/data/"
    tops = {n.split("/")[0] for n in names}
    assert tops == set(PACKAGES) | {dist_info, data.split("/")[0]}, f"unexpected top-level entries: {sorted(tops)}"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]

    files = [p.relative_to(source_tree).as_posix() for p in source_tree.rglob("*") if p.is_file()]
    modules = [f for f in files if f.endswith(".py") and f.split("/")[0] in PACKAGES]
    shipped = [f for f in files if f.startswith(tuple(d + "/" for d in PACKAGE_DATA))]
    weights = ("stage1.safetensors", "stage2.safetensors", "manifest.json", "int8/export.json", "int8/stage1.onnx")
    assert {f"rgbd_fusion_core/weights/{name}" for name in weights} <= set(shipped)
    assert any(f.startswith("rgbd_fusion_core/presets/") for f in shipped)
    assert any(f.startswith("rgbd_fusion_core/demo_frames/") and f.endswith(".png") for f in shipped)
    missing = sorted(set(modules + shipped) - names)
    assert not missing, f"not in the wheel: {missing}"

    share = [f for f in files if str(Path(f).parent) in SHARE_SOURCES]
    assert "launch/rgbd_fusion.launch.py" in share and any(f.startswith("config/experiments/") for f in share)
    expected = {f"{data}share/{PACKAGE}/{f}" for f in [*share, "package.xml"]}
    expected.add(f"{data}share/ament_index/resource_index/packages/{PACKAGE}")
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel: {missing}"

    entry_points = configparser.ConfigParser(delimiters=("=",))
    entry_points.optionxform = str
    entry_points.read_string(zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode())
    assert set(SCRIPTS) <= set(entry_points["console_scripts"])
    assert entry_points["rgbd_fusion.commands"]["bag"].strip() == "rgbd_fusion_ros.bag_tool"


def test_installed_wheel_runs_the_demo_from_outside_the_source_tree(site, tmp_path):
    """`pip install` (not editable): scripts, weights and demo frames come from the installed copy."""
    for script in SCRIPTS:
        assert os.access(site / "bin" / script, os.X_OK), f"no console script {script}"
    assert (site / "share" / PACKAGE / "launch" / "rgbd_fusion.launch.py").is_file()
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = clean_env(PYTHONPATH=str(site))
    probe = (
        "import json, rgbd_fusion_core\n"
        "from rgbd_fusion_core.models.model_files import DEFAULT_MODEL_DIR\n"
        "from rgbd_fusion_core.apps.demo_run import BUNDLED_FRAMES\n"
        "print(json.dumps([rgbd_fusion_core.__file__, str(DEFAULT_MODEL_DIR), str(BUNDLED_FRAMES)]))\n"
    )
    for path in json.loads(run([sys.executable, "-c", probe], cwd=workdir, env=env).stdout.splitlines()[-1]):
        assert under(path, site), f"{path} is not the installed copy in {site}"

    usage = run([sys.executable, site / "bin" / "rgbd-fusion", "--help"], cwd=workdir, env=env).stdout
    assert "demo" in usage and "bag" in usage

    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "rgbd_fusion_core.cli.main", "demo", "--out", out, "--limit", "1"]
    run([*cmd, "--backend", "torch"], cwd=workdir, env=env)
    metrics = json.loads((out / "metrics.json").read_text())
    assert under(metrics["data"], site), f"demo read frames from {metrics['data']}, not the installed copy"
    assert metrics["summary"]["frames"] == 1
    (frame,) = [p for p in out.iterdir() if p.is_dir()]
    for name in ("depth.png", "depth.npy", "points.ply", "figure.png"):
        assert (frame / name).stat().st_size > 0, f"demo wrote no {name}"
    assert not list(workdir.iterdir()), "the demo wrote into its working directory"


def find_colcon() -> str:
    explicit = os.environ.get("RGBD_FUSION_COLCON")
    if explicit:
        assert os.access(explicit, os.X_OK), f"RGBD_FUSION_COLCON={explicit} is not an executable"
        return explicit
    found = shutil.which("colcon")
    if found is None:
        unavailable(COLCON_HELP)
    return found


def sourced_env(workspace: Path) -> dict:
    """The environment after `. install/setup.sh`, as a user of the workspace has it."""
    dump = "import json, os; print(json.dumps(dict(os.environ)))"
    script = '. "$1/install/setup.sh" && exec "$2" -c "$3"'
    proc = run(["bash", "-c", script, "_", workspace, sys.executable, dump], cwd=workspace, env=clean_env())
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize("mode", ["copy", "symlink"])
def test_colcon_build_in_a_ros2_workspace(mode, source_tree, tmp_path):
    colcon = find_colcon()
    usage = run([colcon, "build", "--help"], cwd=tmp_path, env=clean_env()).stdout
    if "--packages-select" not in usage:
        unavailable(f"{colcon} lacks colcon-package-selection (--packages-select)")
    workspace = tmp_path / "ws"
    shutil.copytree(source_tree, workspace / "src" / PACKAGE)
    cmd = [colcon, "build", "--packages-select", PACKAGE] + (["--symlink-install"] if mode == "symlink" else [])
    run(cmd, cwd=workspace, env=clean_env())

    prefix = workspace / "install" / PACKAGE
    assert (prefix / "share" / PACKAGE / "hook" / "ament_prefix_path.dsv").is_file(), (
        "not built as a ROS ament_python package (is colcon-ros installed?)"
    )
    for script in SCRIPTS:
        executable = prefix / "lib" / PACKAGE / script
        assert os.access(executable, os.X_OK), f"no executable {executable}"
    share = prefix / "share" / PACKAGE
    source = workspace / "src" / PACKAGE
    for folder in SHARE_SOURCES:
        for path in (source / folder).iterdir():
            if path.is_file():
                assert (share / folder / path.name).is_file(), f"{folder}/{path.name} not installed in {share}"
    assert (share / "package.xml").is_file()
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE).is_file()

    env = sourced_env(workspace)
    probe = (
        "import json, rgbd_fusion_core, rgbd_fusion_ros\n"
        "from ament_index_python.packages import get_package_prefix, get_package_share_directory\n"
        "from rgbd_fusion_core.models.model_files import DEFAULT_MODEL_DIR\n"
        "weights = sorted(p.name for p in DEFAULT_MODEL_DIR.iterdir())\n"
        f"print(json.dumps([get_package_prefix({PACKAGE!r}), get_package_share_directory({PACKAGE!r}),\n"
        "    rgbd_fusion_core.__file__, rgbd_fusion_ros.__file__, weights]))\n"
    )
    found_prefix, found_share, core, ros, weights = json.loads(
        run([sys.executable, "-c", probe], cwd=tmp_path, env=env).stdout.splitlines()[-1]
    )
    assert Path(found_prefix) == prefix and Path(found_share) == share
    for module in (core, ros):
        assert under(module, prefix if mode == "copy" else source), f"{module} is not the workspace's copy"
    assert {"stage1.safetensors", "stage2.safetensors"} <= set(weights)

    # the executable `ros2 run rgbd_fusion_ros rgbd_fusion_node` starts (its shebang names colcon's Python; in a ROS
    # installation that is the system Python with the dependencies, here it is run with this one)
    node = run([sys.executable, prefix / "lib" / PACKAGE / "rgbd_fusion_node", "--help"], cwd=tmp_path, env=env)
    assert "usage: rgbd_fusion_node" in node.stdout + node.stderr
