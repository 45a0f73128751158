"""Why a policy decided as it did: per field, the register entry and the rule behind its op.

``doelpoort policy eval --explain`` (and ``--seq N``, for a logged decision) calls
:func:`explain` with the decision the engine gave. The explanation is derived from what
the engine computed for that input, never from what the shipped policy is assumed to
do, so it stays honest for a changed or a foreign policy set:

- The whole package document of the entrypoint (``data.doelpoort.disclosure``) is
  evaluated for the input: every rule's value (``grant``, ``role_granted``,
  ``field_ops``, ``deny`` …), or its absence when it is undefined.
- To tell *which* definition of ``decision``, ``field_ops`` and ``deny`` produced a value,
  that evaluation runs on an instrumented copy of the package: each definition of those
  rules is renamed after its file and line (``xpl_deny_0_181``) and the rule itself
  redefined as the union (a partial set) or the value (a complete rule) of the renamed
  ones, which Rego's semantics make equivalent. The copy's decision must equal the
  engine's; if it does not, or the copy does not compile (a rule head this reading does
  not recognise), the explanation says the rule lines could not be traced rather than
  guess.
- The register entry is looked up in the register *as the policy reads it*
  (``bundle.data["register"]``): a requester's own op
  (``requester_field_ops.<partner>.<field>``) before the grant's ``field_ops.<field>``;
  its line is read from ``register.yaml`` in the bundle's sources. Where the op the
  policy returned differs from the register's, the explanation says so.

A policy input holds names only (SPEC §6), so nothing here can print a record value.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from gateway.errors import PolicyError
from gateway.operators import parse_op
from gateway.policy.bundle import PolicyBundle
from gateway.policy.engine import Decision
from gateway.policy.evaluator import RegoEvaluator
from gateway.policy.register import REGISTER_FILE

__all__ = ["Explanation", "FieldExplanation", "RegisterRef", "RuleRef", "explain"]

Outcome = Literal["released", "dropped", "refused"]

_COMMENT_OR_STRING = re.compile(r'#[^\n]*|"(?:\\.|[^"\\\n])*"|`[^`]*`')
_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)
# A rule head at the start of a line: a plain name, then an assignment, a body, ``if`` or
# ``contains``. Functions (``f(x) :=``) and ref heads (``a.b :=``, ``a[k] :=``) are not
# matched: they are neither traced nor listed.
_HEAD = re.compile(
    r"^(default[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)(?=[ \t]*(?::=|=(?!=)|\bif\b|\bcontains\b|\{))",
    re.MULTILINE,
)
_CONTAINS = re.compile(r"[ \t]*contains\b")
_ALIAS = "xpl_{name}_{module}_{line}"
_VAR = "xpl_value"


@dataclass(frozen=True)
class RuleRef:
    """One definition of a rule: ``field_ops`` in ``doelpoort/disclosure.rego:84``."""

    rule: str
    path: str
    line: int
    default: bool = False

    def __str__(self) -> str:
        prefix = "default " if self.default else ""
        return f"{prefix}{self.rule} in {self.path}:{self.line}"


@dataclass(frozen=True)
class RegisterRef:
    """A register entry: its dotted path in ``register.yaml``, its line, and its op."""

    path: str
    line: int | None
    op: str | None = None

    def __str__(self) -> str:
        where = f"{REGISTER_FILE} {self.path}"
        return f"{where} (line {self.line})" if self.line is not None else where


@dataclass(frozen=True)
class FieldExplanation:
    """What happened to one field of the input's dataset, and why."""

    field: str
    outcome: Outcome
    #: The op the decision applies (None when the field is not released at all).
    op: str | None
    register: RegisterRef | None
    rules: tuple[RuleRef, ...]
    note: str


@dataclass(frozen=True)
class DenyReason:
    """One reason of a denial and the ``deny`` rule definition(s) that gave it."""

    reason: str
    rules: tuple[RuleRef, ...]


@dataclass(frozen=True)
class Condition:
    """The value of one rule of the package for this input (``true``, ``undefined`` …)."""

    rule: str
    value: str
    where: RuleRef


@dataclass(frozen=True)
class Explanation:
    decision: Decision
    decided_by: tuple[RuleRef, ...]
    denials: tuple[DenyReason, ...]
    fields: tuple[FieldExplanation, ...]
    conditions: tuple[Condition, ...]
    #: Whether the rule lines come from the engine (see the module docstring); when
    #: False, ``notes`` says why not.
    traced: bool
    notes: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "decided_by": [str(r) for r in self.decided_by],
            "denials": [
                {"reason": d.reason, "rules": [str(r) for r in d.rules]} for d in self.denials
            ],
            "fields": [
                {
                    "field": f.field,
                    "outcome": f.outcome,
                    "op": f.op,
                    "register": None
                    if f.register is None
                    else {"path": f.register.path, "line": f.register.line, "op": f.register.op},
                    "rules": [str(r) for r in f.rules],
                    "note": f.note,
                }
                for f in self.fields
            ],
            "conditions": {c.rule: c.value for c in self.conditions},
            "traced": self.traced,
            "notes": list(self.notes),
        }

    def lines(self) -> list[str]:
        """The explanation as text, for a terminal."""
        out = ["decided by: " + (", ".join(map(str, self.decided_by)) or "(not traced)")]
        for denial in self.denials:
            rules = ", ".join(map(str, denial.rules)) or "rule not traced"
            out.append(f"denied: {denial.reason}  [{rules}]")
        out.append("fields:")
        width = max((len(f.field) for f in self.fields), default=0)
        shown = [f.op if f.outcome == "released" and f.op else f.outcome for f in self.fields]
        ops = max(map(len, shown), default=0)
        for f, what in zip(self.fields, shown, strict=True):
            out.append(f"  {f.field:<{width}}  {what:<{ops}}  {f.note}")
        if self.conditions:
            out.append("rules of the package for this input:")
            for c in self.conditions:
                out.append(f"  {c.rule} = {c.value}  ({c.where.path}:{c.where.line})")
        out.extend(f"note: {note}" for note in self.notes)
        return out


def explain(
    bundle: PolicyBundle, policy_input: Mapping[str, Any], decision: Decision
) -> Explanation:
    """Explain ``decision``, which ``bundle``'s engine gave for ``policy_input``.

    Raises PolicyError when even the package document cannot be evaluated for the input
    (the decision itself came from the same policy, so that is rare).
    """
    package_path, rule = bundle.entrypoint.rsplit("/", 1)
    package = package_path.replace("/", ".")
    document = json.dumps(policy_input)
    notes: list[str] = []
    modules, sites = _instrument(bundle.modules, package, (rule, "field_ops", "deny"))
    traced = True
    try:
        instrumented = dataclasses.replace(bundle, entrypoint=package_path, modules=modules)
        doc = _as_object(RegoEvaluator(instrumented).evaluate(document))
    except PolicyError as exc:
        traced = False
        notes.append(f"rule lines could not be traced ({exc.detail})")
        plain = dataclasses.replace(bundle, entrypoint=package_path)
        doc = _as_object(RegoEvaluator(plain).evaluate(document))
    if traced and not _same_decision(doc.get(rule), decision):
        traced = False
        notes.append("rule lines could not be traced: the traced copy decided differently")
    if not traced:
        sites = {}

    def defined(name: str) -> tuple[RuleRef, ...]:
        found = tuple(ref for alias, ref in sites.get(name, []) if alias in doc)
        if found or not traced:
            return found
        return tuple(ref for alias, ref in sites.get(name, []) if ref.default)

    denials = tuple(
        DenyReason(
            reason,
            tuple(
                ref
                for alias, ref in sites.get("deny", [])
                if isinstance(doc.get(alias), list) and reason in doc[alias]
            ),
        )
        for reason in (decision.reasons if not decision.allow else ())
    )
    register_text = dict(bundle.sources).get(REGISTER_FILE)
    fields = _fields(
        policy_input,
        decision,
        doc,
        defined("field_ops"),
        _Register(bundle.data.get("register"), register_text),
    )
    return Explanation(
        decision=decision,
        decided_by=defined(rule),
        denials=denials,
        fields=fields,
        conditions=_conditions(bundle.modules, package, doc, skip={rule, "field_ops", "deny"}),
        traced=traced,
        notes=tuple(notes),
    )


# -- fields --------------------------------------------------------------------------


class _Register:
    """The register as the policy reads it, and the lines of its source."""

    def __init__(self, data: object, text: str | None) -> None:
        self._data = data if isinstance(data, Mapping) else {}
        self._root: yaml.Node | None = None
        if text is not None:
            try:
                self._root = yaml.compose(text, Loader=yaml.SafeLoader)
            except yaml.YAMLError:
                self._root = None

    def grant(self, purpose: str, dataset: str) -> Mapping[str, Any] | None:
        found = _get(self._data, "purposes", purpose, "datasets", dataset)
        return found if isinstance(found, Mapping) else None

    def ref(self, *path: str, op: str | None = None) -> RegisterRef:
        return RegisterRef(".".join(path), self._line(path), op)

    def _line(self, path: Sequence[str]) -> int | None:
        node = self._root
        line = None
        for key in path:
            if not isinstance(node, yaml.MappingNode):
                return None
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                    line, node = key_node.start_mark.line + 1, value_node
                    break
            else:
                return None
        return line


def _fields(
    policy_input: Mapping[str, Any],
    decision: Decision,
    doc: Mapping[str, Any],
    field_rules: tuple[RuleRef, ...],
    register: _Register,
) -> tuple[FieldExplanation, ...]:
    purpose = _text(policy_input.get("purpose"))
    requester = _text(_get(policy_input, "requester", "id"))
    dataset = _text(_get(policy_input, "dataset", "id"))
    declared = _get(policy_input, "dataset", "fields")
    names = list(declared) if isinstance(declared, Mapping) else []
    grant = register.grant(purpose, dataset)
    grant_path = ("purposes", purpose, "datasets", dataset)
    computed = doc.get("field_ops")
    computed_ops = computed if isinstance(computed, Mapping) else {}
    explained = []
    for name in names:
        entry = _register_entry(register, grant, grant_path, requester, name)
        if not decision.allow:
            would = computed_ops.get(name)
            note = "the dataset is refused: nothing of it is released"
            if isinstance(would, str):
                note += f" (field_ops would give {would})"
            explained.append(
                FieldExplanation(name, "refused", None, entry, field_rules if would else (), note)
            )
            continue
        op = decision.field_ops.get(name)
        if op is None:
            if entry is None:
                note = "not named by the register: dropped (default deny)"
                if grant is None:
                    note = (
                        f"the register has no entry {REGISTER_FILE} {'.'.join(grant_path)}:"
                        " dropped (default deny)"
                    )
            else:
                note = (
                    f"named by {entry} as {entry.op}, but the decision's field_ops leaves it"
                    " out: dropped (default deny)"
                )
            explained.append(FieldExplanation(name, "dropped", None, entry, field_rules, note))
            continue
        outcome: Outcome = "dropped" if parse_op(op)[0] == "drop" else "released"
        rules = " by " + ", ".join(map(str, field_rules)) if field_rules else ""
        if entry is not None and entry.op == op:
            note = f"from {entry}, set{rules}"
        elif entry is not None:
            note = f"set{rules}; the register says {entry.op} ({entry})"
        else:
            note = f"set{rules}; the register names no op for it"
        explained.append(FieldExplanation(name, outcome, op, entry, field_rules, note))
    return tuple(explained)


def _register_entry(
    register: _Register,
    grant: Mapping[str, Any] | None,
    grant_path: tuple[str, ...],
    requester: str,
    field: str,
) -> RegisterRef | None:
    if grant is None:
        return None
    own = _get(grant, "requester_field_ops", requester, field)
    if isinstance(own, str):
        return register.ref(*grant_path, "requester_field_ops", requester, field, op=own)
    op = _get(grant, "field_ops", field)
    if isinstance(op, str):
        return register.ref(*grant_path, "field_ops", field, op=op)
    return None


# -- rules ---------------------------------------------------------------------------


def _instrument(
    modules: tuple[tuple[str, str], ...], package: str, names: Sequence[str]
) -> tuple[tuple[tuple[str, str], ...], dict[str, list[tuple[str, RuleRef]]]]:
    """Rename each definition of ``names`` in ``package`` after its place, and redefine
    each name from its renamed definitions (see the module docstring)."""
    sites: dict[str, list[tuple[str, RuleRef]]] = {}
    partial: dict[str, bool] = {}
    changed: list[tuple[str, str]] = []
    for index, (path, source) in enumerate(modules):
        code = _blank(source)
        found = _PACKAGE.search(code)
        if found is None or found.group(1) != package:
            changed.append((path, source))
            continue
        edits: list[tuple[int, int, str]] = []
        for head in _HEAD.finditer(code):
            name = head.group(2)
            if name not in names:
                continue
            line = code.count("\n", 0, head.start()) + 1
            if head.group(1):
                sites.setdefault(name, []).append(("", RuleRef(name, path, line, default=True)))
                continue
            alias = _ALIAS.format(name=name, module=index, line=line)
            sites.setdefault(name, []).append((alias, RuleRef(name, path, line)))
            partial[name] = partial.get(name, False) or bool(_CONTAINS.match(code, head.end()))
            edits.append((head.start(2), head.end(2), alias))
        for start, end, alias in reversed(edits):
            source = source[:start] + alias + source[end:]
        changed.append((path, source))
    rules = []
    for name, defined in sites.items():
        for alias, _ref in defined:
            if not alias:
                continue
            if partial[name]:
                rules.append(f"{name} contains {_VAR} if {{\n\tsome {_VAR} in {alias}\n}}\n")
            else:
                rules.append(f"{name} := {_VAR} if {{\n\t{_VAR} := {alias}\n}}\n")
    if rules:
        header = f"package {package}\n\nimport rego.v1\n\n"
        changed.append(("xpl_traced.rego", header + "\n".join(rules)))
    return tuple(changed), sites


def _conditions(
    modules: tuple[tuple[str, str], ...],
    package: str,
    doc: Mapping[str, Any],
    skip: set[str],
) -> tuple[Condition, ...]:
    """Every other rule of the package that is a condition (true, false or undefined
    for the input): what a denial or a missing grant comes down to."""
    first: dict[str, RuleRef] = {}
    for path, source in modules:
        code = _blank(source)
        found = _PACKAGE.search(code)
        if found is None or found.group(1) != package:
            continue
        for head in _HEAD.finditer(code):
            name = head.group(2)
            if name not in skip and name not in first:
                first[name] = RuleRef(name, path, code.count("\n", 0, head.start()) + 1)
    conditions = []
    for name, ref in first.items():
        if name not in doc:
            conditions.append(Condition(name, "undefined", ref))
        elif isinstance(doc[name], bool):
            conditions.append(Condition(name, "true" if doc[name] else "false", ref))
    return tuple(conditions)


def _same_decision(traced: object, decision: Decision) -> bool:
    if not isinstance(traced, Mapping) or traced.get("allow") is not decision.allow:
        return False
    ops = traced.get("field_ops")
    return not decision.allow or ops == dict(decision.field_ops)


def _blank(source: str) -> str:
    """``source`` with comments and string literals blanked, every offset kept."""
    return _COMMENT_OR_STRING.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), source)


def _as_object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _get(value: object, *path: str) -> object:
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
