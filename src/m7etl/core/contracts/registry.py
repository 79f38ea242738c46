"""The contracts of a deployment: every ``*.yaml`` file of one folder (the built-in
``datasets/`` beside this module, or ``$M7_CONTRACTS_DIR``), loaded once per folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from m7etl.core.contracts.loading import load_contract_file
from m7etl.core.contracts.model import Contract
from m7etl.exceptions import ContractError

BUILTIN_DIR = Path(__file__).parent / "datasets"


class Registry:
    """All contracts of a deployment, and the lookup from a file name to its dataset."""

    def __init__(self, contracts: Iterable[Contract]):
        self.contracts: dict[str, Contract] = {}
        for c in contracts:
            if c.dataset in self.contracts:
                raise ContractError(
                    f"Contract {c.source}: dataset '{c.dataset}' is already defined in "
                    f"{self.contracts[c.dataset].source}.",
                    hint="Keep one contract file per dataset.",
                )
            self.contracts[c.dataset] = c

    def __getitem__(self, dataset: str) -> Contract:
        return self.contracts[dataset]

    def __iter__(self):
        return iter(self.contracts.values())

    def __len__(self) -> int:
        return len(self.contracts)

    def identify(self, file_name: str) -> tuple[Contract, str] | None:
        """The contract a file belongs to and the date in its name, or None."""
        for contract in self.contracts.values():
            day = contract.match(file_name)
            if day is not None:
                return contract, day
        return None


def load_registry(directory: str | Path | None = None) -> Registry:
    """Load every ``*.yaml`` contract in ``directory`` (default: built-in or $M7_CONTRACTS_DIR)."""
    given = directory or os.environ.get("M7_CONTRACTS_DIR")
    if not given and not BUILTIN_DIR.is_dir():
        return _load_packaged()
    return _load_registry_cached(Path(given or BUILTIN_DIR).resolve())


@lru_cache(maxsize=1)
def _load_packaged() -> Registry:
    """The built-in contracts read as package resources: the Glue job imports m7etl from
    ``m7etl_glue.zip`` on ``sys.path`` (``--extra-py-files``), where ``datasets/`` is no
    folder on disk, only entries of the zip."""
    import importlib.resources

    from m7etl.core.contracts.loading import parse_contract_bytes

    folder = importlib.resources.files("m7etl.core.contracts").joinpath("datasets")
    entries = sorted((e for e in folder.iterdir() if e.name.endswith(".yaml")), key=lambda e: e.name)
    if not entries:
        raise ContractError(f"The built-in contracts ({folder}) hold no *.yaml file.",
                            hint="Rebuild the package: the contract files were left out.")
    contracts = []
    for entry in entries:
        source = str(BUILTIN_DIR / entry.name)  # e.g. .../m7etl_glue.zip/m7etl/.../device.yaml
        contracts.append(parse_contract_bytes(entry.read_bytes(), source))
    return Registry(contracts)


@lru_cache(maxsize=8)
def _load_registry_cached(directory: Path) -> Registry:
    if not directory.is_dir():
        raise ContractError(f"Contracts folder {directory} does not exist.",
                            hint="Point --contracts or M7_CONTRACTS_DIR at a folder of *.yaml files.")
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ContractError(f"Contracts folder {directory} holds no *.yaml file.",
                            hint="Add one contract per dataset.")
    return Registry(load_contract_file(f) for f in files)
