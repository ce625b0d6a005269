"""`mailroom rules test`: what a user sees for one letter in one mailbox, and that nothing is sent."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailroom.cli import main
from schemas.ids import case_id, reply_id, reply_message_id

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "deploy" / "samples" / "question.eml"
SAMPLE_ID = "question-4711@customer.example"
URGENT = {
    "id": "urgent",
    "name": "Urgent letters",
    "position": 1,
    "conditions": [
        {"field": "subject", "operator": "contains", "value": "urgent"},
        {"field": "from", "operator": "is_not_any_of", "value": ["boss@acme.example"]},
    ],
    "template": {"subject": "[urgent] {{ letter.reply_subject }}", "body": "On it."},
}
ORDERS = {
    "id": "orders",
    "name": "Order questions",
    "position": 2,
    "conditions": [
        {"field": "subject", "operator": "matches_regex", "value": r"order \d+"},
        {"field": "header:X-Priority", "operator": "is_empty"},
    ],
    "template": "thanks",
}
ACK = {"id": "ack", "name": "Everything else", "position": 3, "template": "thanks"}
THANKS = {
    "subject": "{{ letter.reply_subject }}",
    "body": "Hello {{ letter.from_name }},\n\nthank you for writing to {{ mailbox.label }}.\n",
}


def _mailbox(*rules: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    box: dict[str, Any] = {
        "id": "support",
        "organization": "acme",
        "label": "Acme Support",
        "email": "support@acme.example",
        "imap": {"host": "127.0.0.1", "port": 1, "username": "support", "password": "imap-secret"},
        "smtp": {"host": "127.0.0.1", "port": 1, "username": "support", "password": "smtp-secret"},
        "rules": list(rules),
    }
    box.update(overrides)
    return box


def _config(*mailboxes: dict[str, Any]) -> dict[str, Any]:
    return {"templates": {"thanks": THANKS}, "mailboxes": list(mailboxes or [_mailbox(URGENT, ORDERS, ACK)])}


def _try(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    config: dict[str, Any] | str,
    letter: Path | bytes = SAMPLE,
    mailbox: str = "support",
) -> tuple[int, str, str]:
    """Runs `mailroom rules test` in this process; returns the exit code, stdout and stderr."""
    path = tmp_path / "mailroom.yaml"
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    if isinstance(letter, bytes):
        (tmp_path / "letter.eml").write_bytes(letter)
        letter = tmp_path / "letter.eml"
    monkeypatch.setenv("MAILROOM_CONFIG", str(path))
    code = main(["rules", "test", "--mailbox", mailbox, str(letter)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _letter(
    subject: str = "Question", headers: str = "", sender: str = "Ann Lee <ann@customer.example>"
) -> bytes:
    return (
        f"From: {sender}\nTo: support@acme.example\nSubject: {subject}\nMessage-ID: <{SAMPLE_ID}>\n"
        f"{headers}\nHello,\nplease help.\n"
    ).encode()


def test_the_sample_shows_each_rule_the_failed_condition_and_the_reply_and_sends_nothing(
    tmp_path: Path,
) -> None:
    config = tmp_path / "mailroom.yaml"
    # Something listens where SMTP and Kafka are configured: the command must not connect to it.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        box = _mailbox(URGENT, ORDERS, ACK)
        box["smtp"]["port"] = port
        config.write_text(yaml.safe_dump(_config(box)))
        env = {
            "PATH": "/usr/bin:/bin",
            "MAILROOM_CONFIG": str(config),
            "MAILROOM_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        }
        done = subprocess.run(
            [sys.executable, "-m", "mailroom", "rules", "test", "--mailbox", "support", str(SAMPLE)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        with pytest.raises(BlockingIOError):
            server.accept()

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert "  Subject: Question about my order 4711" in lines
    assert "Loop guard: passed, mailroom may auto-reply to this letter" in lines
    assert (
        '  1. urgent (Urgent letters): not matched: condition 1 of 2 failed: subject contains "urgent"'
        in lines
    )
    assert "  2. orders (Order questions): matched" in lines
    assert "  3. ack (Everything else): not evaluated: first_match stops at the first matching rule" in lines
    assert "Reply: rule orders" in lines
    assert "From: Acme Support <support@acme.example>" in lines
    assert "To: Ann Lee <ann@customer.example>" in lines
    assert "Subject: Re: Question about my order 4711" in lines
    assert f"In-Reply-To: <{SAMPLE_ID}>" in lines
    assert f"References: <{SAMPLE_ID}>" in lines
    assert "Auto-Submitted: auto-replied" in lines
    assert "X-Loop: support@acme.example" in lines
    message_id = reply_message_id(reply_id("support", SAMPLE_ID, "orders"), "support@acme.example")
    assert f"Message-ID: <{message_id}>" in lines  # the very id the responder would send it with
    assert "thank you for writing to Acme Support." in lines
    assert "This is a test: nothing is sent, nothing is written to Kafka." in lines
    assert "secret" not in done.stdout


def test_the_first_failed_condition_is_named_with_its_operator_and_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    letter = _letter("About order 12", headers="X-Priority: 1\n")

    code, out, _ = _try(tmp_path, monkeypatch, capsys, _config(), letter)

    assert code == 0
    assert (
        "  2. orders (Order questions): not matched: condition 2 of 2 failed: header:x-priority is_empty"
        in out.splitlines()
    )
    assert "  3. ack (Everything else): matched (no conditions: answers every letter)" in out.splitlines()
    assert "Reply: rule ack" in out.splitlines()


def test_all_matching_shows_every_reply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    box = _mailbox(URGENT, ORDERS, ACK, reply_policy="all_matching")

    code, out, _ = _try(tmp_path, monkeypatch, capsys, _config(box))

    lines = out.splitlines()
    assert code == 0
    assert "  3. ack (Everything else): matched (no conditions: answers every letter)" in lines
    assert "Replies: 2 (rules orders, ack; all_matching)" in lines
    assert "--- reply of rule orders (Order questions) ---" in lines
    assert "--- reply of rule ack (Everything else) ---" in lines
    assert lines.count("Subject: Re: Question about my order 4711") == 2


def test_a_rule_created_after_the_letter_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    future = {**ACK, "created_at": "2999-01-01T00:00:00+00:00"}

    code, out, _ = _try(tmp_path, monkeypatch, capsys, _config(_mailbox(future)))

    assert code == 0
    assert (
        "  1. ack (Everything else): not matched: "
        "letter received before the rule was created (2999-01-01T00:00:00+00:00)" in out.splitlines()
    )
    assert "Reply: none (no rule matched)" in out.splitlines()


@pytest.mark.parametrize(
    ("letter", "reason"),
    [
        (_letter(headers="List-Id: <news.customer.example>\n"), "mailing list"),
        (_letter(headers="Auto-Submitted: auto-replied\n"), "auto-submitted: auto-replied"),
        (_letter(sender="noreply@shop.example"), "automated sender: noreply@shop.example"),
        (_letter(headers="X-Loop: support@acme.example\n"), "mailroom loop marker"),
    ],
    ids=["list", "auto-submitted", "noreply", "own reply"],
)
def test_mail_mailroom_never_answers_says_why_and_evaluates_no_rule(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    letter: bytes,
    reason: str,
) -> None:
    code, out, _ = _try(tmp_path, monkeypatch, capsys, _config(), letter)

    lines = out.splitlines()
    assert code == 0
    assert f"Loop guard: mailroom never auto-replies to this letter: {reason}" in lines
    assert "Rules: not evaluated (3 active): the loop guard stops the letter first" in lines
    assert "Reply: none (the loop guard)" in lines
    assert "---" not in out


def test_the_reply_names_the_case_the_letter_creates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rule = {
        "id": "ack",
        "name": "Ack",
        "template": {
            "subject": "{{ letter.reply_subject }}"
            "{% if record %} [{{ record.type }} {{ record.id }}]{% endif %}",
            "body": "Your case: {{ record.id if record else 'none' }}\n",
        },
    }
    box = _mailbox(rule, processing={"type": "case"})

    code, out, _ = _try(tmp_path, monkeypatch, capsys, _config(box))

    case = case_id("support", SAMPLE_ID)
    lines = out.splitlines()
    assert code == 0
    assert f"Record: creates case {case} (templates see it as record)" in lines
    assert f"Subject: Re: Question about my order 4711 [case {case}]" in lines
    assert f"Your case: {case}" in lines


def test_a_reply_that_cannot_be_built_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The check at load renders sample letters, none about an order: only this letter takes the branch.
    body = "{% if 'order' in letter.subject %}Case {{ record.id }}{% endif %}"
    rule = {"id": "ack", "name": "Ack", "template": {"subject": "s", "body": body}}

    code, out, _ = _try(tmp_path, monkeypatch, capsys, _config(_mailbox(rule)))

    lines = out.splitlines()
    assert code == 0
    assert "Record: none, the mailbox makes no lead or case (templates see record as none)" in lines
    assert "--- reply of rule ack (Ack): cannot be built ---" in lines
    assert "'None' has no attribute 'id'" in out
    assert "(the responder would record the reply as failed and send nothing)" in lines


def test_an_html_reply_shows_its_text_and_html_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rule = {
        "id": "ack",
        "name": "Ack",
        "template": {"type": "html", "subject": "Re", "body": "<p>Dear {{ letter.from_name }}</p>"},
    }

    code, out, _ = _try(tmp_path, monkeypatch, capsys, _config(_mailbox(rule)))

    lines = out.splitlines()
    assert code == 0
    assert lines.index("[text/plain]") + 1 == lines.index("Dear Ann Lee")
    assert lines.index("[text/html]") + 1 == lines.index("<p>Dear Ann Lee</p>")


def test_a_letter_in_german_gets_the_german_variant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    made = _config()
    made["templates"]["thanks"] = {
        **THANKS,
        "variants": {
            "de": {"subject": "AW: {{ letter.subject }}", "body": "Hallo {{ letter.from_name }}!\n"}
        },
    }
    german = SAMPLE.read_bytes().replace(b"MIME-Version", b"Content-Language: de-DE\nMIME-Version", 1)

    code, out, _ = _try(tmp_path, monkeypatch, capsys, made, letter=german)

    lines = out.splitlines()
    assert code == 0
    assert "Reply: rule orders" in lines
    assert "Subject: AW: Question about my order 4711" in lines
    assert "Hallo Ann Lee!" in lines


def test_the_example_configuration_answers_the_sample(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAILROOM_CONFIG", str(ROOT / "deploy" / "mailroom.example.yaml"))

    code = main(["rules", "test", "--mailbox", "support", str(SAMPLE)])

    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert f"Record: creates case {case_id('support', SAMPLE_ID)} (templates see it as record)" in lines
    assert "Reply: rule ack" in lines
    assert "Subject: Re: Question about my order 4711" in lines


def test_an_unknown_mailbox_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _try(tmp_path, monkeypatch, capsys, _config(), mailbox="suport")

    assert code == 2
    assert out == ""
    assert "no mailbox 'suport' in the configuration (mailboxes: support)" in err


def test_a_bad_template_stops_the_command_before_the_letter_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config()
    config["templates"]["thanks"] = {"subject": "s", "body": "{% if %}"}

    code, out, err = _try(tmp_path, monkeypatch, capsys, config, letter=tmp_path / "missing.eml")

    assert code == 2
    assert out == ""
    assert "templates.thanks: body: syntax error on line 1" in err


@pytest.mark.parametrize("name", ["missing.eml", "."], ids=["missing", "a directory"])
def test_an_unreadable_file_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code, out, err = _try(tmp_path, monkeypatch, capsys, _config(), letter=tmp_path / name)

    assert code == 1
    assert out == ""
    assert f"cannot read {tmp_path / name}" in err


def test_a_letter_mailroom_cannot_process_exits_1_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _try(
        tmp_path, monkeypatch, capsys, _config(), letter=b"Subject: who wrote this?\n\nbody"
    )

    assert code == 1
    assert out == ""
    assert "it would go to the dead-letter topic" in err
    assert "no sender address" in err


AUDIT_LETTERS = {
    "reply-to of thirty": (
        _letter(
            headers="Reply-To: " + ", ".join(f"x{i}@x.example" for i in range(29)) + ", v@victim.example\n"
        ),
        "To: x0@x.example",
    ),
    "reply-to noreply": (
        _letter(headers="Reply-To: noreply@customer.example\n"),
        "To: Ann Lee <ann@customer.example>",
    ),
    "reply-to the mailbox": (
        _letter(headers="Reply-To: support@acme.example\n"),
        "To: Ann Lee <ann@customer.example>",
    ),
    "x-autoreply": (
        _letter(headers="X-Autoreply: yes\n"),
        "Loop guard: mailroom never auto-replies to this letter",
    ),
    "precedence auto_reply": (
        _letter(headers="Precedence: auto_reply\n"),
        "Loop guard: mailroom never auto-replies to this letter: precedence: auto_reply",
    ),
    "no_reply sender": (
        _letter(sender="no_reply@shop.example"),
        "Loop guard: mailroom never auto-replies to this letter: automated sender: no_reply@shop.example",
    ),
    "line break in the encoded name": (
        _letter(sender="=?utf-8?B?RXZlClNtaXRo?= <eve@evil.example>"),
        "From: Eve Smith <eve@evil.example>",
    ),
    "8-bit auto-submitted": (
        _letter(headers="Auto-Submitted: auto-replied (fXr Ann)\n").replace(b"fXr", b"f\xfcr"),
        "Loop guard: mailroom never auto-replies to this letter: auto-submitted: auto-replied (f\u00fcr ann)",
    ),
    "office html": (
        b"From: ann@customer.example\nSubject: Lists\nMessage-ID: <o@c>\nContent-Type: text/html\n\n"
        b"<p>a</p><![ if !supportLists ]>1.<![ endif ]><p>b</p>\n",
        "Reply: rule ack",
    ),
}


@pytest.mark.parametrize("name", list(AUDIT_LETTERS))
def test_the_audits_letters_get_the_right_verdict_and_never_a_traceback(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    letter, expected = AUDIT_LETTERS[name]

    code, out, err = _try(tmp_path, monkeypatch, capsys, _config(), letter)

    assert code == 0, err
    assert "Traceback" not in out + err
    assert expected in out, out


FIELD_RULES = [
    {
        "id": "attached",
        "name": "With an attachment",
        "position": 1,
        "conditions": [{"field": "has_attachments", "operator": "is_true"}],
        "template": "thanks",
    },
    {
        "id": "cafe",
        "name": "About the cafe",
        "position": 2,
        "conditions": [{"field": "subject", "operator": "contains", "value": "café"}],
        "template": "thanks",
    },
    {
        "id": "printer",
        "name": "Printer trouble",
        "position": 3,
        "conditions": [{"field": "body", "operator": "contains", "value": "printer broken"}],
        "template": "thanks",
    },
]
HEAD = b"From: ann@customer.example\nTo: support@acme.example\nMessage-ID: <f@c>\n"


@pytest.mark.parametrize(
    ("letter", "rule"),
    [
        (
            HEAD + b"Subject: Invoice\nContent-Type: application/pdf; name=a.pdf\n"
            b"Content-Disposition: attachment; filename=a.pdf\n"
            b"Content-Transfer-Encoding: base64\n\nJVBERi0=\n",
            "attached",
        ),
        ("Subject: Cafe\u0301 opening\n".encode().join([HEAD, b"\nHello\n"]), "cafe"),
        (
            HEAD + b"Subject: Help\nContent-Type: multipart/alternative; boundary=b\n\n--b\n"
            b"Content-Type: text/plain\n\n \n--b\nContent-Type: text/html\n\n"
            b"<p>My printer broken</p>\n--b--\n",
            "printer",
        ),
    ],
    ids=["single-part attachment", "decomposed accent", "empty plain part beside html"],
)
def test_fields_the_audit_found_misread_are_read_right_by_the_rules(
    letter: bytes,
    rule: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _try(tmp_path, monkeypatch, capsys, _config(_mailbox(*FIELD_RULES)), letter)

    assert code == 0 and "Traceback" not in out + err
    assert f"Reply: rule {rule}" in out, out
