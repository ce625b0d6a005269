"""Fixtures shared by integration test files."""

from __future__ import annotations

from tests.integration.test_config_cli import cli  # noqa: F401  # `mailroom` commands on a fresh namespace
