"""Entry of the ingest worker: restores checkpoints, then polls the mailboxes until SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading

from ingest.app import Ingest
from ingest.kafka import Publisher, read_checkpoints
from runtime.settings import WorkerSettings
from schemas.config import MailroomConfig

__all__ = ["run"]

logger = logging.getLogger(__name__)


def run(settings: WorkerSettings, config: MailroomConfig, once: bool = False) -> int:
    checkpoints = read_checkpoints(settings.kafka)
    logger.info("ingest: %d mailboxes, %d folder checkpoints", len(config.mailboxes), len(checkpoints))
    ingest = Ingest(config, Publisher(settings.kafka), checkpoints)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        if once:
            ingest.poll_once()
        else:
            ingest.run(settings.poll_seconds, stop)
    finally:
        ingest.close()
    return 0
