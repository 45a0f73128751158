"""Case references: the formats a deployment accepts, and the rule every format obeys.

A case reference names a case, never a person. Each deployment lists the formats its
partners write case numbers in (``case_ref_formats`` in ``policies/register.yaml``: the
CT Infobox's ``CTI-2026-0042``, the Public Prosecution's ``09/123456-26``); a request's
``case_ref`` must match one of them whole. Whatever the formats say, a case reference is
at most :data:`MAX_CHARS` printable ASCII characters without spaces, and never holds a
run of more than :data:`MAX_DIGIT_RUN` digits, so a BSN (nine digits) or a longer
number cannot be passed off as one.

The formats are checked by pydantic-core's regex engine (Rust ``regex``): it never
backtracks, so a careless pattern in the register cannot make a request's validation
take exponential time, and a pattern it cannot compile (look-around, back-references)
is refused when the register loads. The same patterns go into the OpenAPI document.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, Field, TypeAdapter, ValidationError

from gateway.errors import InvalidRequest

MAX_CHARS = 64
MAX_DIGIT_RUN = 6
"""The Public Prosecution's case numbers have six-digit runs; a BSN has nine."""

# Printable ASCII, no space: what a case number is written in, and nothing that could
# hide a value from someone reading the audit log (other scripts' digits, controls).
_CHARSET = r"^[!-~]+$"
_DIGIT_RUN = f"[0-9]{{{MAX_DIGIT_RUN + 1}}}"
_LONG_DIGIT_RUN = re.compile(_DIGIT_RUN)


@dataclass(frozen=True)
class CaseRefFormat:
    """One accepted format: a regular expression the whole case reference must match."""

    name: str
    pattern: str
    example: str


DEFAULT_FORMATS = (
    CaseRefFormat(
        name="registry-year-number",
        pattern=r"[A-Z][A-Z0-9]{1,11}-[0-9]{4}-[0-9]{1,6}",
        example="CTI-2026-0042",
    ),
)
"""A registry prefix, a year and a number: the formats of a register that names none."""


def combined_pattern(patterns: Sequence[str]) -> str:
    """One anchored pattern matching exactly the strings one of ``patterns`` matches whole.

    ``$`` is the end of the text in both pydantic-core's engine and JSON Schema's (ECMA
    262), so no trailing newline slips through.
    """
    return "^(?:" + "|".join(f"(?:{p})" for p in patterns) + ")$"


def check_rule(value: str) -> str:
    """The rule every case reference obeys, whatever the formats (an AfterValidator)."""
    if not value.isascii() or not all("!" <= char <= "~" for char in value):
        raise ValueError("a case reference is printable ASCII without spaces")
    if _LONG_DIGIT_RUN.search(value):
        raise ValueError(f"a case reference holds no run of more than {MAX_DIGIT_RUN} digits")
    return value


def check_filter(value: str | None) -> str | None:
    """A case reference a search filters on (the DPO's console and exports): held to
    `check_rule`, so that an identifier typed into the box (a BSN is a run of nine
    digits) is refused with 422 before it reaches a link, a query string or a log."""
    if value is None or value == "":
        return None
    try:
        return check_rule(value)
    except ValueError as exc:
        raise InvalidRequest(f"case_ref: {exc}") from None


def case_ref_field(formats: Sequence[CaseRefFormat]) -> Any:
    """The constraints of ``case_ref`` for these formats, as pydantic ``Field`` metadata.

    With :func:`check_rule` after it, the JSON Schema says all the rule: the formats
    (``pattern``), the length, the charset and ``not`` a longer digit run, so a
    schema-driven client generates only accepted values.
    """
    return Field(
        max_length=MAX_CHARS,
        pattern=combined_pattern([f.pattern for f in formats]),
        examples=[f.example for f in formats],
        description=(
            "The requester's case number, in one of this deployment's formats ("
            + ", ".join(f"{f.name}: `{f.pattern}`" for f in formats)
            + f"); at most {MAX_CHARS} printable ASCII characters, no spaces, and no"
            f" run of more than {MAX_DIGIT_RUN} digits: a case reference names a case,"
            " never a person."
        ),
        json_schema_extra={"allOf": [{"pattern": _CHARSET}, {"not": {"pattern": _DIGIT_RUN}}]},
    )


def case_ref_type(formats: Sequence[CaseRefFormat]) -> Any:
    """The validated type of ``case_ref`` for these formats."""
    return Annotated[str, case_ref_field(formats), AfterValidator(check_rule)]


def check_format(case_format: CaseRefFormat) -> None:
    """Raise ValueError unless the format compiles and its example is a case reference
    it accepts (so a format that can only ever refuse, or whose example breaks the rule
    above, does not load)."""
    try:
        adapter: TypeAdapter[str] = TypeAdapter(case_ref_type([case_format]))
    except Exception as exc:  # pydantic-core's SchemaError: the engine cannot compile it
        # Its last line is the regex engine's own reason ("look-around … is not supported").
        reason = str(exc).strip().splitlines()[-1:] or [type(exc).__name__]
        raise ValueError(f"pattern does not compile: {reason[0].strip()}") from None
    try:
        adapter.validate_python(case_format.example)
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]) for e in exc.errors(include_url=False))
        raise ValueError(f"example is not an accepted case reference: {problems}") from None
