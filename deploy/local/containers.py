"""Kafka and Dovecot in containers (testcontainers), for machines with a Docker engine, and the choice
between them and the local launchers (deploy.local.kafka, deploy.local.dovecot) for the tests.

`MAILROOM_TEST_SERVERS=containers` picks the containers; `local` (the default) the launchers, which need
no engine: a Kafka broker from the Maven Central jars and the Debian Dovecot on 127.0.0.1. Either kind
is used the same way: `with kafka_launcher()() as kafka: kafka.bootstrap_servers`, and
`with dovecot_launcher()() as dovecot: dovecot.add_user(...)`, IMAP on dovecot.host:dovecot.imap_port.
"""

from __future__ import annotations

import logging
import os
import shlex
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self

from deploy.local.dovecot import _CONFIG, _NO_IMAPS, _NO_TLS, Dovecot, DovecotError, imap_greets
from deploy.local.kafka import KafkaBroker, KafkaStartError

if TYPE_CHECKING:
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.core.container import DockerContainer

__all__ = [
    "DOVECOT_IMAGE",
    "KAFKA_IMAGE",
    "SERVERS_VARIABLE",
    "ContainersUnavailableError",
    "DovecotContainer",
    "KafkaContainerBroker",
    "KafkaServer",
    "MailServer",
    "chosen_servers",
    "dovecot_launcher",
    "kafka_launcher",
    "require_engine",
]

logger = logging.getLogger(__name__)

SERVERS_VARIABLE = "MAILROOM_TEST_SERVERS"
KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"
"""testcontainers' KafkaContainer starts Confluent's image (Apache Kafka 3.9), here in KRaft mode."""
DOVECOT_IMAGE = "debian:bookworm-slim"
"""Dovecot is installed from Debian's packages when the container starts, as on the machines without
an engine: the same version and configuration as the local launcher's."""

_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_ROOT = "/srv/mailroom"
_IMAP_PORT = 143
_LMTP_PORT = 24
_DOVECOT_START = f"""\
set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends dovecot-imapd dovecot-lmtpd > /dev/null
mkdir -p {_ROOT}/mail {_ROOT}/users
chown nobody:nogroup {_ROOT}/mail
chmod 755 {_ROOT} {_ROOT}/users
exec dovecot -F -c {_ROOT}/dovecot.conf
"""


class ContainersUnavailableError(RuntimeError):
    """MAILROOM_TEST_SERVERS asks for containers where they cannot run, or names no known choice."""


class KafkaServer(Protocol):
    """A broker for the tests, started by `with` and stopped (with its data) when the block ends."""

    @property
    def bootstrap_servers(self) -> str: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class MailServer(Protocol):
    """An IMAP and LMTP server for the tests, with mailboxes added by `add_user`."""

    host: str
    imap_port: int
    imaps_port: int
    lmtp_port: int

    def add_user(self, address: str, password: str) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def chosen_servers(environ: Mapping[str, str] = os.environ) -> Literal["local", "containers"]:
    """What MAILROOM_TEST_SERVERS asks for: `local` (also when unset or empty) or `containers`."""
    value = environ.get(SERVERS_VARIABLE, "").strip().lower() or "local"
    if value == "local":
        return "local"
    if value == "containers":
        return "containers"
    raise ContainersUnavailableError(
        f"{SERVERS_VARIABLE}={environ[SERVERS_VARIABLE]!r} is neither 'local' (the default) nor 'containers'"
    )


def require_engine() -> None:
    """Raises ContainersUnavailableError unless a Docker engine answers where testcontainers looks for one
    (DOCKER_HOST, ~/.testcontainers.properties, the current docker context, else the local socket)."""
    import docker
    from docker.errors import DockerException
    from testcontainers.core.docker_client import get_docker_host

    address = get_docker_host() or docker.constants.DEFAULT_UNIX_SOCKET
    socket_path = address.partition("unix://")[2] if "unix://" in address else None

    def unavailable(reason: str) -> ContainersUnavailableError:
        return ContainersUnavailableError(
            f"{SERVERS_VARIABLE}=containers needs a Docker engine, and none answers at {address} "
            f"({reason}); unset {SERVERS_VARIABLE} (or set it to 'local') to start Kafka and Dovecot "
            "with the local launchers"
        )

    # The docker client leaves its socket open when a unix socket is missing: look before asking it.
    if socket_path is not None and not os.path.exists(socket_path):
        raise unavailable(f"no socket at {socket_path}")
    # A fixed API version: the client asks the engine nothing before the ping.
    client = docker.DockerClient(
        base_url=address, version=docker.constants.DEFAULT_DOCKER_API_VERSION, timeout=5
    )
    try:
        client.ping()
    except (DockerException, OSError) as exc:
        raise unavailable(str(exc)) from exc
    finally:
        client.close()


def kafka_launcher(environ: Mapping[str, str] = os.environ) -> Callable[[], KafkaServer]:
    """Makes an unstarted broker of the kind MAILROOM_TEST_SERVERS names (checking the engine first)."""
    if chosen_servers(environ) == "containers":
        require_engine()
        return KafkaContainerBroker
    return KafkaBroker


def dovecot_launcher(environ: Mapping[str, str] = os.environ) -> Callable[[], MailServer]:
    """Makes an unstarted Dovecot of the kind MAILROOM_TEST_SERVERS names (checking the engine first)."""
    if chosen_servers(environ) == "containers":
        require_engine()
        return DovecotContainer
    return Dovecot


class _Started:
    """A server in one container: started on entering, stopped (and removed) on leaving."""

    _container: Any

    def start(self, timeout: float = 120.0) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            container.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class KafkaContainerBroker(_Started):
    """A single-node KRaft broker in a container: `with KafkaContainerBroker() as k: k.bootstrap_servers`."""

    def __init__(self, image: str = KAFKA_IMAGE) -> None:
        self.image = image
        self._container: KafkaContainer | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self._container is None:
            raise KafkaStartError("the Kafka container is not started")
        address: str = self._container.get_bootstrap_server()
        return address

    def start(self, timeout: float = 120.0) -> None:
        from testcontainers.community.kafka import KafkaContainer

        container = KafkaContainer(self.image).with_kraft()
        # As the local broker: the pipeline's one size limit, and a single replica of the internal topics.
        for name, value in {
            "KAFKA_MESSAGE_MAX_BYTES": str(_MAX_MESSAGE_BYTES),
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
            "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
            "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "4",
        }.items():
            container.with_env(name, value)
        self._container = container
        try:
            container.start(timeout=int(timeout))
        except BaseException:
            self.stop()
            raise
        logger.info("Kafka container %s ready on %s", self.image, self.bootstrap_servers)


def _dovecot_config() -> str:
    """The local launcher's configuration (deploy.local.dovecot), listening on every address of the
    container instead of 127.0.0.1, with fixed ports that Docker maps."""
    config = _CONFIG.format(
        instance="mailroom",
        root=_ROOT,
        ssl=_NO_TLS,
        imap_port=_IMAP_PORT,
        imaps=_NO_IMAPS,
        lmtp_port=_LMTP_PORT,
    )
    return config.replace("127.0.0.1", "*")


class DovecotContainer(_Started):
    """Dovecot in a container, used as deploy.local.dovecot.Dovecot is: `host`, `imap_port`, `lmtp_port`,
    `add_user`; no TLS (`imaps_port` 0)."""

    imaps_port = 0

    def __init__(self, image: str = DOVECOT_IMAGE) -> None:
        self.image = image
        self.host = "127.0.0.1"
        self.imap_port = 0
        self.lmtp_port = 0
        self._container: DockerContainer | None = None

    def start(self, timeout: float = 300.0) -> None:
        """Start the container (installing Dovecot takes a minute or so) and wait for the IMAP greeting."""
        from testcontainers.core.container import DockerContainer

        container = (
            DockerContainer(self.image)
            .with_exposed_ports(_IMAP_PORT, _LMTP_PORT)
            .with_copy_into_container(_dovecot_config().encode(), f"{_ROOT}/dovecot.conf", 0o644)
            .with_command(["sh", "-c", _DOVECOT_START])
        )
        self._container = container
        try:
            container.start()
            self.host = container.get_container_host_ip()
            self.imap_port = container.get_exposed_port(_IMAP_PORT)
            self.lmtp_port = container.get_exposed_port(_LMTP_PORT)
            self._wait_ready(container, timeout)
        except BaseException:
            self.stop()
            raise
        logger.info("Dovecot container ready: imap %s:%d lmtp %d", self.host, self.imap_port, self.lmtp_port)

    def _wait_ready(self, container: DockerContainer, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            container.reload()
            if container.status in ("exited", "dead"):
                raise DovecotError(f"the Dovecot container stopped at start:\n{self.log_tail()}")
            # Docker's port proxy accepts at once and closes until Dovecot listens: wait for "* OK".
            if imap_greets(self.host, self.imap_port):
                return
            if time.monotonic() > deadline:
                raise DovecotError(f"Dovecot in its container gave no IMAP greeting within {timeout} s")
            time.sleep(0.5)

    def add_user(self, address: str, password: str) -> None:
        """Add a mailbox (one passwd-file per user, as the local launcher does); works while Dovecot runs."""
        if not address or address.startswith(".") or any(c in address for c in ":/\n"):
            raise ValueError(f"unusable mailbox address {address!r}")
        if any(c in password for c in ":\n"):
            raise ValueError(f"the password for {address} must not contain ':' or a newline")
        if self._container is None:
            raise DovecotError("the Dovecot container is not started")
        self._container.copy_into_container(
            f"{address}:{password}\n".encode(), f"{_ROOT}/users/{address}", 0o644
        )

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the container's output and of Dovecot's log."""
        if self._container is None:
            return ""
        stdout, stderr = self._container.get_logs()
        text = (stdout + stderr).decode(errors="replace").splitlines()[-lines:]
        try:
            result = self._container.exec(["sh", "-c", f"tail -n {lines} {shlex.quote(_ROOT)}/dovecot.log"])
            text += result.output.decode(errors="replace").splitlines()
        except Exception as exc:  # a container that is gone: its output above is what there is
            text.append(f"(dovecot.log unreadable: {exc})")
        return "\n".join(text)
