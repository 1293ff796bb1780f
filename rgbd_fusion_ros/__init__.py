"""ROS 2 side of rgbd-fusion: message conversions, the lifecycle node and the offline bag tool."""
