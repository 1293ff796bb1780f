"""rgbd-fusion: an ament_python package that also installs with plain pip."""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "rgbd_fusion_ros"

EXTRAS = {
    # synthetic people: the anny body model (its self-intersection check needs warp), EGL rendering
    "synth": ["anny>=0.6", "roma", "trimesh", "pillow", "moderngl>=5.8", "warp-lang>=1.5"],
    "train": ["tensorboard>=2.14"],
    "onnx": ["onnx>=1.15", "onnxruntime>=1.17", "onnxscript>=0.1"],
    # TensorRT 10 for CUDA 12 (the bare `tensorrt` package picks a CUDA major itself); with a CUDA 13 torch install
    # tensorrt-cu13>=10.13,<11 instead. TensorRT 11 dropped the FP16 builder flag our engine builder uses
    "tensorrt": ["tensorrt-cu12>=10,<11"],
    "bag": ["rosbags>=0.10"],
    # rclpy and messages from PyPI; in a ROS 2 workspace these come from the distribution instead
    "ros": ["ros-rclpy", "ros-rmw-fastrtps-cpp", "ros-sensor-msgs", "ros-diagnostic-msgs", "rosbags>=0.10"],
    # scikit-image ships the astronaut photo the real-photo tests use
    "dev": ["pytest>=7", "ruff>=0.4", "scikit-image>=0.21", "pytest-cov>=7", "coverage>=7.10.6"],
}
# everything that runs without an NVIDIA GPU
EXTRAS["all"] = sorted({req for name in ("synth", "train", "onnx", "bag", "ros") for req in EXTRAS[name]})

setup(
    name="rgbd-fusion",
    version="0.1.0",
    description="RGB-D-Fusion: metric depth and point clouds of people from one RGB image (ROS 2 + PyTorch)",
    # beside this file, not the working directory: `colcon build --symlink-install` runs setup.py from the build
    # folder, where only a symlink to setup.py (not README.md) lies
    long_description=(Path(__file__).resolve().parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["rgbd_fusion_core", "rgbd_fusion_core.*", "rgbd_fusion_ros", "rgbd_fusion_ros.*"]),
    package_data={
        "rgbd_fusion_core": [
            "presets/*.yaml",
            "weights/*.safetensors",
            "weights/*.json",
            "weights/int8/*",
            "demo_frames/*.json",
            "demo_frames/meta/*.json",
            "demo_frames/*/*/*.png",
        ]
    },
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", [p for p in glob("config/*") if Path(p).is_file()]),
        (f"share/{PACKAGE}/config/experiments", glob("config/experiments/*")),
    ],
    install_requires=[
        "torch>=2.2",
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "pyyaml>=6",
        "pillow>=9",  # a photo's EXIF focal length (predict)
        "safetensors>=0.4",
        "tqdm>=4.60",
        # the person finder: 0.10.21 is the last release whose wheel carries its models (later ones download them
        # at run time); wheels for CPython 3.9-3.12 only, so on newer Pythons the finder is missing and
        # person_source "auto" falls back to the centred crop with a warning
        'mediapipe==0.10.21; python_version < "3.13"',
    ],
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": [
            "rgbd-fusion = rgbd_fusion_core.cli.main:main",
            "rgbd_fusion_node = rgbd_fusion_ros.node:main",
            "rgbd_fusion_bag = rgbd_fusion_ros.bag_tool:main",
        ],
        # subcommands of `rgbd-fusion` that live outside the core (the core discovers them, never names them)
        "rgbd_fusion.commands": ["bag = rgbd_fusion_ros.bag_tool"],
    },
)
