"""The ``file`` connector: a JSONL file of records, indexed in memory.

The file (one JSON object per line; blank lines are skipped) is read on the first fetch,
every record is checked against the dataset's fields, and one hash index per identity
key maps normalised key values to records, so a lookup is a few dictionary hits.

A missing or unreadable file is :class:`ConnectorUnavailable` and a malformed one (a
line that is not JSON, or repeats a member name in an object: `gateway.ijson`)
:class:`ConnectorResponseError`, both at fetch time, so the gateway starts and reports
the failure per dataset. After a failure the next fetch tries again once the file has
changed (size, modification time); after a success the index is kept.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway import ijson
from gateway.connectors.base import check_record, normalise_key_value, subject_lookups
from gateway.errors import ConnectorError, ConnectorResponseError, ConnectorUnavailable
from gateway.vocabulary import DatasetSpec, FileConnectorConfig

__all__ = ["FileConnector"]

_Index = dict[tuple[str, ...], dict[tuple[str, ...], tuple[int, ...]]]


@dataclass(frozen=True, slots=True)
class _Loaded:
    records: tuple[dict[str, Any], ...]
    index: _Index


class FileConnector:
    """Serves a dataset from a JSONL file under ``var/``."""

    in_process = True

    def __init__(self, spec: DatasetSpec, var_dir: Path) -> None:
        if not isinstance(spec.connector, FileConnectorConfig):
            raise TypeError("FileConnector needs a file connector config")
        self.spec = spec
        self.path = var_dir / spec.connector.path
        self._loaded: _Loaded | None = None
        self._failed: tuple[tuple[int, int] | None, ConnectorError] | None = None
        self._lock = asyncio.Lock()

    async def fetch(self, subject: Mapping[str, str]) -> list[dict[str, Any]]:
        loaded = self._loaded or await self._load()
        # One subject: a record must agree with every identity key the request gave
        # (and the dataset knows), so two keys naming two people match no one.
        hits: set[int] | None = None
        for key, values in subject_lookups(self.spec, subject):
            found = set(loaded.index[key].get(values, ()))
            hits = found if hits is None else hits & found
        # The loaded records themselves, not copies: they were checked (and copied out of
        # the parsed JSON) at load, and nothing downstream changes them (minimise builds
        # new records).
        return [loaded.records[i] for i in sorted(hits or ())]

    async def aclose(self) -> None:
        self._loaded = None

    async def _load(self) -> _Loaded:
        async with self._lock:
            if self._loaded is not None:
                return self._loaded
            stamp = self._stamp()
            if self._failed is not None and self._failed[0] == stamp:
                raise self._failed[1]
            try:
                loaded = await asyncio.to_thread(self._read)
            except ConnectorError as exc:
                self._failed = (stamp, exc)
                raise
            self._loaded, self._failed = loaded, None
            return loaded

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _read(self) -> _Loaded:
        spec = self.spec
        try:
            with self.path.open("rb") as handle:
                data = handle.read()
        except FileNotFoundError as exc:
            raise ConnectorUnavailable(f"{spec.id}: data file not found") from exc
        except OSError as exc:
            raise ConnectorUnavailable(
                f"{spec.id}: data file cannot be read ({type(exc).__name__})"
            ) from exc
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConnectorResponseError(f"{spec.id}: data file is not UTF-8") from exc

        records: list[dict[str, Any]] = []
        pending: dict[tuple[str, ...], dict[tuple[str, ...], list[int]]] = {
            key: {} for key in spec.identity_keys
        }
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                raw = ijson.loads(line)
            except ijson.RepeatedMemberName as exc:
                raise ConnectorResponseError(
                    f"{spec.id}: data file line {number} repeats a member name in an object"
                ) from exc
            except (ValueError, RecursionError) as exc:
                raise ConnectorResponseError(
                    f"{spec.id}: data file line {number} is not valid JSON"
                ) from exc
            record = check_record(spec, raw, f"data file line {number}: ")
            position = len(records)
            records.append(record)
            for key in spec.identity_keys:
                parts = [record.get(part) for part in key]
                if not all(isinstance(p, str) and p for p in parts):
                    continue
                values = tuple(
                    normalise_key_value(part, spec.fields[part].type, str(value))
                    for part, value in zip(key, parts, strict=True)
                )
                pending[key].setdefault(values, []).append(position)
        index: _Index = {
            key: {values: tuple(positions) for values, positions in entries.items()}
            for key, entries in pending.items()
        }
        return _Loaded(records=tuple(records), index=index)
