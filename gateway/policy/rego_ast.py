"""The engine's own syntax tree of a Rego module, for the static checker.

regopy has no API for the syntax tree, but rego-cpp writes the tree after each of its
reader's passes to a directory when debugging is on (``Interpreter.debug_enabled``,
``set_debug_path``), in Trieste's text form. The last reader pass (``structure``) is
the Rego AST itself: modules, packages, imports, rules with their heads and bodies,
literals, expressions, terms and refs, each with the byte offset and length of its text
in the module. :func:`parse_module` parses one module that way and reads that file
back, so the checker sees exactly the parse the engine evaluates: no second grammar
that could disagree with it.

That text form is rego-cpp's debugging output, pinned with regopy in ``uv.lock``;
tests/policy/test_rego_ast.py holds the constructs the checker relies on, so an upgrade
that changes it fails there. Anything this reader does not recognise raises
:class:`AstUnreadable`, which the checker reports as a finding: it fails closed.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from regopy import Interpreter, LogLevel, RegoError

__all__ = [
    "AstUnreadable",
    "Node",
    "RegoSyntaxError",
    "SyntaxProblem",
    "line_col",
    "parse_module",
    "read_tree",
]

_PREFIX = "rego-"
_STRUCTURE = re.compile(r"\d+_structure\.trieste")


class AstUnreadable(Exception):
    """The engine's syntax tree is not in the form this reader knows."""


@dataclass(frozen=True)
class SyntaxProblem:
    """One error the engine reported for a module: where (a byte offset) and what."""

    offset: int | None
    message: str


class RegoSyntaxError(Exception):
    """The engine refused a module; ``problems`` says where and why."""

    def __init__(self, problems: list[SyntaxProblem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class Node:
    """One node of the engine's tree: its kind (without rego-cpp's ``rego-`` prefix),
    where its text starts and how long it is (None for nodes the engine made up, such
    as the variable behind a ``_``), its text for tokens, and its children."""

    kind: str
    offset: int | None
    length: int | None
    text: str | None
    children: tuple[Node, ...]

    def __getitem__(self, index: int) -> Node:
        return self.children[index]

    def __len__(self) -> int:
        return len(self.children)

    def child(self, kind: str) -> Node | None:
        """The first child of this kind, if any."""
        return next((c for c in self.children if c.kind == kind), None)

    def walk(self) -> Iterator[Node]:
        """This node and every node below it, depth first, in source order."""
        yield self
        for child in self.children:
            yield from child.walk()


def parse_module(name: str, source: str) -> Node:
    """The engine's syntax tree (its ``module`` node) of one Rego module.

    Raises RegoSyntaxError when the engine refuses the module and AstUnreadable when
    its tree cannot be read.
    """
    with tempfile.TemporaryDirectory(prefix="doelpoort-rego-ast-") as tmp:
        interpreter = Interpreter()
        interpreter.log_level = LogLevel.NONE
        interpreter.debug_enabled = True
        interpreter.set_debug_path(tmp)
        try:
            interpreter.add_module(name, source)
        except RegoError as exc:
            raise RegoSyntaxError(_problems(str(exc))) from None
        dumps = sorted(p for p in (Path(tmp) / "module0").glob("*") if _STRUCTURE.fullmatch(p.name))
        if not dumps:
            raise AstUnreadable("the engine wrote no syntax tree")
        top = read_tree(dumps[-1].read_bytes())
    module = next((n for n in top.walk() if n.kind == "module"), None)
    if module is None:
        raise AstUnreadable("the engine's syntax tree holds no module")
    return module


def _problems(error: str) -> list[SyntaxProblem]:
    try:
        tree = read_tree(error.encode())
    except AstUnreadable:
        return [SyntaxProblem(None, " ".join(error.split())[:300])]
    problems = [
        SyntaxProblem(node.offset, message.text or "syntax error")
        for node in tree.walk()
        if node.kind == "error" and (message := node.child("errormsg")) is not None
    ]
    return problems or [SyntaxProblem(None, "the engine refused the module")]


def read_tree(dump: bytes) -> Node:
    """Read Trieste's text form of a tree: the first ``(`` at a line start onwards.

    A node is ``(kind [[n:source]|offset|length[:text]] children…)``, or ``(kind
    n:text …)`` for a node the engine made up; texts are length-prefixed, so they may
    hold any byte. ``{}`` (a symbol table) is skipped.
    """
    start = 0 if dump.startswith(b"(") else dump.find(b"\n(") + 1
    if start == 0 and not dump.startswith(b"("):
        raise AstUnreadable("no tree in the engine's output")
    reader = _Reader(dump, start)
    node = reader.node()
    return node


class _Reader:
    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def node(self) -> Node:
        self._expect(b"(")
        kind = self._word()
        offset = length = None
        text: str | None = None
        if self._peek() == b" " and self._at(1) not in b"({\n":
            self.pos += 1
            if self._peek().isdigit():
                counted = self._counted()
                if self._peek() == b"|":  # it named the source file: a location follows
                    offset, length, text = self._location()
                else:
                    text = counted
            elif self._peek() == b"|":
                offset, length, text = self._location()
            else:
                raise self._unreadable("a node header")
        children: list[Node] = []
        while True:
            self._space()
            ahead = self._peek()
            if ahead == b")":
                self.pos += 1
                return Node(kind.removeprefix(_PREFIX), offset, length, text, tuple(children))
            if ahead == b"(":
                children.append(self.node())
            elif self.data.startswith(b"{}", self.pos):
                self.pos += 2
            else:
                raise self._unreadable("a child node")

    def _location(self) -> tuple[int, int, str | None]:
        self._expect(b"|")
        offset = self._number()
        self._expect(b"|")
        length = self._number()
        text = None
        if self._peek() == b":":
            self.pos += 1
            text = self._take(length)
        return offset, length, text

    def _counted(self) -> str:
        size = self._number()
        self._expect(b":")
        return self._take(size)

    def _take(self, size: int) -> str:
        end = self.pos + size
        if end > len(self.data):
            raise self._unreadable("a text")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk.decode("utf-8", errors="replace")

    def _word(self) -> str:
        start = self.pos
        while self.pos < len(self.data) and self.data[self.pos : self.pos + 1] not in (
            b" ",
            b"\n",
            b")",
            b"(",
        ):
            self.pos += 1
        if self.pos == start:
            raise self._unreadable("a node kind")
        return self.data[start : self.pos].decode("ascii", errors="replace")

    def _number(self) -> int:
        start = self.pos
        while self._peek().isdigit():
            self.pos += 1
        if self.pos == start:
            raise self._unreadable("a number")
        return int(self.data[start : self.pos])

    def _space(self) -> None:
        while self._peek() in (b" ", b"\n", b"\r", b"\t"):
            self.pos += 1

    def _peek(self) -> bytes:
        return self.data[self.pos : self.pos + 1]

    def _at(self, ahead: int) -> bytes:
        return self.data[self.pos + ahead : self.pos + ahead + 1] or b")"

    def _expect(self, token: bytes) -> None:
        if not self.data.startswith(token, self.pos):
            raise self._unreadable(repr(token.decode()))
        self.pos += len(token)

    def _unreadable(self, what: str) -> AstUnreadable:
        return AstUnreadable(f"expected {what} at byte {self.pos} of the engine's syntax tree")


def line_col(source: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a byte offset into a module's UTF-8 text."""
    before = source.encode()[:offset].decode(errors="replace")
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
