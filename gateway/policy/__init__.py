"""Purpose binding: the register, the compiled Rego bundle, the engine and its input.

input.build_policy_input()  → policy input (names and categories, never values)
engine.PolicyEngine.decide() → Decision (allow, reasons, field_ops, retention, basis,
                               policy digest) or a PolicyError: fail closed
"""

from gateway.policy.bundle import ENTRYPOINT, PolicyBundle, compile_bundle, policy_digest
from gateway.policy.engine import Decision, EmbeddedEngine, PolicyEngine, decision_from_result
from gateway.policy.input import build_policy_input, dataset_input
from gateway.policy.register import DatasetGrant, Purpose, Register

__all__ = [
    "ENTRYPOINT",
    "DatasetGrant",
    "Decision",
    "EmbeddedEngine",
    "PolicyBundle",
    "PolicyEngine",
    "Purpose",
    "Register",
    "build_policy_input",
    "compile_bundle",
    "dataset_input",
    "decision_from_result",
    "policy_digest",
]
