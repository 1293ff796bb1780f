"""The Pipeline's settings are declared once; the CLI flags come from that declaration and obey it."""

from __future__ import annotations

import argparse

import pytest

from rgbd_fusion_core.cli.pipeline_args import add_pipeline_arguments, pipeline_config_from_args
from rgbd_fusion_core.diffusion.samplers import SAMPLERS
from rgbd_fusion_core.inference.pipeline_io import MODEL_SOURCE_SETTINGS, PIPELINE_SETTINGS, PipelineConfig
from rgbd_fusion_core.runtime import BACKEND_CHOICES


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser()
    add_pipeline_arguments(result)
    return result


def test_every_setting_is_a_flag_with_its_default_and_choices():
    actions = {a.dest: a for a in parser()._actions}
    for spec in (*MODEL_SOURCE_SETTINGS, *PIPELINE_SETTINGS):
        action = actions[spec.name]
        assert action.option_strings == ["--" + spec.name.replace("_", "-")] or spec.kind is bool, spec.name
        assert action.default == spec.plain_default and action.help.startswith(spec.help), spec.name
        assert tuple(action.choices or ()) == tuple(spec.choices or ()), spec.name


def test_defaults_from_flags_equal_the_dataclass_defaults():
    assert pipeline_config_from_args(parser().parse_args([])) == PipelineConfig()


def test_choices_come_from_the_registries():
    by_name = {spec.name: spec for spec in (*MODEL_SOURCE_SETTINGS, *PIPELINE_SETTINGS)}
    assert by_name["sampler1"].choices == tuple(SAMPLERS) == by_name["sampler2"].choices
    assert by_name["backend"].choices == BACKEND_CHOICES


def test_plain_stand_ins_become_none():
    args = parser().parse_args(["--seed", "-1", "--threshold", "-1", "--full-frame", "--steps1", "4"])
    config = pipeline_config_from_args(args)
    assert config.seed is None and config.threshold is None and config.full_frame and config.steps1 == 4


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--steps2", "0"], "'steps2': 0 is outside [1, 1000]"),
        (["--crop-margin", "2"], "'crop_margin': 2.0 is outside"),
        (["--fixed-distance-m", "0"], "'fixed_distance_m'"),
    ],
)
def test_out_of_range_flags_name_the_setting(flags, message):
    with pytest.raises(ValueError) as error:
        pipeline_config_from_args(parser().parse_args(flags))
    assert message in str(error.value)


def test_dataclass_refuses_what_the_declaration_refuses():
    with pytest.raises(ValueError, match="'sampler1': 'euler' is not one of"):
        PipelineConfig(sampler1="euler")
    with pytest.raises(ValueError, match="uncertainty_samples must be 0"):
        PipelineConfig(uncertainty_samples=1)
