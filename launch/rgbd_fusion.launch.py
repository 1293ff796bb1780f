"""Launch rgbd_fusion_node next to a camera driver (and optionally rviz2).

    ros2 launch rgbd_fusion_ros rgbd_fusion.launch.py \
        image:=/camera/color/image_raw camera_info:=/camera/color/camera_info use_rviz:=true

The node is a lifecycle node that configures and activates itself (parameter ``autostart``). Launch arguments
model / backend / device override the parameters file. Input topics are remapped from the node's relative names
(image, camera_info, mask, depth); outputs stay relative, so they appear under ``namespace``. The shipped rviz
view shows the default topics with an empty namespace.
"""

# isort sees the repository's launch/ folder as first-party; these are ROS's launch packages.
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition, LaunchConfigurationNotEquals
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "rgbd_fusion_ros"


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its outputs"),
        DeclareLaunchArgument("node_name", default_value="rgbd_fusion", description="name of the node"),
        DeclareLaunchArgument("image", default_value="/camera/color/image_raw", description="colour image topic"),
        DeclareLaunchArgument(
            "camera_info", default_value="/camera/color/camera_info", description="camera_info of the colour image"
        ),
        DeclareLaunchArgument(
            "mask", default_value="/camera/person_mask", description="person mask topic (used when use_mask is true)"
        ),
        DeclareLaunchArgument(
            "depth",
            default_value="/camera/aligned_depth_to_color/image_raw",
            description="sensor depth aligned with the colour image (used when use_depth is true)",
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "rgbd_fusion.yaml"]),
            description="node parameters (YAML)",
        ),
        DeclareLaunchArgument("model", default_value="", description="model folder; empty = the shipped default"),
        DeclareLaunchArgument(
            "backend",
            default_value="auto",
            description="auto (ONNX Runtime on the CPU when installed), torch, onnxruntime or tensorrt",
        ),
        DeclareLaunchArgument("device", default_value="auto", description="auto, cpu, cuda or cuda:N"),
        DeclareLaunchArgument(
            "person_source",
            default_value="auto",
            description="auto (mask topic if used, else the person finder), finder, mask or none",
        ),
        DeclareLaunchArgument("max_people", default_value="3", description="most people processed per frame"),
        DeclareLaunchArgument("use_mask", default_value="false", description="subscribe to the mask topic"),
        DeclareLaunchArgument("use_depth", default_value="false", description="subscribe to the depth topic"),
        DeclareLaunchArgument("use_rviz", default_value="false", description="start rviz2 with the shipped view"),
        DeclareLaunchArgument(
            "rviz_config",
            default_value=PathJoinSubstitution([share, "config", "rgbd_fusion.rviz"]),
            description="rviz2 configuration",
        ),
        DeclareLaunchArgument(
            "large_message_profile",
            default_value="",
            description="Fast DDS profile for large messages, e.g. <share>/config/fastdds_large_messages.xml; "
            "empty = leave FASTDDS_DEFAULT_PROFILES_FILE alone. Every process exchanging images with the node "
            "must use the same profile.",
        ),
    ]
    node = LifecycleNode(
        package=PACKAGE,
        executable="rgbd_fusion_node",
        name=LaunchConfiguration("node_name"),
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "model": LaunchConfiguration("model"),
                "backend": LaunchConfiguration("backend"),
                "device": LaunchConfiguration("device"),
                "person_source": LaunchConfiguration("person_source"),
                "max_people": LaunchConfiguration("max_people"),
                "use_mask": LaunchConfiguration("use_mask"),
                "use_depth": LaunchConfiguration("use_depth"),
            },
        ],
        remappings=[
            ("image", LaunchConfiguration("image")),
            ("camera_info", LaunchConfiguration("camera_info")),
            ("mask", LaunchConfiguration("mask")),
            ("depth", LaunchConfiguration("depth")),
        ],
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        namespace=LaunchConfiguration("namespace"),
        arguments=["-d", LaunchConfiguration("rviz_config")],
        condition=IfCondition(LaunchConfiguration("use_rviz")),
        output="screen",
    )
    profile = SetEnvironmentVariable(
        "FASTDDS_DEFAULT_PROFILES_FILE",
        LaunchConfiguration("large_message_profile"),
        condition=LaunchConfigurationNotEquals("large_message_profile", ""),
    )
    return LaunchDescription([*arguments, profile, node, rviz])
