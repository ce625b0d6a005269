"""Runs a single-node Apache Kafka (KRaft) broker on 127.0.0.1 from Maven Central jars (tests, demo).

The jars are fetched once by `mvn dependency:copy-dependencies` from deploy/kafka/pom.xml into a cache folder.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from deploy.local.ports import free_port

logger = logging.getLogger(__name__)

KAFKA_DIR = Path(__file__).resolve().parent.parent / "kafka"
DEFAULT_JARS = (
    Path(os.environ.get("MAILROOM_CACHE", Path(__file__).resolve().parents[2] / ".cache")) / "kafka-jars"
)
JVM_OPTS = ["-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"]


class KafkaStartError(RuntimeError):
    """The broker could not be fetched, formatted or started."""


def fetch_jars(dest: Path = DEFAULT_JARS) -> Path:
    """Copies the broker's runtime jars into `dest` with Maven, unless they are there already."""
    marker = dest / ".complete"
    if marker.exists():
        return dest
    if shutil.which("mvn") is None:
        raise KafkaStartError(
            "Maven (mvn) is needed to fetch the Kafka jars; install the Debian package maven"
        )
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(KAFKA_DIR / "pom.xml"),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={dest}",
    ]
    logger.info("fetching Kafka jars into %s", dest)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise KafkaStartError(f"mvn failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    marker.touch()
    return dest


def new_cluster_id() -> str:
    """16 random bytes, URL-safe base64 without padding; never starting with '-' (read as an option)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _properties(root: Path, port: int, controller_port: int) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(root / "data"),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
        "background.threads": "2",
        "log.cleaner.threads": "1",
        # The default allocates 128 MiB of heap at start.
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        "message.max.bytes": str(16 * 1024 * 1024),
    }
    return "".join(f"{k}={v}\n" for k, v in settings.items())


class KafkaBroker:
    """A private broker: `with KafkaBroker() as kafka: kafka.bootstrap_servers`."""

    def __init__(self, jars: Path = DEFAULT_JARS, root: Path | None = None) -> None:
        self.jars = jars
        self.root = root or Path(tempfile.mkdtemp(prefix="mailroom-kafka-"))
        self.port = free_port()
        self.controller_port = free_port()
        self.cluster_id = new_cluster_id()
        """Kept for the broker's life, so that `stop(remove=False)` and `start()` restart the same broker."""
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "broker.log"

    def _java(self, main: str, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise KafkaStartError("java is needed to run the Kafka broker (OpenJDK 17 or newer)")
        classpath = os.pathsep.join(str(p) for p in sorted(self.jars.glob("*.jar")))
        log4j = f"-Dlog4j2.configurationFile={KAFKA_DIR / 'log4j2.properties'}"
        return [java, *JVM_OPTS, log4j, "-cp", classpath, main, *args]

    def start(self, timeout: float = 90.0) -> None:
        fetch_jars(self.jars)
        config = self.root / "server.properties"
        config.write_text(_properties(self.root, self.port, self.controller_port))
        fmt = self._java(
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            self.cluster_id,
            "--config",
            str(config),
            "--ignore-formatted",
        )
        done = subprocess.run(fmt, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise KafkaStartError(f"StorageTool format failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                self._java("kafka.Kafka", str(config)),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        logger.info("Kafka broker ready on %s", self.bootstrap_servers)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise KafkaStartError(f"broker exited with {self._proc.returncode}:\n{self._log_tail()}")
            if b"Kafka Server started" in self.log_path.read_bytes() and self._answers():
                return
            time.sleep(0.3)
        raise KafkaStartError(f"broker not ready after {timeout:.0f} s:\n{self._log_tail()}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self, remove: bool = True) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # controlled shutdown
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
