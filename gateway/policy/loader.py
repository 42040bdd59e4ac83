"""Policy files on disk to compiled policies, all or nothing.

A file loads whole or not at all, and a directory loads whole or not at all: a reload
that finds one broken file keeps every last good policy active (see ``store``).
"""

from __future__ import annotations

import importlib.resources
import types
import typing
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ValidationError

from gateway.policy.compiler import CompiledPolicy, compile_policy
from gateway.policy.errors import PolicyError, Problem
from gateway.policy.model import Policy
from gateway.policy.source import Source, parse

# The policies shipped inside the package. Installed or editable, the package is on disk,
# so this is a real directory the reload watcher can stat; a zipped import has none, and
# its path then fails to load with "cannot read" (pass --policy instead).
_BUNDLED = importlib.resources.files("gateway") / "policies"
BUNDLED_DIR = _BUNDLED if isinstance(_BUNDLED, Path) else Path(str(_BUNDLED))
DEFAULT_POLICY = BUNDLED_DIR / "default.yaml"


def policy_files(path: Path) -> list[Path]:
    """A file, or a directory's ``*.yaml``/``*.yml`` files in name order."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in {".yaml", ".yml"} and p.is_file())
    return [path]


def load_text(text: str, file: str) -> CompiledPolicy:
    source = parse(text, file)
    if source.problems:
        raise PolicyError(source.problems)
    try:
        policy = Policy.model_validate(source.data)
    except ValidationError as exc:
        raise PolicyError([_problem(source, error) for error in exc.errors()]) from None
    return compile_policy(policy, source)


def load_file(path: Path) -> CompiledPolicy:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([Problem(str(path), 1, 1, f"cannot read: {exc}")]) from None
    return load_text(text, str(path))


def load_paths(paths: Iterable[Path]) -> dict[str, CompiledPolicy]:
    """Every policy under ``paths``, keyed by name; raises with every problem found."""
    loaded: dict[str, CompiledPolicy] = {}
    problems: list[Problem] = []
    files = [f for p in paths for f in policy_files(p)]
    if not files:
        raise PolicyError([Problem(", ".join(map(str, paths)), 1, 1, "no policy files found")])
    for file in files:
        try:
            compiled = load_file(file)
        except PolicyError as exc:
            problems.extend(exc.problems)
            continue
        if compiled.name in loaded:
            other = loaded[compiled.name].file
            problems.append(
                Problem(str(file), 1, 1, f"policy name {compiled.name!r} also in {other}")
            )
            continue
        loaded[compiled.name] = compiled
    if problems:
        raise PolicyError(problems)
    return loaded


def _problem(source: Source, error: typing.Mapping[str, typing.Any]) -> Problem:
    loc = tuple(p for p in error["loc"] if isinstance(p, str | int))
    where = ".".join(str(p) for p in loc) or "policy"
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = f"; allowed: {', '.join(allowed)}" if allowed else ""
        return source.problem(
            loc, f"unknown key {loc[-1]!r} in {where.rpartition('.')[0] or 'policy'}{hint}"
        )
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        message = "required key is missing"
    return source.problem(loc, f"{where}: {message}")


def _allowed_keys(loc: tuple[str | int, ...]) -> list[str]:
    """The keys the model accepts at ``loc``, to turn a typo into a suggestion."""
    model: typing.Any = Policy
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if _is_model(model) else None
        if field is None:
            return []
        model = _unwrap(field.annotation)
    return list(model.model_fields) if _is_model(model) else []


def _unwrap(annotation: typing.Any) -> typing.Any:
    """``list[X]``, ``X | None`` -> ``X`` (the first model type inside)."""
    if _is_model(annotation):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) in {
        typing.Union,
        list,
    }:
        for arg in typing.get_args(annotation):
            inner = _unwrap(arg)
            if _is_model(inner):
                return inner
    return annotation


def _is_model(obj: typing.Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)
