"""`schemas.__all__` is exactly the public contract: every public name, sorted, and each one resolves."""

from __future__ import annotations

import types

import schemas

# Submodules become attributes of the package once imported; only these are part of the contract.
EXPORTED_MODULES = {"topics"}


def _sort_key(name: str) -> tuple[int, str]:
    """ruff's RUF022 order: SCREAMING_CASE, then CamelCase, then the rest."""
    kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return kind, name


def _public_names() -> set[str]:
    names = set()
    for name, value in vars(schemas).items():
        if name.startswith("_") or name == "annotations":
            continue
        if isinstance(value, types.ModuleType) and name not in EXPORTED_MODULES:
            continue
        names.add(name)
    return names


def test_all_is_exactly_the_public_names() -> None:
    assert set(schemas.__all__) == _public_names()


def test_all_is_sorted_without_duplicates() -> None:
    assert schemas.__all__ == sorted(set(schemas.__all__), key=_sort_key)


def test_every_exported_name_resolves() -> None:
    namespace: dict[str, object] = {}
    exec("from schemas import *", namespace)

    for name in schemas.__all__:
        assert getattr(schemas, name) is namespace[name]


def test_the_package_reexports_the_contract_of_its_modules() -> None:
    for name in ("config", "errors", "events", "ids", "records"):
        module = getattr(schemas, name)
        assert set(module.__all__) <= set(schemas.__all__), name
