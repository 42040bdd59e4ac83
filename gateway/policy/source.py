"""YAML text to plain data, remembering where every key and item was written.

PyYAML's ``safe_load`` forgets positions and silently keeps the last of two equal keys;
a policy author needs both: errors that point at a line, and a duplicate ``action:``
reported rather than half-applied. So the document is composed once into nodes, walked
for positions and duplicates, and then constructed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from gateway.policy.errors import Problem

Path_ = tuple[str | int, ...]


@dataclass(slots=True)
class Source:
    """A parsed policy file: its data plus a position for every path in it."""

    file: str
    data: Any
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def locate(self, path: Path_) -> tuple[int, int]:
        """Line and column of the deepest known prefix of ``path`` (1-based)."""
        for cut in range(len(path), -1, -1):
            found = self.positions.get(tuple(path[:cut]))
            if found is not None:
                return found
        return (1, 1)

    def rule_id(self, path: Path_) -> str | None:
        """The ``id`` of the rule a path points into, when it can be read."""
        if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
            rules = self.data.get("rules") if isinstance(self.data, dict) else None
            if (
                isinstance(rules, list)
                and path[1] < len(rules)
                and isinstance(rules[path[1]], dict)
            ):
                rid = rules[path[1]].get("id")
                return rid if isinstance(rid, str) else None
        return None

    def problem(self, path: Path_, message: str) -> Problem:
        line, column = self.locate(path)
        return Problem(self.file, line, column, message, self.rule_id(path))


def parse(text: str, file: str) -> Source:
    """Parse one YAML document; syntax errors and duplicate keys become problems.

    So does anything else PyYAML can raise on hostile text, since a reload must keep the
    last good policies rather than crash: a character YAML forbids (NUL, a lone
    surrogate), an integer past Python's digit limit, nesting deeper than the stack, and
    aliases that expand past ``MAX_NODES``.
    """
    try:
        loader = yaml.SafeLoader(text)  # checks every character first
        try:
            node = loader.get_single_node()
            if node is None:
                return Source(file, None, problems=[Problem(file, 1, 1, "the file is empty")])
            source = Source(file, loader.construct_document(node))
            _walk(node, (), source)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return Source(file, None, problems=[Problem(file, line, column, f"YAML: {exc.problem}")])
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return Source(file, None, problems=[Problem(file, line, column, f"YAML: {exc.reason}")])
    except (ValueError, RecursionError, _TooLarge) as exc:
        message = _UNREADABLE.get(type(exc)) or f"a value cannot be read: {exc}"
        return Source(file, None, problems=[Problem(file, 1, 1, f"YAML: {message}")])
    return source


#: Nodes a document may hold with its aliases expanded. A policy has a few hundred; a
#: file of nested aliases ("billion laughs") would otherwise be walked for hours.
MAX_NODES = 100_000


class _TooLarge(Exception):
    """The document expands past ``MAX_NODES``."""


_UNREADABLE: dict[type[Exception], str] = {
    RecursionError: "nested too deeply",
    _TooLarge: f"expands to more than {MAX_NODES} values through aliases",
}


def _walk(node: yaml.Node, path: Path_, source: Source) -> None:
    if len(source.positions) >= MAX_NODES:
        raise _TooLarge
    source.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                message = f"duplicate key {key!r} (YAML would keep only the last one)"
                source.problems.append(
                    Problem(source.file, line, column, message, source.rule_id(path))
                )
            seen.add(key)
            _walk(value_node, (*path, key), source)
            source.positions[(*path, key)] = (
                key_node.start_mark.line + 1,
                key_node.start_mark.column + 1,
            )
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), source)
