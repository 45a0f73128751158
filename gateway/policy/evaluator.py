"""One regopy interpreter evaluating the compiled bundle, and the real cause of a failure.

regopy's ``Output`` parses an answer as JSON in its constructor whenever rego-cpp calls
the answer ok, and rego-cpp calls some errors ok: a function the engine does not know
(``sprintff``) comes back as an ok ``(error (errormsg "Function not found: sprintff") …)``,
so ``Output`` fails with a JSONDecodeError that hides the cause. The evaluator therefore
reads the answer through regopy's C binding (``regopy.rego_shared``, given the ``_impl``
handles of regopy's Interpreter and Bundle: regopy 1.5 has no public way to it): first
whether its root is an error node, then the JSON. Only the error *messages* and codes are
read; the error's AST (which echoes the input) never is. tests/policy/test_policy_engine.py
holds a regopy upgrade to this.

An evaluator is not thread-safe (neither are regopy interpreters): each worker thread of
`gateway.policy.workers` holds its own.
"""

from __future__ import annotations

import json
import re
from typing import Any

from regopy import Interpreter, LogLevel, NodeKind, RegoError
from regopy import rego_shared as rego

from gateway.errors import ConfigurationError, PolicyEvaluationError, PolicyUnavailable
from gateway.policy.bundle import PolicyBundle

__all__ = ["UNDEFINED", "RegoEvaluator", "error_cause"]

#: The cause when the decision rule is undefined for an input (or there is none).
UNDEFINED = "the policy gave no decision (undefined)"

_MAX_CAUSE = 300
_UNNAMED = "an unnamed error"
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
_SPACE = re.compile(r"\s+")


class RegoEvaluator:
    """A compiled copy of the bundle and an interpreter to evaluate it with."""

    def __init__(self, bundle: PolicyBundle) -> None:
        try:
            # The building interpreter is kept: the compiled bundle may refer to it.
            self._builder, self._compiled = bundle.compile()
        except ConfigurationError as exc:
            raise PolicyUnavailable("the policy bundle could not be loaded") from exc
        self._entrypoint = bundle.entrypoint
        interpreter = Interpreter()
        # Some built-ins (json.unmarshal) log their parse errors, quoting the value they
        # were given; causes reach the caller as PolicyEvaluationError instead.
        interpreter.log_level = LogLevel.NONE
        # A built-in's error (a division by zero, to_number of a word) stops the decision.
        # By default it only makes its expression undefined, which would quietly switch
        # off a deny rule and let every other rule's allow stand.
        interpreter.strict_built_in_errors = True
        self._interpreter = interpreter

    def evaluate(self, document: str) -> object:
        """The decision document for one input (a JSON text), or PolicyEvaluationError."""
        try:
            # The input as a JSON term: regopy's set_input(dict) does not escape quotes
            # in strings when it writes the output back, which would corrupt the answer.
            self._interpreter.set_input_term(document)
            output = rego.rego_bundle_query_entrypoint(
                self._interpreter._impl, self._compiled._impl, self._entrypoint
            )
        except RegoError as exc:
            raise PolicyEvaluationError(f"the policy engine failed: {_clean(str(exc))}") from None
        try:
            # Everything is read out now: a node must not outlive its output.
            cause = error_cause(rego.rego_output_node(output))
            text = rego.rego_output_string(output) if cause is None else ""
        finally:
            rego.rego_free_output(output)
        if cause is not None:
            raise PolicyEvaluationError(f"the policy raised an error: {cause}")
        if text == "undefined":
            raise PolicyEvaluationError(UNDEFINED)
        try:
            expressions = json.loads(text)["expressions"]
        except (ValueError, KeyError, TypeError):
            raise PolicyEvaluationError("the policy engine's answer is not readable") from None
        if not isinstance(expressions, list) or len(expressions) != 1:
            raise PolicyEvaluationError("the policy engine gave no single decision")
        return expressions[0]


def error_cause(node: Any) -> str | None:
    """rego-cpp's messages (and codes) when ``node`` is an error, else None.

    ``"Function not found: sprintff (wellformed_error)"``; several different errors
    joined by ``"; "``. Quoted text is left out, so a message cannot carry a value.
    """
    kind = _kind(node)
    if kind == NodeKind.ErrorSeq:
        errors = [rego.rego_node_get(node, i) for i in range(rego.rego_node_size(node))]
    elif kind == NodeKind.Error:
        errors = [node]
    else:
        return None
    # rego-cpp may report one error once per rule that reaches it: say it once.
    causes = dict.fromkeys(_one_error(error) for error in errors)
    return "; ".join(causes)[:_MAX_CAUSE] or _UNNAMED


def _one_error(error: Any) -> str:
    message, code = "", ""
    for i in range(rego.rego_node_size(error)):
        child = rego.rego_node_get(error, i)
        kind = _kind(child)
        if kind == NodeKind.ErrorMessage:
            message = _clean(rego.rego_node_value(child))
        elif kind == NodeKind.ErrorCode:
            code = _clean(rego.rego_node_value(child))
    if message and code:
        return f"{message} ({code})"
    return message or code or _UNNAMED


def _kind(node: Any) -> NodeKind | None:
    try:
        kind: NodeKind = rego.rego_node_type(node)
        return kind
    except ValueError:  # a kind this regopy does not name: not an error kind, then
        return None


def _clean(text: str) -> str:
    # One line, no quoted text (where a value would be), bounded.
    return _SPACE.sub(" ", _QUOTED.sub("…", text)).strip()[:_MAX_CAUSE]
