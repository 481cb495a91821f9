"""Read YAML while remembering the line of every key, so errors can say file:line."""

from __future__ import annotations

from typing import Any

import yaml

from haops.errors import InventoryError, Problem

Path = tuple[str | int, ...]
MAX_NODES = 200_000
MERGE_TAG = "tag:yaml.org,2002:merge"
# libyaml's parser when PyYAML has it (its wheels do): the same nodes and marks, ~10x faster.
COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LocatedDocument:
    """Plain Python data from a YAML file, plus the 1-based line of each path in it."""

    def __init__(self, data: Any, lines: dict[Path, int], filename: str) -> None:
        self.data = data
        self.lines = lines
        self.filename = filename

    def line(self, path: Path) -> int | None:
        """The line of the nearest located ancestor of `path`."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


class _Builder:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.lines: dict[Path, int] = {}
        self.scalars = yaml.SafeLoader("")
        self.visited = 0

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.visited += 1
        if self.visited > MAX_NODES:
            raise self._error(node, "document too large (anchors expand past 200000 nodes)")
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _scalar(self, node: yaml.Node) -> Any:
        try:
            return self.scalars.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            raise self._error(node, f"cannot read value: {exc}") from None

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                self._merge(result, value_node, path)
                continue
            key = self._scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise self._error(key_node, f"keys must be plain text, got {_describe(key_node)}")
            key = str(key)
            if key in result:
                raise self._error(key_node, f"duplicate key {key!r}")
            self.lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = self.build(value_node, path + (key,))
        return result

    def _merge(self, result: dict[Any, Any], value_node: yaml.Node, path: Path) -> None:
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in sources:
            merged = self.build(source, path)
            if not isinstance(merged, dict):
                raise self._error(source, "'<<' merges only mappings")
            for key, value in merged.items():
                result.setdefault(key, value)

    def _error(self, node: yaml.Node, message: str) -> InventoryError:
        return InventoryError([Problem(self.filename, node.start_mark.line + 1, "", message)])


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return repr(node.value) if node.tag.endswith(":str") else f"{node.value!r} ({node.tag.rsplit(':', 1)[-1]})"
    return "a mapping" if isinstance(node, yaml.MappingNode) else "a list"


def load_located(text: str, filename: str) -> LocatedDocument:
    """Parse one YAML document; raise InventoryError with the line on any syntax problem."""
    try:
        root = yaml.compose(text, Loader=COMPOSER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise InventoryError([Problem(filename, line, "", f"YAML syntax: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise InventoryError([Problem(filename, None, "", f"YAML syntax: {exc}")]) from None
    except RecursionError:
        raise InventoryError([Problem(filename, None, "", "YAML nested too deeply")]) from None
    if root is None:
        return LocatedDocument(None, {}, filename)
    builder = _Builder(filename)
    try:
        data = builder.build(root, ())
    except RecursionError:
        raise InventoryError([Problem(filename, None, "", "YAML nested too deeply")]) from None
    return LocatedDocument(data, builder.lines, filename)
