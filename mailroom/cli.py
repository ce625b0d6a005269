"""Entry: `mailroom <command>`. Loads settings and configuration once, configures logging, starts one worker
or runs one command (check-config, rules test, mailboxes check and status, topics, replay).

A bad configuration stops the process before it starts, with the field path and the bad value (exit 2);
so does a reply template that does not compile or names an unknown variable, whichever command loads it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from pathlib import Path

from responder.render import check_templates
from runtime.loading import load_config
from runtime.settings import WorkerSettings
from schemas.config import MailroomConfig
from schemas.errors import ConfigError
from schemas.events import utcnow

__all__ = ["main"]

WORKERS = ("ingest", "matcher", "converter", "responder")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailroom", description="System mailboxes on a Kafka pipeline.")
    sub = parser.add_subparsers(dest="command", required=True)
    for worker in WORKERS:
        cmd = sub.add_parser(worker, help=f"run the {worker} worker")
        if worker == "ingest":
            cmd.add_argument("--once", action="store_true", help="read every mailbox once, then exit")
    sub.add_parser("check-config", help="validate the configuration file and exit")
    rules = sub.add_parser("rules", help="try a mailbox's auto-response rules")
    actions = rules.add_subparsers(dest="action", required=True)
    trial = actions.add_parser(
        "test",
        help="show what mailroom would do with a letter (.eml) arriving in a mailbox; sends nothing",
        description="Shows the loop guard's verdict, each active rule's outcome and every reply mailroom "
        "would send, rendered as the responder sends it. Nothing is sent; no Kafka is needed.",
    )
    trial.add_argument("--mailbox", required=True, metavar="ID", help="the mailbox's id in the configuration")
    trial.add_argument("file", type=Path, metavar="FILE.eml", help="the letter, as raw RFC 5322 bytes")
    sub.add_parser("topics", help="create the pipeline's topics that do not exist yet")
    replies = sub.add_parser(
        "replies", help="replies that failed or wait for another try; send failed ones again"
    )
    what = replies.add_subparsers(dest="action", required=True)
    listed = what.add_parser("list", help="replies whose sending failed for good, or is deferred")
    listed.add_argument("--json", action="store_true", help="print JSON for scripts")
    again = what.add_parser("resend", help="send failed replies again (not sent ones, nor deferred ones)")
    again.add_argument("reply_ids", nargs="+", metavar="REPLY_ID")
    again.add_argument("--json", action="store_true", help="print JSON for scripts")
    _mailboxes_parser(sub)
    replay = sub.add_parser("replay", help="rewind stopped stream workers to the start of their input topics")
    replay.add_argument("workers", nargs="*", default=["matcher", "converter", "responder"])
    return parser


def _mailboxes_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mailboxes = sub.add_parser(
        "mailboxes", help="check a mailbox's servers; see how reading each mailbox goes"
    )
    what = mailboxes.add_subparsers(dest="action", required=True)
    check = what.add_parser(
        "check",
        help="connect to a mailbox's IMAP and SMTP servers step by step and list its folders; sends nothing",
        description="Checks DNS, TCP, TLS and the certificate, the greeting, capabilities, the login and "
        "(IMAP) the folders, stopping at the first step that fails with what to do about it. Exit code 0 "
        "when every server checked works, 1 otherwise, 2 for a bad configuration or an unknown mailbox.",
    )
    check.add_argument("mailbox_id", metavar="ID", help="the mailbox's id in the configuration")
    only = check.add_mutually_exclusive_group()
    only.add_argument("--imap-only", action="store_true", help="check the IMAP server only")
    only.add_argument("--smtp-only", action="store_true", help="check the SMTP server only")
    check.add_argument(
        "--timeout", type=float, default=15.0, metavar="SECONDS", help="the longest wait for each step (15)"
    )
    check.add_argument("--json", action="store_true", help="print JSON for scripts")
    status = what.add_parser(
        "status",
        help="how reading each mailbox goes, as ingest last reported it",
        description="Reads the ingest health topic and shows each configured mailbox's state (unknown "
        "when ingest has reported nothing for it), since when, its last letter, its folders, the error "
        "and what to do about it, and the ingest process reading it.",
    )
    status.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="the longest wait for Kafka (30)"
    )
    status.add_argument("--json", action="store_true", help="print JSON for scripts")


def _load_config(settings: WorkerSettings) -> MailroomConfig:
    """The validated configuration, its reply templates compiled: every command refuses a bad one alike."""
    config = load_config(settings.config)
    check_templates(config)
    return config


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = WorkerSettings()
    except Exception as exc:  # pydantic-settings' validation error: show it without a trace
        print(f"mailroom: invalid environment settings: {exc}", file=sys.stderr)
        return 2
    _configure_logging(settings.log_level)
    if args.command in ("topics", "replay", "replies"):
        return _admin(args, settings)
    try:
        config = _load_config(settings)
    except ConfigError as exc:
        print(f"mailroom: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(f"{settings.config}: {len(config.mailboxes)} mailboxes, valid")
        return 0
    if args.command == "rules":
        from mailroom import dry_run

        return dry_run.run(config, args.mailbox, args.file, utcnow(), sys.stdout, sys.stderr)
    if args.command == "mailboxes":
        return _mailboxes(args, settings, config)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        if args.command == "ingest":
            from ingest.main import run

            return run(settings, config, once=args.once)
        worker = importlib.import_module(f"{args.command}.app").create_worker(settings, config)
    except ConfigError as exc:
        print(f"mailroom: {exc}", file=sys.stderr)
        return 2
    from runtime.stream import run_worker

    return run_worker(worker)


def _admin(args: argparse.Namespace, settings: WorkerSettings) -> int:
    """`topics`, `replay` and `replies`: operations on the cluster; an unreachable broker is an error, not a
    trace."""
    from kafka.errors import KafkaError

    from mailroom.admin import create_topics, rewind_workers

    try:
        if args.command == "replies":
            return _replies(args, settings)
        if args.command == "topics":
            created = create_topics(settings.kafka)
            print(f"created {len(created)} topics" + "".join(f"\n  {name}" for name in created))
        else:
            for worker, count in rewind_workers(settings.kafka, args.workers).items():
                print(f"{settings.kafka.group(worker)}: {count} partitions rewound to the start")
    except (KafkaError, RuntimeError, TimeoutError) as exc:
        print(f"mailroom {args.command}: Kafka at {settings.kafka.bootstrap_servers}: {exc}", file=sys.stderr)
        return 1
    return 0


def _mailboxes(args: argparse.Namespace, settings: WorkerSettings, config: MailroomConfig) -> int:
    """`mailboxes check` talks to the mailbox's servers; `mailboxes status` reads the health topic, and an
    unreachable broker is an error, not a trace."""
    from mailroom import mailboxes

    if args.action == "check":
        mailbox = config.mailbox(args.mailbox_id)
        if mailbox is None:
            known = ", ".join(box.id for box in config.mailboxes) or "none"
            where = f"in {settings.config} (known: {known})"
            print(f"mailroom mailboxes check: no mailbox {args.mailbox_id!r} {where}", file=sys.stderr)
            return 2
        from runtime.check import check_mailbox

        checked = check_mailbox(mailbox, args.timeout, imap=not args.smtp_only, smtp=not args.imap_only)
        print(mailboxes.check_json(checked) if args.json else mailboxes.render_check(checked))
        return 0 if checked.ok else 1
    from kafka.errors import KafkaError

    from runtime.snapshot import read_topic
    from schemas.topics import INGEST_HEALTH

    if logging.getLogger().level > logging.DEBUG:
        # The client logs each failed try to reach the broker; the command says it once, below.
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        records = [
            (r.key, r.value) for r in read_topic(settings.kafka, INGEST_HEALTH, args.timeout, tombstones=True)
        ]
    except (KafkaError, TimeoutError) as exc:
        print(
            f"mailroom mailboxes status: Kafka at {settings.kafka.bootstrap_servers}: {exc}", file=sys.stderr
        )
        return 1
    statuses = mailboxes.mailbox_statuses(config, mailboxes.latest_health(records))
    print(mailboxes.status_json(statuses) if args.json else mailboxes.render_status(statuses))
    return 0


def _replies(args: argparse.Namespace, settings: WorkerSettings) -> int:
    from mailroom.replies import as_json, failed_replies, render_table, resend

    if args.action == "list":
        states = failed_replies(settings.kafka)
        print(as_json(states) if args.json else render_table(states))
        return 0
    done = resend(settings.kafka, args.reply_ids)
    if args.json:
        print(json.dumps(done, indent=2))
    else:
        for reply_id, what in done.items():
            print(f"{reply_id}  {what}")
    return 0 if all(what.startswith("resent") for what in done.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
