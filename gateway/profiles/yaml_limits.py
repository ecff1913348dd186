"""Profile files are data: YAML parsed within limits of size, nesting, aliases and time.

A profile directory may be writable by more people than the gateway's code, and hot reload
reads whatever appears in it. PyYAML's composer recurses once per nesting level (a file of
10,000 `[` raises RecursionError), and an alias is a reference, so nine anchors of nine
aliases each ("billion laughs") make a 1 KB file that any walk of the node graph, and the
constructed Python value, expands to 10^9 nodes. So the composer below counts: nesting depth,
alias uses, and the nodes the document expands to (an alias counts as all the nodes it stands
for), and stops with a YAML error at the first limit, naming the line. Real profiles are a few
hundred nodes deep 6-8, with no aliases or a handful.
"""

from __future__ import annotations

import time
from typing import Any

import yaml
from yaml.composer import ComposerError

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_ALIASES = 64
MAX_EXPANDED_NODES = 100_000
MAX_PARSE_S = 5.0


class _LimitedLoader(yaml.SafeLoader):
    """SafeLoader whose composer enforces the limits above."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        self._aliases = 0
        self._expanded = 0
        self._sizes: dict[int, int] = {}  # id(node) -> nodes it expands to
        self._deadline = time.monotonic() + MAX_PARSE_S

    def compose_node(self, parent: Any, index: Any) -> Any:  # PyYAML's signature is untyped
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]  # types-PyYAML leaves it untyped
            node = super().compose_node(parent, index)
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                self._refuse(f"more than {MAX_ALIASES} aliases (*name)", mark)
            self._count(self._sizes.get(id(node), 1), mark)
            return node
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]  # types-PyYAML leaves it untyped
        self._depth += 1
        if self._depth > MAX_DEPTH:
            self._refuse(f"nested deeper than {MAX_DEPTH} levels", mark)
        before = self._expanded
        self._count(1, mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._sizes[id(node)] = self._expanded - before
        return node

    def _count(self, nodes: int, mark: Any) -> None:  # a yaml Mark
        self._expanded += nodes
        if self._expanded > MAX_EXPANDED_NODES:
            self._refuse(
                f"expands to more than {MAX_EXPANDED_NODES} values (aliases of aliases?)", mark
            )
        if time.monotonic() > self._deadline:
            self._refuse(f"took longer than {MAX_PARSE_S:.0f}s to read", mark)

    def _refuse(self, problem: str, mark: Any) -> None:  # a yaml Mark
        raise ComposerError(None, None, f"{problem}; a profile is not that large", mark)


def parse(text: str) -> tuple[Any, Any]:
    """(root node with line marks, constructed value) of one YAML document within the limits.

    Raises yaml.YAMLError (with `problem_mark` where known), also for a text over
    MAX_FILE_BYTES."""
    if len(text) > MAX_FILE_BYTES:
        raise ComposerError(
            None, None, f"{len(text)} characters, more than {MAX_FILE_BYTES} for a profile", None
        )
    loader = _LimitedLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return node, data
