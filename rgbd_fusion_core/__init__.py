"""rgbd_fusion_core: RGB-D-Fusion (Kirch et al., arXiv 2307.15988) in PyTorch, with no ROS dependency."""

__version__ = "0.1.0"
