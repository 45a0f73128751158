"""Prometheus metrics. Labels are route templates, outcomes and error codes — never
identifiers, subjects, case references or values."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """One registry per app, so tests and several apps in a process do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "doelpoort_requests",
            "HTTP requests by route template and status code.",
            ["route", "status"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "doelpoort_decisions",
            "Dataset decisions by outcome (allow, deny, error).",
            ["outcome"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "doelpoort_request_seconds",
            "Time to answer a request.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.policy_seconds = Histogram(
            "doelpoort_policy_seconds",
            "Time for one policy decision.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.audit_seconds = Histogram(
            "doelpoort_audit_seconds",
            "Time until a request's audit entries were durably committed.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

        self.policy_reloads = Counter(
            "doelpoort_policy_reloads",
            "Attempts to swap the policy set, by trigger and outcome (swapped, refused,"
            " unchanged).",
            ["trigger", "outcome"],
            registry=self.registry,
        )
        self.policy_reload_refused = Gauge(
            "doelpoort_policy_reload_refused",
            "1 while the last attempt to swap the policy set was refused (the previous set"
            " still serves), else 0.",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
