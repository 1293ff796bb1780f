"""The metres <-> network-space mapping."""

import numpy as np
import pytest
import torch

from rgbd_fusion_core.geometry.depth_space import DepthSpace


def test_background_and_nan_map_to_exactly_minus_one():
    space = DepthSpace()
    depth = np.array([[np.nan, 0.0, -1.0, 2.0]], np.float32)
    out = space.to_network(depth, 2.0)
    assert out[0, :3].tolist() == [-1.0, -1.0, -1.0] and out[0, 3] == pytest.approx(space.centre)
    assert torch.equal(space.to_network(torch.from_numpy(depth), torch.tensor(2.0)), torch.from_numpy(out))


def test_window_edges_and_round_trip():
    space = DepthSpace(window_m=1.5)
    z_ref = 3.0
    assert space.to_network(np.array([z_ref + 0.75]), z_ref)[0] == pytest.approx(-0.9)
    assert space.to_network(np.array([z_ref - 0.75]), z_ref)[0] == pytest.approx(1.0)
    depth = np.linspace(z_ref - 0.74, z_ref + 0.74, 101)
    back = space.to_metres(space.to_network(depth, z_ref), z_ref)
    assert np.abs(back - depth).max() < 1e-6
    assert np.isnan(space.to_metres(np.array([-1.0, -0.96]), z_ref)).all()


def test_invalid_space_is_refused():
    with pytest.raises(ValueError, match="threshold"):
        DepthSpace(threshold=-0.8)
    with pytest.raises(ValueError, match="window"):
        DepthSpace(window_m=0)
