"""Suite files: YAML lists of criteria and the decision policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class SuiteError(Exception):
    """A suite file is invalid; the message names the file, the criterion and the key."""


class CriterionSpec(BaseModel):
    """The keys every criterion has, whatever its kind. The rest is the kind's ``Config``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    """Unique name in the suite."""
    kind: str
    """A registered criterion kind (``harness criteria`` lists them)."""
    gate: bool = True
    """A gate must pass for the transcript to pass; a non-gate only contributes its score."""
    weight: float = Field(default=1.0, ge=0.0)
    """Weight of the score in the decision's weighted mean."""
    version: str = "1"
    """Bump it when the criterion's meaning changes (recorded with every verdict)."""
    description: str = ""
    """What the criterion checks, for reports."""
    scope: Literal["transcript", "message"] = "transcript"
    """``message``: one verdict per assistant message (judging the conversation up to it)."""
    min_pass_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    """For CI gating over a corpus: the least acceptable pass rate of this criterion."""
    config: dict[str, Any] = Field(default_factory=dict)
    """The kind-specific keys, validated by the kind's ``Config``."""
    origin: str = ""
    """The suite file that defined it."""


COMMON_KEYS = set(CriterionSpec.model_fields) - {"config", "origin"}


class Suite(BaseModel):
    """A parsed suite file, includes resolved."""

    model_config = ConfigDict(extra="forbid")

    name: str
    """Suite name."""
    version: str = "1"
    """Suite version, recorded with every exported example."""
    description: str = ""
    """What the suite is for."""
    judge: str | dict[str, Any] | None = None
    """Default judge of ``llm_judge`` criteria, e.g. ``local/smollm2``, ``openai/gpt-4o-mini``."""
    generator: str | dict[str, Any] | None = Field(default=None, exclude=True)
    """``harness correct``'s default generator, named like a judge (not part of the review, so
    not in the suite's fingerprint)."""
    supervisor: str | dict[str, Any] | None = Field(default=None, exclude=True)
    """``harness correct``'s default supervisor, named like a judge (not in the fingerprint)."""
    variables: dict[str, Any] = Field(default_factory=dict)
    """Values given to rubric templates."""
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """When set, the weighted mean score of the non-gate criteria must reach it."""
    criteria: list[CriterionSpec] = Field(default_factory=list)
    """The criteria, in suite order."""
    path: Path | None = None
    """The file it was loaded from."""

    @property
    def directory(self) -> Path:
        return self.path.parent if self.path else Path(".")


SUITE_KEYS = {"name", "version", "description", "judge", "variables", "threshold", "criteria",
              "include", "generator", "supervisor"}


def _format_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top)"
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key '{loc}'")
        elif err["type"] == "missing":
            parts.append(f"missing key '{loc}'")
        else:
            parts.append(f"'{loc}': {err['msg']}")
    return "; ".join(parts)


MAX_ALIAS_NODES = 100_000
"""Nodes that aliases may add to a suite file once expanded (a bound on YAML alias bombs)."""


class _AliasBomb(yaml.YAMLError):
    """Aliases expand to too many nodes, or an alias refers to the node that contains it."""


def _expanded_size(root: yaml.Node) -> tuple[int, int]:
    """(nodes once every alias is expanded, distinct nodes) of a composed YAML document.

    Iterative and memoized, so it costs one visit per distinct node and per alias use.
    """
    size: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if done:
            open_nodes.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            continue
        if key in size:
            continue
        if key in open_nodes:
            raise _AliasBomb(f"recursive alias (near line {node.start_mark.line + 1})")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)
    return size[id(root)], len(size)


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` refusing documents whose aliases expand past ``MAX_ALIAS_NODES``."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            expanded, distinct = _expanded_size(node)
            if expanded - distinct > MAX_ALIAS_NODES:
                raise _AliasBomb(f"too many alias expansions ({expanded - distinct} nodes "
                                 f"through aliases; at most {MAX_ALIAS_NODES})")
        return node


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=_BoundedLoader)
    except FileNotFoundError:
        raise SuiteError(f"{path}: suite file not found") from None
    except IsADirectoryError:
        raise SuiteError(f"{path}: is a folder, not a suite file") from None
    except OSError as exc:
        raise SuiteError(f"{path}: cannot read the suite file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SuiteError(f"{path}: not UTF-8 text (byte {exc.start}); save the suite as "
                         f"UTF-8") from None
    except _AliasBomb as exc:
        raise SuiteError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise SuiteError(f"{path}: invalid YAML: {detail}") from None
    except RecursionError:
        raise SuiteError(f"{path}: YAML nested too deeply") from None
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: a suite is a YAML mapping with `name` and `criteria`")
    return data


def _includes(path: Path, value: Any) -> list[str]:
    """The paths of an ``include:`` value: one path, or a list of paths."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return value
    raise SuiteError(f"{path}: `include` must be a list of paths (or one path), "
                     f"got {_describe(value)}")


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _criterion(path: Path, index: int, raw: Any) -> CriterionSpec:
    if not isinstance(raw, dict):
        raise SuiteError(f"{path}: criteria[{index}] must be a mapping, got {type(raw).__name__}")
    label = f"criterion '{raw.get('name', f'#{index + 1}')}'"
    common = {k: v for k, v in raw.items() if k in COMMON_KEYS}
    config = {k: v for k, v in raw.items() if k not in COMMON_KEYS}
    try:
        return CriterionSpec(**common, config=config, origin=str(path))
    except ValidationError as exc:
        raise SuiteError(f"{path}: {label}: {_format_errors(exc)}") from None


def load_suite(path: str | Path, _seen: tuple[Path, ...] = ()) -> Suite:
    """Read a suite file and the files it includes. Later definitions replace earlier ones."""
    path = Path(path).resolve()
    if path in _seen:
        raise SuiteError(f"{path}: include cycle: {' -> '.join(str(p) for p in _seen)}")
    data = _read_yaml(path)
    unknown = set(data) - SUITE_KEYS
    if unknown:
        names = sorted(str(k) for k in unknown)
        raise SuiteError(f"{path}: unknown key(s) {names}; valid: {sorted(SUITE_KEYS)}")
    includes = _includes(path, data.pop("include", None))
    variables = data.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise SuiteError(f"{path}: `variables` must be a mapping, got {_describe(variables)}")
    merged: dict[str, CriterionSpec] = {}
    base: dict[str, Any] = {}
    for inc in includes:
        target = (path.parent / inc).resolve()
        if target.is_dir():
            raise SuiteError(f"{path}: include {inc!r} is a folder ({target}), not a suite file")
        if not target.exists():
            raise SuiteError(f"{path}: include {inc!r}: suite file not found ({target})")
        sub = load_suite(target, (*_seen, path))
        merged.update((c.name, c) for c in sub.criteria)
        base = {**base, **sub.model_dump(include={"judge", "threshold"}, exclude_none=True)}
        base["variables"] = {**base.get("variables", {}), **sub.variables}
    raw_criteria = data.pop("criteria", None) or []
    if not isinstance(raw_criteria, list):
        raise SuiteError(f"{path}: `criteria` must be a list")
    own: dict[str, CriterionSpec] = {}
    for i, raw in enumerate(raw_criteria):
        spec = _criterion(path, i, raw)
        if spec.name in own:
            raise SuiteError(f"{path}: criterion '{spec.name}' is defined twice")
        own[spec.name] = spec
    merged.update(own)
    fields = {**base, **data}
    fields["variables"] = {**base.get("variables", {}), **(variables or {})}
    try:
        return Suite(**fields, criteria=list(merged.values()), path=path)
    except ValidationError as exc:
        raise SuiteError(f"{path}: {_format_errors(exc)}") from None


def validate_config(spec: CriterionSpec, config_cls: type[BaseModel]) -> BaseModel:
    """Validate a criterion's kind-specific keys, with an error naming file, criterion and key."""
    try:
        return config_cls(**spec.config)
    except ValidationError as exc:
        valid = ", ".join(sorted(config_cls.model_fields)) or "(none)"
        raise SuiteError(
            f"{spec.origin}: criterion '{spec.name}' (kind {spec.kind}): {_format_errors(exc)}"
            f" (keys of {spec.kind}: {valid})"
        ) from None
