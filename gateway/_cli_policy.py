"""``doelpoort policy``: the policy authors' tools (check, test, eval, replay, diff, bundle).

Each command is a thin shell over a module of `gateway.policy`; this file only parses
arguments and prints. `gateway._cli` adds the group to the ``doelpoort`` command.
"""

from __future__ import annotations

import typer

policy_app = typer.Typer(
    help="Policy authors' tools: check, test, explain, replay, diff and bundle policy sets.",
    no_args_is_help=True,
)
