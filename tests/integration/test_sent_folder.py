"""Integration: copies of replies filed in rounds in a real Dovecot Sent folder (responder/imap.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest
from imapclient import IMAPClient

from deploy.local.dovecot import Dovecot
from responder.imap import Copy, FiledCopy, FilingQueue, SentFolder
from schemas.config import ImapSettings
from schemas.events import utcnow
from tests.fixtures_mail import MailUser

pytestmark = pytest.mark.integration


class CountingFolder(SentFolder):
    """The real Sent folder edge, counting its rounds."""

    rounds: list[int]

    def file_many(self, copies: Sequence[Copy]) -> list[FiledCopy]:
        self.rounds.append(len(copies))
        return super().file_many(copies)


def _copy(user: MailUser, n: int) -> tuple[bytes, str]:
    mid = f"reply-{n}@mailroom.test"
    return f"From: {user.address}\r\nMessage-ID: <{mid}>\r\nSubject: {n}\r\n\r\nReply {n}\r\n".encode(), mid


def _folder(dovecot: Dovecot, user: MailUser) -> CountingFolder:
    settings = ImapSettings(
        host=dovecot.host, port=dovecot.imap_port, ssl=False, username=user.address, password=user.password
    )
    folder = CountingFolder(settings)
    folder.rounds = []
    return folder


def _sent(dovecot: Dovecot, user: MailUser) -> dict[int, tuple[bytes, tuple[bytes, ...]]]:
    with IMAPClient(dovecot.host, port=dovecot.imap_port, ssl=False) as client:
        client.login(user.address, user.password)
        client.select_folder("Sent", readonly=True)
        uids = client.search(["ALL"])
        fetched = client.fetch(uids, ["BODY.PEEK[]", "FLAGS"]) if uids else {}
        return {u: (bytes(f[b"BODY[]"]), tuple(f[b"FLAGS"])) for u, f in fetched.items()}


def test_copies_asked_for_together_are_filed_in_one_round_and_one_already_there_is_found(
    dovecot: Dovecot, mail_user_factory: Callable[[str], MailUser]
) -> None:
    desk = mail_user_factory("desk")
    folder = _folder(dovecot, desk)
    copies = [_copy(desk, n) for n in range(6)]
    first = folder.file(*copies[0], utcnow())  # filed before, as by a worker that then crashed
    queue = FilingQueue(folder)

    async def file_all() -> list[FiledCopy]:
        return await asyncio.gather(*(queue.file(raw, mid, utcnow()) for raw, mid in copies))

    try:
        filed = asyncio.run(file_all())
    finally:
        queue.close()

    assert folder.rounds == [1, 6]
    assert filed[0] == FiledCopy("Sent", first.uidvalidity, first.uid, appended=False)
    assert all(f.appended and f.folder == "Sent" for f in filed[1:])
    in_folder = _sent(dovecot, desk)
    assert {f.uid for f in filed} == set(in_folder)  # MULTIAPPEND told every new copy's UID
    assert sorted(raw for raw, _ in in_folder.values()) == sorted(raw for raw, _ in copies)
    assert all(b"\\Seen" in flags for _, flags in in_folder.values())
    for (raw, _), copy in zip(copies, filed, strict=True):
        assert in_folder[copy.uid][0] == raw  # type: ignore[index]


def test_a_round_after_a_dropped_connection_reconnects_and_finds_copies_by_message_id(
    dovecot: Dovecot, mail_user_factory: Callable[[str], MailUser]
) -> None:
    desk = mail_user_factory("desk")
    folder = _folder(dovecot, desk)
    copies = [_copy(desk, n) for n in range(4)]
    try:
        folder.file_many([Copy(raw, mid, utcnow()) for raw, mid in copies[:2]])
        folder._client.shutdown()  # type: ignore[union-attr]  # as a server timing out an idle client
        again = folder.file_many([Copy(raw, mid, utcnow()) for raw, mid in copies])
    finally:
        folder.close()

    assert [c.appended for c in again] == [False, False, True, True]
    assert len(_sent(dovecot, desk)) == 4
