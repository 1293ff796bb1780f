"""Person finders: masks, 2D keypoints and metric 3D keypoints of the people in an RGB frame."""
