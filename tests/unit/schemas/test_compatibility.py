"""A breaking change to the public contract fails here: today's schemas against every released version."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import schemas
from schemas.contract import RELEASED_DIR, breaking_changes, json_schemas


def test_released_versions_are_kept() -> None:
    assert sorted(p.name for p in RELEASED_DIR.iterdir()) == ["1"]


@pytest.mark.parametrize(
    "path", sorted(RELEASED_DIR.glob("*/*.schema.json")), ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_todays_public_schemas_keep_every_released_field_and_type(path: Any) -> None:
    today = json_schemas()
    assert path.name in today, f"{path.name} was released and is gone"
    assert breaking_changes(json.loads(path.read_text()), json.loads(today[path.name])) == []


BASE = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "count": {"type": "integer"},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "who": {"$ref": "#/$defs/Who"},
    },
    "required": ["id", "count", "who"],
    "$defs": {"Who": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}},
}


def _changed(**changes: Any) -> dict[str, Any]:
    made = json.loads(json.dumps(BASE))
    for path, value in changes.items():
        where = made
        *parents, last = path.split("__")
        for part in parents:
            where = where[part]
        if value is None:
            del where[last]
        else:
            where[last] = value
    return made


def test_an_added_optional_field_or_a_widened_type_is_compatible() -> None:
    assert breaking_changes(BASE, _changed(properties__extra={"type": "string"})) == []
    widened = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert breaking_changes(BASE, _changed(properties__count=widened)) == []


def test_removed_renamed_newly_required_and_narrowed_fields_break() -> None:
    assert breaking_changes(BASE, _changed(properties__note=None)) == ["note: removed"]
    renamed = _changed(properties__identifier={"type": "string"}, properties__id=None)
    assert breaking_changes(BASE, renamed) == ["id: removed"]
    assert breaking_changes(BASE, _changed(required=["id", "count", "who", "note"])) == [
        "note: newly required"
    ]
    assert breaking_changes(BASE, _changed(properties__note={"type": "string"})) == [
        "note: type narrowed from ['null', 'string'] to ['string']"
    ]
    nested = _changed(**{"$defs__Who__properties__name": None})
    assert breaking_changes(BASE, nested) == ["who.name: removed"]


_CHECK = (
    "import json\n"
    "from schemas.contract import RELEASED_DIR, breaking_changes, json_schemas\n"
    "today = json_schemas()\n"
    "for path in sorted(RELEASED_DIR.glob('*/*.schema.json')):\n"
    "    for change in breaking_changes(json.loads(path.read_text()), json.loads(today[path.name])):\n"
    "        print(path.name, change)\n"
)


def _check_copy(root: Path, edit: tuple[str, str] | None = None) -> list[str]:
    """The check above run on a copy of `schemas/` under `root` (with `edit`: old text, new text of
    events.py): the breaking changes it prints."""
    copy = root / "schemas"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(Path(schemas.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    if edit is not None:
        events = copy / "events.py"
        source = events.read_text()
        assert source.count(edit[0]) == 1
        events.write_text(source.replace(*edit))
    done = subprocess.run(
        [sys.executable, "-c", _CHECK],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_a_copy_of_the_contract_with_a_field_removed_from_a_public_event_fails_the_check(
    tmp_path: Path,
) -> None:
    removed = ('    priority: str = "normal"\n', "")
    assert _check_copy(tmp_path, removed) == ["CaseCreated.schema.json priority: removed"]
    assert _check_copy(tmp_path) == []  # the unmodified contract passes the same check
