"""The one declaration of the Pipeline's settings.

Every ``PipelineConfig`` field is declared with ``setting(...)``: its default, help text, allowed range or
choices, whether it may change on a running node, and (for optional values) the plain value that stands for
"none" where a command line or a ROS parameter cannot hold None. The loader settings (model, backend, device)
are declared here too. The CLI flags (``add_arguments``), the ROS parameters (``rgbd_fusion_ros.parameters``),
the shipped params YAML and the launch file all come from, or are tested against, these declarations; adding a
setting is one ``setting(...)`` line.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SETTING_KEY = "rgbd_fusion_setting"


@dataclass(frozen=True)
class Setting:
    """One declared setting.

    default: the value used when nobody sets it (None allowed when ``none_value`` is given).
    none_value: the plain value (same type as the setting) that means None on the command line and in ROS.
    validator: an extra check of a plain value that raises ValueError saying what is expected.
    value_range: (min, max) inclusive for numbers; choices: allowed strings; live: may change between frames.
    """

    name: str
    default: Any
    help: str
    value_range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    live: bool = True
    none_value: Any = None
    validator: Callable[[Any], Any] | None = None

    @property
    def plain_default(self) -> Any:
        """The default as a plain (non-None) value: what the CLI and ROS parameters start from."""
        return self.none_value if self.default is None else self.default

    @property
    def kind(self) -> type:
        return type(self.plain_default)

    def from_plain(self, value: Any) -> Any:
        """A plain value (CLI/ROS) -> the setting's value (None where it equals ``none_value``)."""
        if self.none_value is not None and value == self.none_value:
            return None
        return value

    def check(self, value: Any, where: str = "setting") -> Any:
        """Type, range and choices of a plain value; returns it (ints accepted for floats). Raises ValueError."""
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not self.kind:
            raise ValueError(f"{where} {self.name!r}: expected {self.kind.__name__}, got {value!r}")
        if self.value_range is not None and not self.value_range[0] <= value <= self.value_range[1]:
            raise ValueError(
                f"{where} {self.name!r}: {value} is outside [{self.value_range[0]}, {self.value_range[1]}]"
            )
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{where} {self.name!r}: {value!r} is not one of {', '.join(self.choices)}")
        if self.validator is not None:
            try:
                self.validator(value)
            except ValueError as error:
                raise ValueError(f"{where} {self.name!r}: {error}") from error
        return value


def setting(default: Any, help: str, **options) -> dataclasses.Field:
    """A dataclass field carrying its ``Setting`` (the name is filled in from the field)."""
    return dataclasses.field(default=default, metadata={SETTING_KEY: (default, help, options)})


def declared_settings(config_class) -> tuple[Setting, ...]:
    """The ``Setting`` of every field of a dataclass declared with ``setting(...)``, in field order."""
    result = []
    for field in dataclasses.fields(config_class):
        default, help_text, options = field.metadata[SETTING_KEY]
        result.append(Setting(field.name, default, help_text, **options))
    return tuple(result)


def config_from_plain(config_class, values: dict[str, Any], where: str = "setting"):
    """Plain values by name (missing ones = defaults) -> a ``config_class`` instance, each checked."""
    kwargs = {}
    for spec in declared_settings(config_class):
        if spec.name in values:
            kwargs[spec.name] = spec.from_plain(spec.check(values[spec.name], where))
    return config_class(**kwargs)


def add_arguments(parser, settings: tuple[Setting, ...], title: str) -> None:
    """One ``--flag-name`` per setting, typed, with its choices, default and help (range in the help)."""
    group = parser.add_argument_group(title)
    for spec in settings:
        flag = "--" + spec.name.replace("_", "-")
        help_text = spec.help
        if spec.value_range is not None:
            help_text += f" [{spec.value_range[0]}, {spec.value_range[1]}]"
        if spec.kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=spec.plain_default, help=help_text)
        else:
            group.add_argument(flag, type=spec.kind, choices=spec.choices, default=spec.plain_default, help=help_text)


def plain_values(args, settings: tuple[Setting, ...]) -> dict[str, Any]:
    """The parsed flags of ``settings`` as plain values by name."""
    return {spec.name: getattr(args, spec.name) for spec in settings}
