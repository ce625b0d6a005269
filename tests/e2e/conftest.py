"""Pipelines of worker processes for end-to-end tests: one topic namespace each, stopped at the end."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.local.pipeline import Pipeline, TopicReader

PipelineFactory = Callable[..., tuple[Pipeline, TopicReader]]
"""`make(config, config_source="topic", **env)`: a pipeline of `config` (applied to the configuration topic,
or read from the file) with extra MAILROOM_* settings, and its topic reader."""


@pytest.fixture(scope="module")
def pipeline_factory(kafka_servers: str) -> Iterator[PipelineFactory]:
    made: list[tuple[Pipeline, TopicReader]] = []
    workdir = Path(tempfile.mkdtemp(prefix="mailroom-e2e-"))

    def make(
        config: dict[str, Any], config_source: str = "topic", **env: str
    ) -> tuple[Pipeline, TopicReader]:
        namespace = f"t{secrets.token_hex(4)}"
        pipeline = Pipeline(
            config,
            kafka_servers,
            workdir / namespace,
            namespace=namespace,
            env=env,
            config_source=config_source,
        )
        if config_source == "file":
            pipeline.env_override("MAILROOM_CONFIG_SOURCE", "file")
        reader = TopicReader(pipeline.kafka)
        made.append((pipeline, reader))
        return pipeline, reader

    yield make
    for pipeline, reader in made:
        pipeline.stop()
        reader.close()
    if not os.environ.get("MAILROOM_E2E_KEEP"):
        shutil.rmtree(workdir, ignore_errors=True)


def dump_logs(pipeline: Pipeline) -> str:
    """The tail of each worker's log, for a failing assertion's message."""
    return "\n".join(
        f"--- {w} ---\n{pipeline.log(w)[-3000:]}" for w in ("ingest", "matcher", "converter", "responder")
    )
