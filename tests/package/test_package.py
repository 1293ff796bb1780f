"""Package-level promises: the core imports without ROS, every CLI flag (plugins too) is explained."""

import argparse
import subprocess
import sys

import pytest

from rgbd_fusion_core.cli.main import SUBCOMMANDS, build_parser, subcommand_modules

ROS_MODULES = ("rclpy", "sensor_msgs", "std_msgs", "builtin_interfaces", "rosbags", "diagnostic_msgs")


def test_core_imports_with_no_ros_installed():
    """Every rgbd_fusion_core module imports with the ROS packages made unimportable."""
    blocker = "; ".join(f"sys.modules[{name!r}] = None" for name in ROS_MODULES)
    code = (
        f"import sys, pkgutil, importlib; {blocker}\n"
        "import rgbd_fusion_core\n"
        "for m in pkgutil.walk_packages(rgbd_fusion_core.__path__, 'rgbd_fusion_core.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


def test_every_subcommand_exists_and_explains_every_flag():
    parser = build_parser()
    sub_actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)][0]
    assert set(sub_actions.choices) == set(subcommand_modules()) >= set(SUBCOMMANDS) | {"bag"}
    for name, sub in sub_actions.choices.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and len(action.help) > 8, f"{name}: {action.option_strings or action.dest} lacks help"


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS) + ["bag"])
def test_help_runs(name, capsys):
    from rgbd_fusion_core.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage: rgbd-fusion " + name in capsys.readouterr().out


def test_bad_arguments_give_a_clear_error(capsys, tmp_path):
    from rgbd_fusion_core.cli.main import main

    assert main(["evaluate", "--stage1", str(tmp_path / "nope"), "--data", str(tmp_path), "--json", "x.json"]) == 1
    assert "model file not found" in capsys.readouterr().err
