from __future__ import annotations

from admin.session import csrf_ok, new_session, sign, unsign

KEY = b"k" * 32


def test_a_signed_session_reads_back_and_a_changed_one_does_not() -> None:
    session = new_session("olga", now=1000.0)
    cookie = sign(session, KEY)
    assert unsign(cookie, KEY, now=1001.0) == session
    _, _, mac = cookie.rpartition(".")
    forged = sign({**session, "user": "gus"}, KEY).rpartition(".")[0] + "." + mac
    assert unsign(forged, KEY, now=1001.0) is None
    assert unsign(cookie, b"other key", now=1001.0) is None
    assert unsign("garbage", KEY) is None and unsign(None, KEY) is None


def test_a_session_ends() -> None:
    session = new_session("olga", now=1000.0)
    assert unsign(sign(session, KEY), KEY, now=session["until"] + 1) is None


def test_csrf_token_must_be_the_sessions() -> None:
    session = new_session(None)
    assert csrf_ok(session, session["csrf"])
    assert not csrf_ok(session, session["csrf"] + "x")
    assert not csrf_ok(session, None) and not csrf_ok(session, "")
    assert not csrf_ok(None, session["csrf"])
    assert new_session(None)["csrf"] != session["csrf"]
