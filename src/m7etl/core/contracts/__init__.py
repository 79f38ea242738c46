"""Data contracts: one YAML file per dataset says how its files look and what gold holds.

A contract names the dataset and its file-name pattern, the CSV dialect, the typed
columns with their hard rules and soft warnings, row checks between columns, the primary
key and what gold holds (the latest record per key, or group-by aggregates).

Adding a dataset is adding a file to ``datasets/`` (or to a folder given with
``M7_CONTRACTS_DIR``); no code changes. Loading checks every key and fails with a
:class:`ContractError` naming the file and the key at fault.

- :mod:`.model`: the frozen dataclasses (:class:`Contract`, :class:`Column`,
  :class:`Rules`, ...) and the vocabularies (``TYPES``, ``DEFAULT_FORMATS``, ...).
- :mod:`.loading`: :func:`parse_contract`, :func:`parse_contract_bytes` and
  :func:`load_contract_file`, the YAML checks.
- :mod:`.registry`: :class:`Registry` and :func:`load_registry` (cached per folder).
"""

from __future__ import annotations

from m7etl.core.contracts.loading import (
    COLUMN_NAME,
    DATASET_NAME,
    PART,
    load_contract_file,
    parse_contract,
    parse_contract_bytes,
)
from m7etl.core.contracts.model import (
    AGGREGATIONS,
    COMPARISONS,
    DEFAULT_FORMATS,
    TYPES,
    Column,
    Contract,
    CsvDialect,
    GoldSpec,
    Metric,
    RowCheck,
    Rules,
)
from m7etl.core.contracts.registry import BUILTIN_DIR, Registry, load_registry

__all__ = [
    "AGGREGATIONS",
    "BUILTIN_DIR",
    "COLUMN_NAME",
    "COMPARISONS",
    "DATASET_NAME",
    "DEFAULT_FORMATS",
    "PART",
    "TYPES",
    "Column",
    "Contract",
    "CsvDialect",
    "GoldSpec",
    "Metric",
    "Registry",
    "RowCheck",
    "Rules",
    "load_contract_file",
    "load_registry",
    "parse_contract",
    "parse_contract_bytes",
]
