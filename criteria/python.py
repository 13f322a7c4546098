"""The ``python`` criterion kind: any function ``(transcript) -> bool | float | Verdict``."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import Field

from harness.criterion import Criterion, CriterionConfig, Result
from harness.hookspecs import hookimpl
from harness.models import Transcript
from harness.suite import SuiteError


class PythonConfig(CriterionConfig):
    function: str = Field(pattern=r"^[\w.]+:[\w.]+$")
    """``package.module:name``; modules next to the suite file are importable too."""
    args: dict[str, Any] = {}
    """Keyword arguments passed to the function after the transcript."""
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    """A float result passes when it reaches this."""


def import_function(ref: str, search_dir: str | None = None) -> Callable[..., Any]:
    """Import ``package.module:name``; a module file next to the suite file comes first.

    A module found next to the suite is loaded under a name unique to its path, so two suites
    with their own ``checks.py`` do not get each other's functions.
    """
    module_name, _, attr = ref.partition(":")
    added = search_dir is not None and search_dir not in sys.path
    if added:
        sys.path.insert(0, search_dir)
    try:
        local = Path(search_dir or ".") / (module_name.replace(".", "/") + ".py")
        if search_dir is not None and local.is_file():
            module = _load_file(local.resolve())
        else:
            module = importlib.import_module(module_name)
    finally:
        if added:
            sys.path.remove(search_dir)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{ref} is not callable")
    return obj


def _load_file(path: Path) -> ModuleType:
    name = f"harness_suite_modules.{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


class Python(Criterion):
    """A Python function of the transcript returning bool, a score in [0, 1], or a Verdict."""

    kind = "python"
    Config = PythonConfig
    cost = 1

    def __init__(self, spec, config: PythonConfig, context) -> None:
        super().__init__(spec, config, context)
        self.pass_threshold = config.threshold
        try:
            self.function = import_function(config.function, str(context.suite_dir))
        except Exception as exc:
            raise SuiteError(f"{spec.origin}: criterion '{spec.name}' (python): cannot import "
                             f"{config.function}: {type(exc).__name__}: {exc}") from None

    def describe(self) -> dict[str, str]:
        return {"function": self.config.function}

    def evaluate(self, transcript: Transcript) -> Result:
        return self.function(transcript, **self.config.args)


@hookimpl
def register_criterion_kinds(register: Callable[[type[Criterion]], None]) -> None:
    register(Python)
