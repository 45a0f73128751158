"""Static checks of a Rego policy set: what OPA's strict compiler refuses and rego-cpp runs.

rego-cpp compiles a policy that names a rule nobody defines (``not role_grantd``), a data
document nobody loads (``data.registr``), an input key the gateway never sends
(``input.dataset.domian``) or a function that does not exist (``sprintff``): each is
simply undefined when evaluated, which denies everything or quietly switches a guard off.
This module reads the engine's own syntax tree of every module (`gateway.policy.rego_ast`)
and reports, with the byte offset of the offending text:

``undefined-ref``    a name that is no rule of the package, import, local variable or
                     argument;
``unknown-builtin``  a call of a function that is neither a built-in of the engine nor
                     a function rule;
``unknown-data``     a ``data`` path (directly, through an import or through a rule
                     that copies part of it) outside the rules and ``data.register``,
                     whose keys are `gateway.policy.shapes.register_shape`'s;
``unknown-input``    an ``input`` path (likewise) outside the documented input schema;
``unknown-key``      a key a rule's value (an object the rule builds) never has;
``never-defined``    a rule that can never be defined: its body or value reads one of the
                     above outside ``not`` and comprehensions, or holds a condition that
                     is always false (``false``, ``1 == 2``);
``unreachable``      a rule of a policy module (not a ``*_test.rego``) that nothing
                     reachable from an entrypoint reads: a misspelt rule head
                     (``denny contains …``) defines such a rule and switches a guard off;
``conflict``         one rule defined both as a function and not, or as functions of
                     different arities (rego-cpp crashes on the latter, so the checker
                     refuses it before anything compiles it);
``no-entrypoint``    no rule defines an entrypoint.

Scoping is simplified, never stricter than Rego: a name bound anywhere in a rule (by
``:=``, ``=``, ``some``, ``every``, a ref index or an argument) counts as bound in all of
that rule. So the checker never refuses a valid policy for scoping, and may miss a
variable used outside the comprehension that binds it (which the engine refuses anyway).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.policy.rego_ast import Node
from gateway.policy.shapes import ANY, SCALAR, Shape, input_shape, register_shape, union

__all__ = ["ENTRYPOINT_PATH", "TEST_SUFFIX", "Problem", "RegoModule", "check_modules"]

#: data.doelpoort.disclosure.decision, as a path.
ENTRYPOINT_PATH = ("doelpoort", "disclosure", "decision")
TEST_SUFFIX = "_test.rego"

Key = str | int | None  # a ref segment: a constant key, or None when only evaluation knows
Path = tuple[str, ...]


@dataclass(frozen=True)
class RegoModule:
    """One parsed module: its path relative to the policies directory and its tree."""

    name: str
    source: str
    tree: Node

    @property
    def is_test(self) -> bool:
        return self.name.endswith(TEST_SUFFIX)


@dataclass(frozen=True)
class Problem:
    """A finding of the static checks: module, byte offset (None: the whole module),
    stable code and a message."""

    module: str
    offset: int | None
    code: str
    message: str


@dataclass
class _Rule:
    module: RegoModule
    package: Path
    path: Path
    node: Node
    kind: str  # comp, func, set, obj
    arity: int
    offset: int | None


@dataclass(frozen=True)
class _Walk:
    """Where a walk down ``data`` ended: the shape there, or a problem after
    ``consumed`` keys in a document of ``origin`` (data, input or rule)."""

    shape: Shape | None
    problem: str | None = None
    consumed: int = 0
    origin: str = ""


@dataclass
class _Namespace:
    """An inner node of the ``data`` tree: packages and rule-path prefixes."""

    children: dict[str, _Namespace | Path | Shape] = field(default_factory=dict)


#: Calls the engine evaluates without listing them as built-ins: ``print`` writes to the
#: test runner's output (`doelpoort policy test -v`) and is always true.
_ENGINE_STATEMENTS = frozenset({"print"})


def check_modules(
    modules: Sequence[RegoModule],
    *,
    is_builtin: Any,
    entrypoints: Iterable[Path] = (ENTRYPOINT_PATH,),
) -> list[Problem]:
    """Every problem of the policy set, in module and source order."""
    return _Checker(modules, is_builtin, tuple(entrypoints)).run()


class _Checker:
    def __init__(
        self, modules: Sequence[RegoModule], is_builtin: Any, entrypoints: tuple[Path, ...]
    ):
        self.modules = modules
        self.is_builtin = is_builtin
        self.entrypoints = entrypoints
        self.problems: list[Problem] = []
        self.rules: dict[Path, list[_Rule]] = {}
        self.packages: dict[Path, set[str]] = {}  # package → top-level rule names
        self.imports: dict[str, dict[str, tuple[str, Path]]] = {}  # module → alias → target
        self.data = _Namespace({"register": register_shape()})
        self.edges: dict[Path, set[Path]] = {}
        self._shapes: dict[Path, Shape] = {}
        self._shaping: set[Path] = set()

    # --- collecting ---------------------------------------------------------------------

    def run(self) -> list[Problem]:
        for module in self.modules:
            self._collect(module)
        self._conflicts()
        for path in self.rules:
            self._insert(path)
        for rules in self.rules.values():
            for rule in rules:
                _RuleCheck(self, rule).run()
        self._reachability()
        return self.problems

    def report(self, module: RegoModule, offset: int | None, code: str, message: str) -> None:
        self.problems.append(Problem(module.name, offset, code, message))

    def _collect(self, module: RegoModule) -> None:
        tree = module.tree
        package_node = tree.child("package")
        package = (
            _plain_path(package_node[0])
            if package_node is not None and package_node.children
            else None
        )
        if package is None:
            self.report(module, tree.offset, "syntax", "the module has no readable package")
            return
        names = self.packages.setdefault(package, set())
        aliases: dict[str, tuple[str, Path]] = {}
        for imp in (tree.child("importseq") or _EMPTY).children:
            target = _plain_path(imp[0]) if imp.children else None
            if not target or target[0] not in ("data", "input"):
                continue  # import rego.v1, future.keywords: keywords, not documents
            alias_node = imp.child("var")
            alias = alias_node.text if alias_node is not None and alias_node.text else target[-1]
            aliases[alias] = (target[0], target[1:])
        self.imports[module.name] = aliases
        for rule_node in (tree.child("policy") or _EMPTY).children:
            if rule_node.kind != "rule":
                continue
            head = rule_node.child("rulehead")
            if head is None or len(head) < 2:
                continue
            head_path = _plain_path(head[0][0]) if head[0].children else None
            if not head_path:
                continue
            kind_node = head[1]
            kind = {
                "ruleheadfunc": "func",
                "ruleheadset": "set",
                "ruleheadobj": "obj",
            }.get(kind_node.kind, "comp")
            arity = len(kind_node[0]) if kind == "func" else 0
            path = package + head_path
            names.add(head_path[0])
            self.rules.setdefault(path, []).append(
                _Rule(module, package, path, rule_node, kind, arity, head[0].offset)
            )

    def _conflicts(self) -> None:
        for path, rules in self.rules.items():
            functions = {rule.arity for rule in rules if rule.kind == "func"}
            shown = ".".join(path)
            last = rules[-1]
            if functions and any(rule.kind != "func" for rule in rules):
                self.report(
                    last.module,
                    last.offset,
                    "conflict",
                    f"rule {shown} is defined both as a function and as a value",
                )
            elif len(functions) > 1:
                arities = ", ".join(str(a) for a in sorted(functions))
                self.report(
                    last.module,
                    last.offset,
                    "conflict",
                    f"function {shown} is defined with different numbers of arguments ({arities})",
                )

    def _insert(self, path: Path) -> None:
        node = self.data
        for key in path[:-1]:
            child = node.children.get(key)
            if not isinstance(child, _Namespace):
                if child is not None:
                    return  # a rule inside a rule's value: the engine judges that
                child = node.children[key] = _Namespace()
            node = child
        if path[-1] not in node.children:
            node.children[path[-1]] = path

    # --- the data tree ------------------------------------------------------------------

    def walk_data(self, keys: Sequence[Key], reached: set[Path]) -> _Walk:
        """Walk ``data`` down ``keys``. Rules passed on the way go in ``reached``."""
        node: _Namespace | Path | Shape = self.data
        for i, key in enumerate(keys):
            if isinstance(node, _Namespace):
                if key is None:
                    reached.update(_rules_below(node))
                    return _Walk(ANY)
                if not isinstance(key, str) or key not in node.children:
                    known = ", ".join(sorted(node.children)) or "nothing"
                    return _Walk(
                        None, f"has no {_shown('', [key])[1:]} (it has: {known})", i, "data"
                    )
                node = node.children[key]
                continue
            if isinstance(node, tuple):
                reached.add(node)
                node = self.rule_shape(node)
            below = node.key(key)
            if isinstance(below, str):
                return _Walk(None, below, i, node.origin or "rule")
            node = below
        if isinstance(node, _Namespace):
            reached.update(_rules_below(node))
            return _Walk(ANY)
        if isinstance(node, tuple):
            reached.add(node)
            return _Walk(self.rule_shape(node))
        return _Walk(node)

    def rule_shape(self, path: Path) -> Shape:
        """The shape of a rule's value, as far as its definitions tell."""
        known = self._shapes.get(path)
        if known is not None:
            return known
        if path in self._shaping:
            return ANY
        self._shaping.add(path)
        try:
            shape = self._infer_rule(path)
        finally:
            self._shaping.discard(path)
        self._shapes[path] = shape
        return shape

    def _infer_rule(self, path: Path) -> Shape:
        rules = self.rules.get(path, [])
        shape: Shape | None = None
        for rule in rules:
            if rule.kind == "func":
                return ANY
            check = _RuleCheck(self, rule, quiet=True)
            head = rule.node.child("rulehead")
            assert head is not None
            parts = head[1].children
            if rule.kind == "set":
                one = Shape("set", value=check.expr_shape(parts[0]), origin="rule")
            elif rule.kind == "obj":
                one = Shape("map", value=check.expr_shape(parts[1]), origin="rule")
            else:
                one = check.expr_shape(parts[-1])
                for other in _elses(rule.node):
                    one = union(one, check.expr_shape(other[0]))
            shape = one if shape is None else union(shape, one)
        return shape or ANY

    # --- reachability -------------------------------------------------------------------

    def _reachability(self) -> None:
        seen: set[Path] = set()
        todo: list[Path] = []
        for entry in self.entrypoints:
            if entry in self.rules:
                todo.append(entry)
            else:
                where = self.modules[0] if self.modules else None
                if where is not None:
                    self.report(
                        where,
                        None,
                        "no-entrypoint",
                        f"no rule defines the entrypoint data.{'.'.join(entry)}",
                    )
        while todo:
            path = todo.pop()
            if path in seen:
                continue
            seen.add(path)
            todo.extend(self.edges.get(path, ()))
        entries = " and ".join("data." + ".".join(e) for e in self.entrypoints)
        for path, rules in self.rules.items():
            first = rules[0]
            if (
                path in seen
                or first.module.is_test
                or not any(e in self.rules for e in self.entrypoints)
            ):
                continue
            self.report(
                first.module,
                first.offset,
                "unreachable",
                f"rule {_rule_name(first)} is never read on the way to {entries}:"
                " a misspelt rule name, or a rule left over?",
            )


class _RuleCheck:
    """The checks of one rule definition (head, body and else branches)."""

    def __init__(self, checker: _Checker, rule: _Rule, *, quiet: bool = False) -> None:
        self.c = checker
        self.rule = rule
        self.quiet = quiet
        self.module = rule.module
        self.aliases = checker.imports.get(rule.module.name, {})
        self.names = checker.packages.get(rule.package, set())
        self.bound = _bound_names(rule.node)
        self.locals: dict[str, Shape] = {}
        self.reached: set[Path] = set()
        self.first_positive: tuple[int | None, str] | None = None
        self._infer_locals()

    def run(self) -> None:
        head = self.rule.node.child("rulehead")
        body = self.rule.node.child("rulebodyseq")
        if head is not None and len(head) > 1:
            for part in head[1].children:
                if part.kind != "ruleargs":
                    self.visit(part, positive=True)
        if body is not None:
            for part in body.children:
                if part.kind == "query":
                    self.query(part)
                elif part.kind == "else":
                    for piece in part.children:
                        if piece.kind == "query":
                            self.query(piece)
                        else:
                            self.visit(piece, positive=True)
        edges = self.c.edges.setdefault(self.rule.path, set())
        edges.update(self.reached)
        if self.first_positive is not None:
            offset, what = self.first_positive
            line = _line(self.module.source, offset)
            self.c.report(
                self.module,
                self.rule.offset,
                "never-defined",
                f"rule {_rule_name(self.rule)} can never be defined: {what}"
                + (f" (line {line})" if line is not None else ""),
            )

    def problem(self, node: Node, code: str, message: str, positive: bool, short: str) -> None:
        if self.quiet:
            return
        self.c.report(self.module, node.offset, code, message)
        if positive and self.first_positive is None:
            self.first_positive = (node.offset, f"it reads {short}")

    # --- walking ------------------------------------------------------------------------

    def query(self, query: Node, positive: bool = True) -> None:
        for literal in query.children:
            if literal.kind != "literal":
                continue
            for part in literal.children:
                if part.kind == "withseq":
                    for modifier in part.children:
                        # The target (input.x, data.y) is replaced, not read: not judged.
                        for value in modifier.children[1:]:
                            self.visit(value, positive=positive)
                else:
                    if (
                        positive
                        and self.first_positive is None
                        and not self.quiet
                        and _always_false(part)
                    ):
                        self.first_positive = (part.offset, "its condition is always false")
                    self.visit(part, positive=positive)

    def visit(self, node: Node, positive: bool) -> None:
        kind = node.kind
        if kind == "not-expr":
            for child in node.children:
                if child.kind == "query":
                    self.query(child, positive=False)
            return
        if kind in ("arraycompr", "setcompr", "objectcompr"):
            for child in node.children:
                if child.kind == "query":
                    self.query(child, positive=False)
                else:
                    self.visit(child, positive=False)
            return
        if kind == "exprevery":
            for child in node.children:
                if child.kind == "query":
                    self.query(child, positive=positive)
                elif child.kind != "varseq":
                    self.visit(child, positive=positive)
            return
        if kind == "somedecl":
            if len(node) > 1:
                self.visit(node[1], positive=positive)
            return
        if kind == "exprcall":
            self.call(node, positive)
            return
        if kind == "ref":
            self.ref(node, positive)
            return
        if kind == "term" and node.children and node[0].kind == "var":
            self.name(node[0], (), positive)
            return
        for child in node.children:
            self.visit(child, positive)

    def call(self, node: Node, positive: bool) -> None:
        ref = node[0]
        head = ref.child("refhead")
        segments = ref.child("refargseq")
        keys = _keys(segments) if segments is not None else []
        name_node = head[0] if head is not None and head.children else None
        if name_node is None or name_node.kind != "var" or not name_node.text or None in keys:
            self.visit(ref, positive)
        else:
            name = name_node.text
            dotted = ".".join([name, *(str(k) for k in keys)])
            if name in self.bound:
                pass
            elif name in self.aliases or name == "data" or name in self.names:
                self.name(name_node, keys, positive, call=True)
            elif not self.c.is_builtin(dotted) and dotted not in _ENGINE_STATEMENTS:
                self.problem(
                    name_node,
                    "unknown-builtin",
                    f"{dotted} is not a built-in function of the engine nor a function of"
                    f" package {'.'.join(self.rule.package)}",
                    positive,
                    f"{dotted}, which is no function",
                )
        for arg in node.children[1:]:
            self.visit(arg, positive)

    def ref(self, node: Node, positive: bool) -> None:
        head = node.child("refhead")
        segments = node.child("refargseq")
        keys = _keys(segments) if segments is not None else []
        if head is not None and head.children and head[0].kind == "var":
            self.name(head[0], keys, positive)
        elif head is not None:
            self.visit(head, positive)
        if segments is not None:
            for segment in segments.children:
                if segment.kind == "refargbrack":
                    for child in segment.children:
                        self.visit(child, positive)

    def name(self, var: Node, keys: Sequence[Key], positive: bool, *, call: bool = False) -> None:
        """Resolve a name (and the keys after it) and judge the path."""
        name = var.text or ""
        if not name or "$" in name or name == "_":
            return
        shown = _shown(name, keys)
        if name in self.bound:
            shape = self.locals.get(name, ANY)
            self.judge(var, shape, keys, shown, positive, name)
            return
        if name == "input":
            self.judge(var, input_shape(), keys, shown, positive, "input")
            return
        if name == "data":
            self.data_path(var, tuple(keys), shown, positive)
            return
        if name in self.aliases:
            root, target = self.aliases[name]
            if root == "input":
                self.judge(var, input_shape(), (*target, *keys), shown, positive, "input")
            else:
                self.data_path(var, (*target, *keys), shown, positive)
            return
        if name in self.names:
            self.data_path(var, (*self.rule.package, name, *keys), shown, positive)
            return
        what = "function" if call else "rule, import or variable"
        self.problem(
            var,
            "undefined-ref",
            f"{name} is not defined: no {what} of that name in package"
            f" {'.'.join(self.rule.package)}"
            + ("" if positive else " (so a `not` of it always holds)"),
            positive,
            f"{name}, which is not defined",
        )

    def data_path(self, var: Node, keys: Sequence[Key], shown: str, positive: bool) -> None:
        walk = self.c.walk_data(keys, self.reached)
        if walk.problem is None:
            return
        where = _shown("data", keys[: walk.consumed])
        code, known_as = _ORIGINS.get(walk.origin, _ORIGINS["rule"])
        self.problem(
            var,
            code,
            f"{shown} is not {known_as}: {where} {walk.problem}",
            positive,
            f"{shown}, which does not exist",
        )

    def judge(
        self, var: Node, shape: Shape, keys: Sequence[Key], shown: str, positive: bool, root: str
    ) -> None:
        for i, key in enumerate(keys):
            below = shape.key(key)
            if isinstance(below, str):
                code, known_as = _ORIGINS.get(shape.origin, _ORIGINS["rule"])
                done = _shown(root, keys[:i])
                self.problem(
                    var,
                    code,
                    f"{shown} is not {known_as}: {done} {below}",
                    positive,
                    f"{shown}, which does not exist",
                )
                return
            shape = below

    # --- shapes of locals and values ------------------------------------------------------

    def _infer_locals(self) -> None:
        seen: dict[str, Shape] = {}
        for node in self.rule.node.walk():
            if node.kind == "exprinfix" and len(node) == 3 and _is_assign(node[1]):
                target = _bare_var(node[0])
                if target is not None:
                    _merge(seen, target, self.expr_shape(node[2], seen))
            elif node.kind == "somedecl" and len(node) == 2 and node[1].kind != "undefined":
                names = [_bare_var(e) for e in node[0].children]
                self._elements(seen, names, self.expr_shape(node[1], seen))
            elif node.kind == "exprevery" and len(node) >= 3:
                varseq = node.child("varseq")
                domain = next((c for c in node.children if c.kind == "term"), None)
                if varseq is not None and domain is not None:
                    names = [v.text for v in varseq.children]
                    self._elements(seen, names, self.expr_shape(domain, seen))
        self.locals = seen

    def _elements(self, seen: dict[str, Shape], names: list[str | None], domain: Shape) -> None:
        element = domain.value if domain.kind in ("map", "array", "set") and domain.value else ANY
        if len(names) == 2:
            if names[0] is not None:
                _merge(seen, names[0], SCALAR)
            if names[1] is not None:
                _merge(seen, names[1], element)
        elif len(names) == 1 and names[0] is not None:
            _merge(seen, names[0], element)

    def expr_shape(self, node: Node, local: Mapping[str, Shape] | None = None) -> Shape:
        """The shape of an expression's value, or ANY when it cannot be told."""
        scope = self.locals if local is None else local
        while node.kind in ("expr", "exprparens") and len(node) == 1:
            node = node[0]
        if node.kind != "term" or not node.children:
            return ANY
        term = node[0]
        if term.kind == "scalar":
            return SCALAR
        if term.kind == "object":
            fields: dict[str, Shape] = {}
            for item in term.children:
                key = _constant(item[0]) if item.children else None
                if not isinstance(key, str):
                    return ANY
                fields[key] = self.expr_shape(item[1], scope)
            return Shape("record", fields, origin="rule")
        if term.kind == "var":
            return self._resolve_shape(term.text or "", (), scope)
        if term.kind == "ref":
            head = term.child("refhead")
            segments = term.child("refargseq")
            if head is None or not head.children or head[0].kind != "var":
                return ANY
            keys = _keys(segments) if segments is not None else []
            return self._resolve_shape(head[0].text or "", keys, scope)
        return ANY

    def _resolve_shape(self, name: str, keys: Sequence[Key], scope: Mapping[str, Shape]) -> Shape:
        if name in self.bound:
            shape = scope.get(name, ANY)
        elif name == "input":
            shape = input_shape()
        elif name == "data" or name in self.aliases or name in self.names:
            if name == "data":
                path: Sequence[Key] = keys
            elif name in self.aliases:
                root, target = self.aliases[name]
                if root == "input":
                    return _walk(input_shape(), (*target, *keys))
                path = (*target, *keys)
            else:
                path = (*self.rule.package, name, *keys)
            walk = self.c.walk_data(path, set())
            return walk.shape if walk.shape is not None else ANY
        else:
            return ANY
        return _walk(shape, keys)


# --- helpers --------------------------------------------------------------------------------

_EMPTY = Node("empty", None, None, None, ())
#: What a missing key is called, by the document it is missing from.
_ORIGINS = {
    "input": ("unknown-input", "in the policy input (gateway/policy/input.schema.json)"),
    "data": ("unknown-data", "known data"),
    "rule": ("unknown-key", "in the value its rule builds"),
}


def _shown(head: str, keys: Sequence[Key]) -> str:
    """A path as written: ``input.dataset.fields[_].type``."""
    text = head
    for key in keys:
        text += f".{key}" if isinstance(key, str) else f"[{key}]" if isinstance(key, int) else "[_]"
    return text


def _rule_name(rule: _Rule) -> str:
    return ".".join(rule.path[len(rule.package) :])


def _walk(shape: Shape, keys: Sequence[Key]) -> Shape:
    for key in keys:
        below = shape.key(key)
        if isinstance(below, str):
            return ANY
        shape = below
    return shape


def _merge(seen: dict[str, Shape], name: str, shape: Shape) -> None:
    seen[name] = union(seen[name], shape) if name in seen else shape


def _rules_below(namespace: _Namespace) -> Iterator[Path]:
    for child in namespace.children.values():
        if isinstance(child, _Namespace):
            yield from _rules_below(child)
        elif isinstance(child, tuple):
            yield child


def _plain_path(ref: Node) -> Path | None:
    """``a.b.c`` (a ref of a var and dotted keys, or constant string keys) as a path."""
    if ref.kind != "ref":
        return None
    head = ref.child("refhead")
    if head is None or not head.children or head[0].kind != "var" or not head[0].text:
        return None
    keys = _keys(ref.child("refargseq") or _EMPTY)
    path = [head[0].text]
    for key in keys:
        if not isinstance(key, str):
            break  # a[x] := … defines the rule a (a partial object), keyed by x
        path.append(key)
    return tuple(path)


def _keys(segments: Node) -> list[Key]:
    keys: list[Key] = []
    for segment in segments.children:
        if segment.kind == "refargdot" and segment.children:
            keys.append(segment[0].text)
        elif segment.kind == "refargbrack" and segment.children:
            keys.append(_constant(segment[0]))
        else:
            keys.append(None)
    return keys


def _constant(node: Node) -> Key:
    """A string or integer constant written in an expression, else None."""
    while node.kind in ("expr", "term", "scalar", "string") and len(node) == 1:
        node = node[0]
    if node.kind == "STRING" and node.text is not None:
        try:
            value = json.loads(node.text)
        except ValueError:
            return None
        return value if isinstance(value, str) else None
    if node.kind == "rawstring" and node.text is not None:
        return node.text[1:-1]
    if node.kind == "INT" and node.text is not None:
        try:
            return int(node.text)
        except ValueError:
            return None
    return None


def _bare_var(node: Node) -> str | None:
    while node.kind in ("expr", "term") and len(node) == 1:
        node = node[0]
    return node.text if node.kind == "var" else None


def _is_assign(operator: Node) -> bool:
    return any(n.kind == "assign" for n in operator.walk())


def _bound_names(rule: Node) -> set[str]:
    """Every name a rule binds anywhere: arguments, ``:=`` and ``=`` targets, ``some``,
    ``every``, and variables used as ref indexes (``xs[i]`` iterates)."""
    bound: set[str] = set()
    for node in rule.walk():
        if node.kind == "ruleargs":
            bound.update(_pattern_names(node))
        elif node.kind == "exprinfix" and len(node) == 3 and node[1].kind == "infixoperator":
            operator = node[1]
            if any(n.kind == "assign" for n in operator.walk()):
                bound.update(_pattern_names(node[0]))
            elif any(n.kind == "unify" for n in operator.walk()):
                bound.update(_pattern_names(node[0]))
                bound.update(_pattern_names(node[2]))
        elif node.kind == "somedecl" and node.children:
            bound.update(_pattern_names(node[0]))
        elif node.kind == "varseq":
            bound.update(v.text for v in node.children if v.kind == "var" and v.text)
        elif node.kind == "refargbrack" and node.children:
            name = _bare_var(node[0])
            if name is not None:
                bound.add(name)
    return bound


def _pattern_names(node: Node) -> set[str]:
    """Variables of a pattern: bare, or inside array, object and set literals (not refs,
    calls or comprehensions, which are read, not bound)."""
    names: set[str] = set()
    if node.kind == "var" and node.text:
        names.add(node.text)
    elif node.kind in (
        "ruleargs",
        "exprseq",
        "expr",
        "term",
        "array",
        "object",
        "set",
        "objectitem",
    ):
        for child in node.children:
            names.update(_pattern_names(child))
    return names


def _elses(rule: Node) -> list[Node]:
    body = rule.child("rulebodyseq")
    return [part for part in body.children if part.kind == "else"] if body is not None else []


_COMPARE = {
    "equals": lambda a, b: a == b,
    "notequals": lambda a, b: a != b,
}


def _always_false(expr: Node) -> bool:
    """A literal that can never hold: ``false``, or two constants compared unequal."""
    while expr.kind == "expr" and len(expr) == 1 and expr[0].kind == "expr":
        expr = expr[0]
    if expr.kind != "expr" or len(expr) != 1:
        return False
    inner = expr[0]
    if inner.kind == "term":
        return _scalar(inner) == ("false",)
    if inner.kind == "exprinfix" and len(inner) == 3:
        left, right = _scalar(inner[0]), _scalar(inner[2])
        operator = next((n.kind for n in inner[1].walk() if n.kind in _COMPARE), None)
        if left is not None and right is not None and operator is not None:
            return not _COMPARE[operator](left, right)
    return False


def _scalar(node: Node) -> tuple[str, ...] | None:
    """A scalar constant as a comparable token, else None."""
    while node.kind in ("expr", "term") and len(node) == 1:
        node = node[0]
    if node.kind != "scalar" or len(node) != 1:
        return None
    value = node[0]
    while value.kind == "string" and len(value) == 1:
        value = value[0]
    if value.kind in ("true", "false", "null"):
        return (value.kind,)
    if value.text is None:
        return None
    return (value.kind, value.text)


def _line(source: str, offset: int | None) -> int | None:
    if offset is None:
        return None
    return source.encode()[:offset].count(b"\n") + 1
