"""The model zoo: every factory for every task, and the centre pooling of its heads."""

from __future__ import annotations

import numpy as np
import pytest

from sparkdl.errors import ConfigError


def test_model_zoo_factories() -> None:
    from sparkdl.training.models import build_model

    for name in ("cnn3d", "resnet3d"):
        for task in ("nodule", "malignancy"):
            model = build_model(name, (16, 16, 16, 1), task=task, base_filters=4, num_stages=2)
            out = model(np.zeros((2, 16, 16, 16, 1), np.float32)).numpy()
            assert out.shape == (2, 1) and ((out > 0) & (out < 1)).all()
            assert model.output_names == [task]
    with pytest.raises(ConfigError, match="num_stages"):
        build_model("cnn3d", (8, 8, 8, 1), num_stages=4)
    with pytest.raises(ConfigError, match="Unknown model"):
        build_model("vgg", (8, 8, 8, 1))


def test_centre_pool_sees_where_the_features_are() -> None:
    """Global average plus central average: a voxel at the centre and one in a corner pool
    to the same global feature but different central ones."""
    import tf_keras

    from sparkdl.training.models import centre_pool

    inputs = tf_keras.Input((4, 4, 4, 1))
    pool = tf_keras.Model(inputs, centre_pool(inputs))
    centre, corner = np.zeros((2, 4, 4, 4, 1), np.float32)
    centre[1, 2, 1] = 1.0  # inside the central 2³ of the 4³ map
    corner[0, 3, 0] = 1.0
    out = pool(np.stack([centre, corner])).numpy()
    np.testing.assert_allclose(out, [[1 / 64, 1 / 8], [1 / 64, 0.0]], atol=1e-6)
    small = tf_keras.Input((2, 2, 2, 3))  # too small to crop: both halves are the global mean
    out = tf_keras.Model(small, centre_pool(small))(np.random.rand(2, 2, 2, 2, 3)).numpy()
    assert out.shape == (2, 6)
    np.testing.assert_allclose(out[:, 3:], out[:, :3], atol=1e-6)
