"""Config files load into frozen dataclasses; mistakes name the key, the value and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkdl.config import from_mapping
from sparkdl.errors import ConfigError
from sparkdl.ingestion.config import IngestConfig
from sparkdl.spark import parse_conf
from tests.helpers import ROOT


def test_shipped_ingest_yaml_states_the_defaults() -> None:
    assert IngestConfig.load(ROOT / "conf/ingest.yaml") == IngestConfig()


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("limits:\n  max_pixel: 10\n")
    with pytest.raises(ConfigError, match=r"max_pixel.*Expected one of: .*max_pixels"):
        IngestConfig.load(path)


def test_wrong_type_names_key_and_value() -> None:
    with pytest.raises(
        ConfigError, match=r"volumes.min_slices: expected an integer. Received: 'many'"
    ):
        from_mapping(IngestConfig, {"volumes": {"min_slices": "many"}}, where="x")


def test_choice_and_range_errors() -> None:
    with pytest.raises(ConfigError, match="on_tilt"):
        from_mapping(IngestConfig, {"volumes": {"on_tilt": "ignore"}}, where="x")
    with pytest.raises(ConfigError, match=r"^x\.limits: Limits\.max_pixels must be an integer > 0"):
        from_mapping(IngestConfig, {"limits": {"max_pixels": 0}}, where="x")


def test_config_is_frozen() -> None:
    config = IngestConfig()
    with pytest.raises(AttributeError):
        config.partition_target_mb = 1  # type: ignore[misc]  # the error under test


def test_spark_conf_pairs() -> None:
    assert parse_conf(["spark.a=1", "spark.b=x=y"]) == {"spark.a": "1", "spark.b": "x=y"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_conf(["nonsense"])


def test_shipped_train_yaml_states_the_defaults() -> None:
    from sparkdl.training.config import TrainConfig

    assert TrainConfig.load(ROOT / "conf/train.yaml") == TrainConfig()
