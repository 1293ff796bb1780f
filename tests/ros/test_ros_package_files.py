"""The ROS package files (launch, parameters YAML, rviz view, Fast DDS profile, package.xml) agree with the node.

launch / launch_ros / rviz2 cannot be installed here, so the launch file is checked by parsing it (ast).
"""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import yaml

pytest.importorskip("rclpy", reason="rclpy is not installed")

from rgbd_fusion_ros.messages import OUTPUT_TOPICS  # noqa: E402
from rgbd_fusion_ros.node import INPUT_TOPICS  # noqa: E402
from rgbd_fusion_ros.parameters import PARAMETERS_BY_NAME, settings_from_parameters  # noqa: E402
from rgbd_fusion_ros.transport_limit import PROFILE, SEGMENT_BYTES  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILE = REPO / "launch" / "rgbd_fusion.launch.py"


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == name
    ]


def keyword(call: ast.Call, name: str) -> ast.expr:
    return next(k.value for k in call.keywords if k.arg == name)


def module_constant(tree: ast.Module, expr: ast.expr):
    """A literal, or a module-level NAME = literal."""
    if isinstance(expr, ast.Name):
        (value,) = [a.value for a in tree.body if isinstance(a, ast.Assign) and a.targets[0].id == expr.id]
        return ast.literal_eval(value)
    return ast.literal_eval(expr)


def test_launch_file_sets_only_what_the_node_has():
    source = LAUNCH_FILE.read_text()
    tree = ast.parse(source)
    compile(tree, str(LAUNCH_FILE), "exec")
    declared = {ast.literal_eval(c.args[0]) for c in calls(tree, "DeclareLaunchArgument")}
    used = {ast.literal_eval(c.args[0]) for c in calls(tree, "LaunchConfiguration")}
    assert used <= declared, f"undeclared launch arguments: {used - declared}"
    assert {"namespace", "params_file", "model", "backend", "use_rviz", "image", "camera_info"} <= declared

    (node,) = calls(tree, "LifecycleNode")
    assert module_constant(tree, keyword(node, "package")) == "rgbd_fusion_ros"
    assert module_constant(tree, keyword(node, "executable")) == "rgbd_fusion_node"
    assert "rgbd_fusion_node = rgbd_fusion_ros.node:main" in (REPO / "setup.py").read_text()
    parameter_dicts = [item for item in keyword(node, "parameters").elts if isinstance(item, ast.Dict)]
    set_parameters = {ast.literal_eval(k) for d in parameter_dicts for k in d.keys}
    assert set_parameters and set_parameters <= set(PARAMETERS_BY_NAME), set_parameters - set(PARAMETERS_BY_NAME)
    remapped = {ast.literal_eval(pair.elts[0]) for pair in keyword(node, "remappings").elts}
    assert remapped == set(INPUT_TOPICS)


def test_launch_defaults_point_at_shipped_files():
    tree = ast.parse(LAUNCH_FILE.read_text())
    joined = [
        [ast.literal_eval(part) for part in c.args[0].elts if isinstance(part, ast.Constant)]
        for c in calls(tree, "PathJoinSubstitution")
    ]
    assert ["config", "rgbd_fusion.yaml"] in joined and ["config", "rgbd_fusion.rviz"] in joined
    for parts in joined:
        assert (REPO.joinpath(*parts)).is_file(), parts


def test_parameters_yaml_lists_every_parameter_at_its_default():
    document = yaml.safe_load((REPO / "config" / "rgbd_fusion.yaml").read_text())
    values = document["/**"]["ros__parameters"]
    assert set(values) == set(PARAMETERS_BY_NAME)
    for name, value in values.items():
        default = PARAMETERS_BY_NAME[name].plain_default
        assert type(value) is type(default) and value == default, name
    settings_from_parameters(values)


def test_rviz_view_shows_the_node_outputs_in_the_optical_frame():
    view = yaml.safe_load((REPO / "config" / "rgbd_fusion.rviz").read_text())["Visualization Manager"]
    assert view["Global Options"]["Fixed Frame"].endswith("optical_frame")
    topics = {d["Class"].split("/")[-1] + ":" + d["Topic"]["Value"] for d in view["Displays"] if "Topic" in d}
    assert {"Image:/depth/image", "PointCloud2:/points"} <= topics
    assert any(t.startswith("Image:/camera/") for t in topics)
    for topic in topics:
        name = topic.split(":", 1)[1].lstrip("/")
        assert name in OUTPUT_TOPICS or name.startswith("camera/"), topic


def test_fastdds_profile_has_large_shared_memory_segments_and_loopback_udp():
    namespace = {"dds": "http://www.eprosima.com"}
    root = ElementTree.parse(REPO / PROFILE).getroot()
    transports = {
        t.findtext("dds:transport_id", namespaces=namespace): t
        for t in root.iterfind(".//dds:transport_descriptor", namespace)
    }
    kinds = {t.findtext("dds:type", namespaces=namespace): t for t in transports.values()}
    for field in ("segment_size", "maxMessageSize"):  # the size the node warns about (transport_limit.py)
        assert int(kinds["SHM"].findtext(f"dds:{field}", namespaces=namespace)) == SEGMENT_BYTES == 32 * 1024 * 1024
    allowed = [i.get("name") for i in kinds["UDPv4"].iterfind(".//dds:allowlist/dds:interface", namespace)]
    assert allowed == ["lo"]
    participant = root.find(".//dds:participant", namespace)
    assert participant.findtext(".//dds:useBuiltinTransports", namespaces=namespace) == "false"
    used = [t.text for t in participant.iterfind(".//dds:userTransports/dds:transport_id", namespace)]
    assert sorted(used) == sorted(transports)


def test_package_xml_declares_the_runtime_dependencies():
    root = ElementTree.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "rgbd_fusion_ros"
    assert root.findtext("export/build_type") == "ament_python"
    exec_depends = {e.text for e in root.iter("exec_depend")}
    required = {"rclpy", "sensor_msgs", "diagnostic_msgs", "lifecycle_msgs", "std_msgs", "python3-numpy"}
    required |= {"python3-opencv", "python3-yaml", "python3-pil", "launch", "launch_ros", "rviz2"}
    assert required <= exec_depends, required - exec_depends
    test_depends = {e.text for e in root.iter("test_depend")}
    assert {"ament_copyright", "ament_flake8", "ament_pep257", "python3-pytest"} <= test_depends
    assert (REPO / "resource" / "rgbd_fusion_ros").is_file()


def test_launch_arguments_that_set_parameters_default_to_the_declared_values():
    tree = ast.parse(LAUNCH_FILE.read_text())
    defaults = {
        ast.literal_eval(c.args[0]): ast.literal_eval(keyword(c, "default_value"))
        for c in calls(tree, "DeclareLaunchArgument")
        if isinstance(keyword(c, "default_value"), ast.Constant)
    }
    (node,) = calls(tree, "LifecycleNode")
    for item in keyword(node, "parameters").elts:
        if not isinstance(item, ast.Dict):
            continue
        for key, value in zip(item.keys, item.values):
            name, argument = ast.literal_eval(key), ast.literal_eval(value.args[0])
            declared = PARAMETERS_BY_NAME[name].plain_default
            expected = str(declared).lower() if isinstance(declared, bool) else str(declared)
            assert defaults[argument] == expected, f"launch argument {argument!r} != parameter {name!r} default"


def test_ros_parameters_carry_every_pipeline_setting_as_declared():
    from rgbd_fusion_core.inference.pipeline_io import MODEL_SOURCE_SETTINGS, PIPELINE_SETTINGS

    for spec in (*MODEL_SOURCE_SETTINGS, *PIPELINE_SETTINGS):
        ros = PARAMETERS_BY_NAME[spec.name]
        assert (ros.plain_default, ros.value_range, ros.live, ros.help) == (
            spec.plain_default,
            spec.value_range,
            spec.live,
            spec.help,
        ), spec.name
        assert set(ros.choices or ()) <= set(spec.choices or ()), spec.name
