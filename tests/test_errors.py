"""The one error tree: the drawing in gateway/errors.py is the tree the classes form."""

from __future__ import annotations

import re

import gateway.errors
from gateway.errors import PROBLEM_TYPE_PREFIX, DoelpoortError

# One line of the drawing: the tree's prefix, a class name, then what it means.
_LINE = re.compile(r"^(?P<prefix>[ │├└─]*)(?P<name>[A-Z][A-Za-z]+)\b")
_INDENT = 4  # each level of the drawing is four characters deeper


def _drawn_tree() -> dict[str, str | None]:
    """Class name → parent name, as gateway/errors.py's docstring draws it."""
    doc = gateway.errors.__doc__ or ""
    drawing = doc[doc.index("    DoelpoortError") :]
    parents: dict[str, str | None] = {}
    stack: list[str] = []  # the ancestors of the current line, by depth
    for line in drawing.splitlines():
        match = _LINE.match(line.removeprefix("    "))
        if match is None:
            break
        depth = len(match["prefix"]) // _INDENT
        del stack[depth:]
        parents[match["name"]] = stack[-1] if stack else None
        stack.append(match["name"])
    return parents


def _class_tree() -> dict[str, str | None]:
    """Class name → parent name, from the classes themselves."""
    parents: dict[str, str | None] = {DoelpoortError.__name__: None}
    todo = [DoelpoortError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            parents[sub.__name__] = cls.__name__
            todo.append(sub)
    return parents


def test_the_drawing_is_the_tree() -> None:
    assert _drawn_tree() == _class_tree()


def test_every_error_is_exported_by_gateway_errors() -> None:
    assert set(_class_tree()) <= set(gateway.errors.__all__)


def test_problem_types_are_distinct_and_stable() -> None:
    classes = [getattr(gateway.errors, name) for name in _class_tree()]
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"[a-z]+(-[a-z]+)*", code) for code in codes)
    problem = gateway.errors.UnknownDataset("unknown dataset 'x/y'").problem()
    assert problem == {
        "type": PROBLEM_TYPE_PREFIX + "unknown-dataset",
        "title": "Unknown dataset",
        "status": 422,
        "detail": "unknown dataset 'x/y'",
    }


def test_verification_failures_share_one_base() -> None:
    verification = {
        name
        for name, parent in _class_tree().items()
        if parent == gateway.errors.VerificationError.__name__
    }
    assert verification == {
        "AuditVerificationError",
        "CheckpointError",
        "EscrowError",
        "InvalidReceipt",
        "PolicySetMismatch",
        "ProofError",
    }
