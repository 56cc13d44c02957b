"""TrainConfig: the shipped YAML, overrides, errors that name the key; class weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkdl.errors import ConfigError, InputError
from sparkdl.training.config import TrainConfig, class_weights
from tests.helpers import ROOT


def test_config_loads_yaml_with_overrides(tmp_path: Path) -> None:
    shipped = TrainConfig.load(ROOT / "conf" / "train.yaml")
    assert shipped == TrainConfig()  # the shipped YAML states the defaults
    path = tmp_path / "train.yaml"
    path.write_text("model: resnet3d\ntask: malignancy\nwindow: [-500, 1400]\nepochs: 3\n")
    config = TrainConfig.load(path, epochs=7, batch_size=None)
    assert (config.model, config.task, config.window, config.epochs) == (
        "resnet3d",
        "malignancy",
        (-500.0, 1400.0),
        7,
    )
    assert config.label_field == "malignancy"


@pytest.mark.parametrize(
    "text, key",
    [
        ("modle: cnn3d\n", "modle"),
        ("model: vgg\n", "model"),
        ("epochs: 0\n", "epochs"),
        ("task: fracture\n", "task"),
        ("learning_rate: fast\n", "learning_rate"),
        ("min_steps_per_epoch: -1\n", "min_steps_per_epoch"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=key):
        TrainConfig.load(path)


def test_class_weights_balance_the_classes() -> None:
    weights = class_weights({0: 300, 1: 100})
    assert weights == pytest.approx({0: 400 / 600, 1: 2.0})
    assert 300 * weights[0] == pytest.approx(100 * weights[1])
    with pytest.raises(InputError, match="no rows of class"):
        class_weights({0: 10})
