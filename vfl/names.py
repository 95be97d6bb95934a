"""The one rule for names that become paths: job ids, model ids, versions, dataset and step names.

A safe name is 1-128 ASCII letters, digits, ``_``, ``.`` and ``-``, starting with a letter or
a digit: never ``.`` or ``..``, never a separator, a NUL byte, an absolute path or a unicode
look-alike. Every boundary checks it (config files through `SafeName`, the CLI, the Python API,
gRPC and HTTP through `check_name`), and the error names the field.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vfl.errors import UnsafeNameError

MAX_NAME = 128
_SAFE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_NAME - 1}}}", re.ASCII)
RULE = f"1-{MAX_NAME} ASCII letters, digits, '_', '.', '-', starting with a letter or digit"


def check_name(value: object, field: str) -> str:
    """`value` if it is a safe name, else UnsafeNameError naming `field`."""
    if isinstance(value, str) and _SAFE.fullmatch(value):
        return value
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    raise UnsafeNameError(f"{field}: {shown} is not a safe name ({RULE})")


def _validate(value: str) -> str:
    if not _SAFE.fullmatch(value):
        raise ValueError(f"{value!r} is not a safe name ({RULE})")  # pydantic adds the field path
    return value


if TYPE_CHECKING:
    SafeName = str  # to a type checker, a safe name is a plain str
else:

    class SafeName(str):
        """A pydantic field type: a `str` that must be a safe name (pydantic is imported only
        when a model using it is built, so the CLI starts without it)."""

        @classmethod
        def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
            from pydantic_core import core_schema

            return core_schema.no_info_after_validator_function(_validate, core_schema.str_schema())


def name_argument(field: str) -> Callable[[str], str]:
    """An argparse ``type=``: the command-line argument must be a safe name."""

    def parse(value: str) -> str:
        try:
            return check_name(value, field)
        except UnsafeNameError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse
