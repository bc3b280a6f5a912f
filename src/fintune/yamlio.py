"""Strict YAML loading for recipes and search spaces: duplicate keys, size and alias limits, one-line errors.

PyYAML's ``safe_load`` lets the last of two equal keys win silently and expands aliases without bound (a "billion
laughs" document of a few hundred bytes becomes billions of nodes for whatever walks it). :func:`load_yaml` refuses
both: a duplicate key names the file, line and key; a file over ``max_bytes``, or a document whose aliases would
expand past ``max_nodes`` nodes, is refused before anything is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fintune.errors import FintuneError

MAX_YAML_BYTES = 1 << 20
"""Largest recipe / space file accepted (1 MiB; shipped recipes are under 4 KB)."""
MAX_YAML_NODES = 100_000
"""Most nodes a document may have once its aliases are expanded."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (the source name is set per load)."""

    source = "<yaml>"

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Build a mapping, raising on a key given twice in the same mapping (merge keys ``<<`` excepted)."""
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base constructor reports it
                    continue
                line = key_node.start_mark.line + 1
                if first is not None:
                    raise FintuneError(f"{self.source}:{line}: duplicate key '{key}' (first on line {first})",
                                       "give each key once; the last one used to win silently")
                seen[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        """A date-shaped scalar that is no real date (``2020-13-01``) stays text, so the schema that reads it
        names the key in a one-line error (PyYAML raises a bare ``ValueError``)."""
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _StrictLoader.construct_yaml_timestamp)


def _expanded_size(node: yaml.Node, memo: dict[int, int], limit: int) -> int:
    """Nodes in ``node`` with every alias expanded (memoised per node, so shared subtrees cost once)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a recursive alias counts once instead of looping
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            total += _expanded_size(child, memo, limit)
            if total > limit:
                break
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            total += _expanded_size(key, memo, limit) + _expanded_size(value, memo, limit)
            if total > limit:
                break
    memo[id(node)] = total
    return total


def _yaml_error(exc: yaml.YAMLError, source: str) -> FintuneError:
    mark, ctx = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
    where = f"{source}:{mark.line + 1}" if mark else source
    opened = f", in the construct started on line {ctx.line + 1}" if ctx and mark and ctx.line != mark.line else ""
    return FintuneError(f"{where}: invalid YAML ({getattr(exc, 'problem', None) or exc}{opened})")


def load_yaml_text(text: str, source: str = "<yaml>", max_nodes: int = MAX_YAML_NODES) -> Any:
    """Parse one YAML document strictly (see module doc); errors are one-line :class:`FintuneError`."""
    loader = _StrictLoader(text)
    loader.source = source
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {}, max_nodes)
        if size > max_nodes:
            raise FintuneError(f"{source}: YAML expands to more than {max_nodes} nodes (alias bomb?)",
                               "write the values out instead of nesting aliases")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    except RecursionError:
        raise FintuneError(f"{source}: YAML nested too deeply", "flatten the document") from None
    finally:
        loader.dispose()


def load_yaml(path: str | Path, max_bytes: int = MAX_YAML_BYTES, max_nodes: int = MAX_YAML_NODES) -> Any:
    """Read and parse a YAML file strictly: a directory, an oversized file or non-UTF-8 bytes are one-line errors."""
    path = Path(path)
    if path.is_dir():
        raise FintuneError(f"{path}: is a directory, not a YAML file", "give the path of a .yaml file")
    if not path.is_file():
        raise FintuneError(f"{path}: file not found")
    size = path.stat().st_size
    if size > max_bytes:
        raise FintuneError(f"{path}: {size} bytes, over the {max_bytes}-byte limit for a YAML file",
                           "a recipe is a few KB; point data paths at the data instead of inlining it")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FintuneError(f"{path}:{line}: not UTF-8 text (byte {exc.start})", "re-save the file as UTF-8") from None
    return load_yaml_text(text, str(path), max_nodes)
