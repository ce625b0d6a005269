"""A private Dovecot (IMAP + LMTP) on 127.0.0.1 under a temporary root, for tests and the demo."""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from deploy.local.ports import free_port

__all__ = ["Dovecot", "DovecotError", "imap_greets"]

logger = logging.getLogger(__name__)

_INSTALL_HINT = (
    "Dovecot is not installed: install the Debian packages dovecot-imapd and dovecot-lmtpd "
    "(scripts/install-system-deps.sh does it when run as root)"
)

_CONFIG = """\
instance_name = {instance}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:{root}/mail/%u/Maildir
# A server for tests, the demo and the benchmarks: its mail need not outlive a power cut, so it does not
# wait for the disk after every APPEND and delivery.
mail_fsync = never
# IDLE learns of new mail through inotify, one instance per imap process; every process runs as nobody,
# and Linux allows a user 128 instances by default (fs.inotify.max_user_instances). Beyond that Dovecot
# looks for new mail every mailbox_idle_check_interval instead (30 s by default): once a second here, so
# that a benchmark with hundreds of IDLE connections measures mailroom, not this fallback.
mailbox_idle_check_interval = 1 secs
mail_uid = nobody
mail_gid = nogroup
first_valid_uid = 1
default_login_user = dovenull
default_internal_user = dovecot

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users/%u
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={root}/mail/%u
}}

namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Drafts {{
    special_use = \\Drafts
    auto = create
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = create
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = create
  }}
}}

service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
{imaps}
}}
# A failed login would slow every later login from 127.0.0.1 by seconds: tests log in with bad
# passwords on purpose.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
"""


_OAUTH2_PASSDB = """\
# XOAUTH2 and OAUTHBEARER logins: Dovecot asks the provider's introspection endpoint about each token.
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {args}
}}
"""

_OAUTH2_ARGS = """\
introspection_mode = post
introspection_url = {url}
username_attribute = username
active_attribute = active
active_value = true
"""


_NO_TLS = "ssl = no"
_NO_IMAPS = """\
  inet_listener imaps {
    port = 0
  }"""
# STARTTLS on the plain port (plain logins still allowed there: disable_plaintext_auth = no) and IMAPS.
_TLS = """\
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}"""
_IMAPS = """\
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
  }}"""


def imap_greets(host: str, port: int) -> bool:
    """Whether an IMAP server on host:port answers with its "* OK" greeting now (a port that accepts and
    closes, as a proxy does before the server listens, does not)."""
    try:
        with socket.create_connection((host, port), timeout=2.0) as sock:
            return sock.recv(256).startswith(b"* OK")
    except OSError:
        return False


class DovecotError(RuntimeError):
    """Dovecot is missing, or the private instance did not start."""


def _dovecot_binary() -> str:
    found = shutil.which("dovecot") or ("/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None)
    if found is None:
        raise DovecotError(_INSTALL_HINT)
    return found


class Dovecot:
    """One Dovecot instance: `with Dovecot() as d: d.add_user("a@x.test", "pw")`, then IMAP on d.imap_port."""

    host = "127.0.0.1"

    def __init__(
        self,
        root: Path | None = None,
        *,
        keep: bool = False,
        oauth2_introspection_url: str | None = None,
        tls: bool = False,
    ) -> None:
        """`oauth2_introspection_url`: also take XOAUTH2 and OAUTHBEARER logins, checking each token there
        (see deploy.local.oauth); password logins keep working.

        `tls`: a self-signed certificate for 127.0.0.1 (`tls_cert`, `tls_key`): the IMAP port then offers
        STARTTLS (plain logins still work there) and IMAPS listens on `imaps_port` (0 without TLS)."""
        self._binary = _dovecot_binary()
        if os.geteuid() != 0:
            raise DovecotError("the private Dovecot must run as root (its mail processes run as nobody)")
        # Not pytest's tmp_path: its parent is private to root and Dovecot's auth (user dovecot) fails there.
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="mailroom-dovecot-"))
        self.keep = keep
        self.imap_port = free_port()
        self.lmtp_port = free_port()
        while self.lmtp_port == self.imap_port:
            self.lmtp_port = free_port()
        self.imaps_port = 0
        while tls and self.imaps_port in (0, self.imap_port, self.lmtp_port):
            self.imaps_port = free_port()
        self.tls_cert: Path | None = None
        self.tls_key: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        mail = self.root / "mail"
        mail.mkdir(exist_ok=True)
        shutil.chown(mail, "nobody", "nogroup")
        self._users = self.root / "users"
        self._users.mkdir(exist_ok=True)
        self._users.chmod(0o755)
        ssl, imaps = _NO_TLS, _NO_IMAPS
        if tls:
            from deploy.local.tls import self_signed  # needs cryptography, a development package

            # The master reads both files as root when it parses the configuration.
            self.tls_cert, self.tls_key = self_signed(self.root / "tls", self.host)
            self.tls_key.chmod(0o600)
            ssl = _TLS.format(cert=self.tls_cert, key=self.tls_key)
            imaps = _IMAPS.format(port=self.imaps_port)
        self.config_path = self.root / "dovecot.conf"
        self.config_path.write_text(
            _CONFIG.format(
                instance=f"mailroom-{os.getpid()}-{secrets.token_hex(4)}",
                root=self.root,
                ssl=ssl,
                imap_port=self.imap_port,
                imaps=imaps,
                lmtp_port=self.lmtp_port,
            )
        )
        if oauth2_introspection_url is not None:
            self._enable_oauth2(oauth2_introspection_url)

    def _enable_oauth2(self, introspection_url: str) -> None:
        """Adds the oauth2 passdb (tried first, for the token mechanisms only) to the written config."""
        args = self.root / "dovecot-oauth2.conf.ext"
        args.write_text(_OAUTH2_ARGS.format(url=introspection_url))
        args.chmod(0o644)  # read by the auth process (user dovecot); it names no secret
        config = self.config_path.read_text()
        config, mechanisms = re.subn(
            r"^auth_mechanisms = (.*)$", r"auth_mechanisms = \1 xoauth2 oauthbearer", config, flags=re.M
        )
        passwd_file = config.find("passdb {\n  driver = passwd-file")
        if mechanisms != 1 or passwd_file < 0:
            raise DovecotError("the Dovecot configuration has no auth_mechanisms line or passwd-file passdb")
        config = config[:passwd_file] + _OAUTH2_PASSDB.format(args=args) + config[passwd_file:]
        self.config_path.write_text(config)

    def add_user(self, address: str, password: str) -> None:
        """Add a mailbox; works before and while Dovecot runs.

        One passwd-file per user (path users/%u): Dovecot rereads a changed passwd-file at most once a
        second, so a user appended to a shared file just after a lookup stays unknown for up to a second.
        """
        # The address is a file name and both are fields of a colon-separated line.
        if not address or address.startswith(".") or any(c in address for c in ":/\n"):
            raise ValueError(f"unusable mailbox address {address!r}")
        if any(c in password for c in ":\n"):
            raise ValueError(f"the password for {address} must not contain ':' or a newline")
        path = self._users / address
        path.write_text(f"{address}:{password}\n")
        # Read by the auth process, which runs as user dovecot; these are throwaway test passwords.
        path.chmod(0o644)
        logger.debug("dovecot user added: %s", address)

    def start(self, timeout: float = 20.0) -> None:
        """Start `dovecot -F` and wait for the IMAP greeting; on failure nothing is left running."""
        if self._process is not None:
            raise DovecotError("Dovecot is already started")
        stderr = (self.root / "dovecot.stderr").open("wb")
        with stderr:
            self._process = subprocess.Popen(
                [self._binary, "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self._terminate()
            raise
        logger.info(
            "dovecot started: imap %s:%d imaps %d lmtp %s:%d root %s",
            self.host,
            self.imap_port,
            self.imaps_port,
            self.host,
            self.lmtp_port,
            self.root,
        )

    def stop(self) -> None:
        """Stop the instance (SIGTERM, then SIGKILL) and remove the root folder unless keep=True."""
        self._terminate()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of Dovecot's log and of its stderr (config errors land there)."""
        text = []
        for name in ("dovecot.stderr", "dovecot.log"):
            path = self.root / name
            if path.exists():
                text.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(text)

    def __enter__(self) -> Dovecot:
        try:
            self.start()
        except BaseException:
            self.stop()  # __exit__ is not called when __enter__ fails: clean the root here
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise DovecotError(
                    f"dovecot exited with code {self._process.returncode} at start:\n{self.log_tail()}"
                )
            if imap_greets(self.host, self.imap_port):
                return
            if time.monotonic() > deadline:
                raise DovecotError(f"dovecot gave no IMAP greeting within {timeout} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        # The whole group: the master's children (auth, imap, lmtp) must not outlive a killed master.
        self._signal_group(process, signal.SIGTERM)
        if not _exited(process.pid, timeout=10.0):
            logger.warning("dovecot did not stop within 10 s of SIGTERM; killing it")
        # Still unreaped, so the group id cannot have been reused by anyone else: sweep stragglers.
        self._signal_group(process, signal.SIGKILL)
        process.wait()
        logger.info("dovecot stopped (root %s)", self.root)

    @staticmethod
    def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass


def _exited(pid: int, timeout: float) -> bool:
    """Wait for the child to exit without reaping it (WNOWAIT); False on timeout."""
    deadline = time.monotonic() + timeout
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
