"""Load devices.yaml into the ledger model, reporting errors with YAML line numbers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from hazardwatch.errors import ConfigError
from hazardwatch.ledger.models import Plant


def _node_at(root: yaml.Node, loc: tuple[int | str, ...]) -> yaml.Node:
    """The deepest YAML node along a pydantic error location."""
    node = root
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
            if match is None:
                break
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            continue  # discriminator tags and similar loc items that are not in the YAML
    return node


_CODE_IN_MESSAGE = re.compile(
    r"^(?:(?:tag|voting group|camera) (?P<tag>[^:\s]+):|duplicate [a-z ]+ '(?P<dup>[^']+)')"
)


def _nodes_with_code(node: yaml.Node, code: str) -> list[yaml.Node]:
    """Every mapping below ``node`` whose ``code`` is ``code``, in document order."""
    found: list[yaml.Node] = []
    if isinstance(node, yaml.MappingNode):
        if any(
            getattr(k, "value", None) == "code" and getattr(v, "value", None) == code for k, v in node.value
        ):
            found.append(node)
        for _, value in node.value:
            found += _nodes_with_code(value, code)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found += _nodes_with_code(item, code)
    return found


def _refine(node: yaml.Node, message: str) -> yaml.Node:
    """Point a cross-reference error of a whole enterprise at the tag (or duplicate) it names."""
    match = _CODE_IN_MESSAGE.match(message)
    if match is None:
        return node
    code = match["tag"] or match["dup"]
    candidates = _nodes_with_code(node, code)
    return candidates[-1] if candidates else node


def _format_loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for key in loc:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text or "(top level)"


def _duplicate_keys(root: yaml.Node, source: str) -> list[str]:
    """Every key given twice in one mapping (YAML lets the last silently win: a limit or a code
    would change without a word), once per mapping node even where aliases share it."""
    problems: list[tuple[int, str]] = []
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[object, int] = {}
            for key, value in node.value:
                name = getattr(key, "value", None)
                if isinstance(key, yaml.ScalarNode) and name != "<<":
                    if name in first:
                        line = key.start_mark.line + 1
                        problems.append(
                            (line, f"{source}:{line}: key '{name}' given twice (first at line {first[name]})")
                        )
                    else:
                        first[name] = key.start_mark.line + 1
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return [message for _, message in sorted(problems)]


MAX_EXPANDED_NODES = 1_000_000  # a devices file of 10 000 tags expands to about 200 000


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes the document becomes once its aliases are expanded (each shared node counted
    as often as it is used), computed once per node: a few aliases nested ("billion laughs") would
    otherwise make validation run for ever."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # a cycle (a recursive alias) counts once
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(item) for item in node.value)
        else:
            total = 1
        sizes[id(node)] = total = min(total, MAX_EXPANDED_NODES + 1)
        return total

    return size(root)


M = TypeVar("M", bound=BaseModel)


def load_model_text(
    text: str, model: type[M], source: str, what: str, context: dict[str, object] | None = None
) -> M:
    """Parse and validate a YAML document as ``model``; ConfigError lists every problem with its line.

    ``context`` reaches the model's validators (e.g. the plant a rules file refers to).
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None and _expanded_size(root) > MAX_EXPANDED_NODES:
            limit = f"{MAX_EXPANDED_NODES:,}"
            raise ConfigError(
                f"{source}:1: the document expands to more than {limit} nodes through its aliases"
            )
        data = yaml.safe_load(text)
    except RecursionError as err:
        raise ConfigError(f"{source}:1: the document is nested too deeply") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError(f"{where}: not valid YAML: {getattr(err, 'problem', err)}") from err
    if root is None or not isinstance(data, dict):
        raise ConfigError(f"{source}:1: {what} must be a mapping")
    duplicates = _duplicate_keys(root, source)
    if duplicates:
        raise ConfigError("\n".join(duplicates))
    try:
        return model.model_validate(data, context=context)
    except ValidationError as err:
        lines = []
        for error in err.errors():
            loc = tuple(error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            node = _refine(_node_at(root, loc), message)
            lines.append(f"{source}:{node.start_mark.line + 1}: {_format_loc(loc)}: {message}")
        raise ConfigError("\n".join(lines)) from err


def load_model(path: str | Path, model: type[M], what: str, context: dict[str, object] | None = None) -> M:
    """Read and validate a YAML file as ``model``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from err
    except UnicodeDecodeError as err:
        line = err.object[: err.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte {err.start}: {err.object[err.start]:#04x})"
        ) from err
    return load_model_text(text, model, str(path), what, context)


def load_plant_text(text: str, source: str = "<devices>") -> Plant:
    """Parse and validate a devices file's text; ConfigError lists every problem with its line."""
    return load_model_text(text, Plant, source, "the devices file (with 'version' and 'enterprises')")


def load_plant(path: str | Path) -> Plant:
    return load_model(path, Plant, "the devices file (with 'version' and 'enterprises')")
