"""Entry: `mailroom <command>`. Loads settings and configuration once, configures logging, starts one worker
or runs one command (check-config, rules test, mailboxes check and status, topics, replay, and the lists of
mailboxes, rules and templates).

A bad configuration stops the process before it starts, with the field path and the bad value (exit 2);
so does a reply template that does not compile or names an unknown variable, whichever command loads it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from responder.render import check_templates
from runtime import logs
from runtime.loading import load_config
from runtime.settings import WorkerSettings
from schemas.config import MailroomConfig
from schemas.errors import ConfigError, UnknownMailboxError
from schemas.events import utcnow

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

    from runtime.configfeed import LiveConfig
    from runtime.metrics import Health

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
    listed = actions.add_parser(
        "list", help="a mailbox's rules in the order they are tried, inactive ones last, conditions in words"
    )
    listed.add_argument("--mailbox", required=True, metavar="ID", help="the mailbox's id")
    listed.add_argument("--json", action="store_true", help="print JSON for scripts")
    templates = sub.add_parser("templates", help="the named reply templates")
    template_actions = templates.add_subparsers(dest="action", required=True)
    listed = template_actions.add_parser(
        "list", help="the named templates, their organization and the rules using them"
    )
    listed.add_argument("--organization", metavar="ORG", help="only the templates this organization may use")
    listed.add_argument("--json", action="store_true", help="print JSON for scripts")
    save = template_actions.add_parser(
        "save",
        help="save a rule's own template as a named template of its organization (on the topic)",
        description="The original's 'Save response as email template': the rule's template becomes a named "
        "template of the mailbox's organization, and the rule refers to it. Published at once.",
    )
    save.add_argument("--mailbox", required=True, metavar="ID")
    save.add_argument("--rule", required=True, metavar="RULE_ID")
    save.add_argument("--name", required=True, metavar="NAME", help="the new template's name")
    save.add_argument(
        "--as", dest="who", metavar="NAME", help="who publishes (default: MAILROOM_USER or $USER)"
    )
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
    _config_parser(sub)
    _dead_letters_parser(sub)
    _audit_parser(sub)
    # Listed for --help only: `main` hands `admin ...` to the web admin's own parser (admin/cli.py).
    sub.add_parser("admin", help="serve the web admin, or add its users (mailroom admin --help)")
    replay = sub.add_parser("replay", help="rewind stopped stream workers to the start of their input topics")
    replay.add_argument("workers", nargs="*", default=["matcher", "converter", "responder"])
    return parser


def _mailboxes_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mailboxes = sub.add_parser(
        "mailboxes", help="list the mailboxes; check a mailbox's servers; see how reading each mailbox goes"
    )
    what = mailboxes.add_subparsers(dest="action", required=True)
    listed = what.add_parser("list", help="one row per mailbox: its address, processing, rules, IMAP server")
    listed.add_argument("--organization", metavar="ORG", help="only this organization's mailboxes")
    listed.add_argument("--json", action="store_true", help="print JSON for scripts")
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


def _config_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = sub.add_parser("config", help="the configuration topic: apply a file, export it, its history")
    what = config.add_subparsers(dest="action", required=True)
    apply = what.add_parser(
        "apply",
        help="validate a YAML file as check-config does, show the diff, publish what changed",
        description="Validates the file exactly as check-config does (and refuses secrets given in clear: "
        "on the topic they are {env: NAME} or {file: PATH} references), prints what is added, changed and "
        "removed, and publishes only that. Every worker follows the topic within seconds. A rule without "
        "created_at is dated when its first version is published: it answers letters received after that.",
    )
    apply.add_argument("-f", "--file", type=Path, required=True, metavar="FILE")
    apply.add_argument("--dry-run", action="store_true", help="show the diff; publish nothing")
    apply.add_argument(
        "--as", dest="who", metavar="NAME", help="who publishes (default: MAILROOM_USER or $USER)"
    )
    export = what.add_parser(
        "export", help="write the topic's configuration as YAML (apply takes it back as is)"
    )
    export.add_argument("-o", "--output", type=Path, metavar="FILE", help="a file instead of standard output")
    history = what.add_parser("history", help="every version published, with who, when and what changed")
    history.add_argument("name", nargs="?", metavar="MAILBOX", help="one mailbox (or named template)")
    history.add_argument("--json", action="store_true", help="print JSON for scripts")


def _dead_letters_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dead = sub.add_parser("dead-letters", help="what could not be processed; hand it back after a fix")
    what = dead.add_subparsers(dest="action", required=True)
    listed = what.add_parser("list", help="every dead letter: when, stage, mailbox, error, reason")
    listed.add_argument("--mailbox", metavar="ID")
    listed.add_argument("--stage", metavar="STAGE", help="ingest, matcher, converter or responder")
    listed.add_argument("--json", action="store_true", help="print JSON for scripts")
    shown = what.add_parser("show", help="one dead letter with its reason and the start of its original")
    shown.add_argument("dead_id", metavar="ID")
    again = what.add_parser(
        "reprocess",
        help="hand originals back to the stage that failed (a second time is harmless: ids are derived)",
    )
    again.add_argument("dead_ids", nargs="+", metavar="ID")
    again.add_argument("--json", action="store_true", help="print JSON for scripts")


def _load_config(settings: WorkerSettings) -> MailroomConfig:
    """The validated configuration, its reply templates compiled: every command refuses a bad one alike."""
    config = load_config(settings.config)
    check_templates(config)
    return config


def _current_config(settings: WorkerSettings) -> MailroomConfig:
    """The configuration as the workers see it (MAILROOM_CONFIG_SOURCE): the topic's when it holds one,
    else the file's. With `auto`, a broker that cannot be reached means the file, said on stderr."""
    if settings.config_source != "file":
        from kafka.errors import KafkaError

        from runtime.configfeed import read_state

        logs.quiet_kafka()
        try:
            state = read_state(settings.kafka, timeout=15.0)
        except (KafkaError, TimeoutError) as exc:
            if settings.config_source == "topic":
                raise ConfigError(f"the configuration topic cannot be read: {exc}") from None
            print(
                f"mailroom: the configuration topic cannot be read ({exc}); from {settings.config}",
                file=sys.stderr,
            )
        else:
            if not state.empty():
                config = state.config()
                check_templates(config)
                return config
            if settings.config_source == "topic":
                raise ConfigError(
                    "the configuration topic is empty: publish one with `mailroom config apply -f FILE`"
                )
    return _load_config(settings)


def _who(args: argparse.Namespace) -> str:
    """Who publishes a configuration change: --as, else MAILROOM_USER, else the login name."""
    import getpass
    import os

    return str(args.who or os.environ.get("MAILROOM_USER") or getpass.getuser())


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    if given[:1] == ["admin"]:  # the web admin (`mailroom admin --help`): its own settings and commands
        from admin.cli import main as admin_main

        return admin_main(given[1:])
    args = _parser().parse_args(argv)
    try:
        settings = WorkerSettings()
    except Exception as exc:  # pydantic-settings' validation error: show it without a trace
        print(f"mailroom: invalid environment settings: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    if args.command in ("topics", "replay", "replies"):
        return _admin(args, settings)
    if args.command in ("mailboxes", "rules", "templates") and args.action == "list":
        return _list(args, settings)
    if args.command == "config" or (args.command == "templates" and args.action == "save"):
        return _config(args, settings)
    if args.command in WORKERS:
        return _worker(args, settings)
    if args.command == "dead-letters":
        return _dead_letters(args, settings)
    if args.command == "audit":
        return _audit(args, settings)
    try:
        config = _current_config(settings) if args.command == "mailboxes" else _load_config(settings)
    except ConfigError as exc:
        print(f"mailroom: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(f"{settings.config}: {len(config.mailboxes)} mailboxes, valid")
        return 0
    if args.command == "rules":
        from mailroom import dry_run

        return dry_run.run(config, args.mailbox, args.file, utcnow(), sys.stdout, sys.stderr)
    return _mailboxes(args, settings, config)


def _worker(args: argparse.Namespace, settings: WorkerSettings) -> int:
    """Runs a worker on the configuration it follows live (the topic, or the file: MAILROOM_CONFIG_SOURCE)."""
    from kafka.errors import KafkaError

    from runtime.configfeed import start_live

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        live = start_live(
            settings.kafka,
            settings.config,
            check_templates,
            settings.ingest.reload_seconds,
            settings.config_source,
        )
    except ConfigError as exc:
        print(f"mailroom: {exc}", file=sys.stderr)
        return 2
    except (KafkaError, TimeoutError) as exc:
        print(f"mailroom {args.command}: Kafka at {settings.kafka.bootstrap_servers}: {exc}", file=sys.stderr)
        return 1
    from runtime.metrics import Health

    endpoint = None
    try:
        if args.command == "ingest":
            from ingest.main import run

            health = Health("ingest")
            if not args.once:
                endpoint = _serve_metrics(health, settings, live)
            return run(settings, live, once=args.once, health=health)
        worker = importlib.import_module(f"{args.command}.app").create_worker(settings, live)
        from runtime.stream import run_worker

        endpoint = _serve_metrics(worker.health, settings, live)
        return run_worker(worker)
    except ConfigError as exc:
        print(f"mailroom: {exc}", file=sys.stderr)
        return 2
    finally:
        if endpoint is not None:
            endpoint.shutdown()
        live.close()


def _serve_metrics(health: Health, settings: WorkerSettings, live: LiveConfig) -> ThreadingHTTPServer | None:
    """`/metrics`, `/healthz` and `/readyz` of a worker; ready while the broker answers and the worker
    follows a configuration."""
    from runtime.metrics import BrokerProbe, MetricsSettings, serve

    health.check("broker", BrokerProbe(settings.kafka.bootstrap_servers))
    health.check("configuration", lambda: None if live.config is not None else "no configuration loaded")
    return serve(health, MetricsSettings())


def _dead_letters(args: argparse.Namespace, settings: WorkerSettings) -> int:
    from kafka.errors import KafkaError

    from mailroom import deadletters

    logs.quiet_kafka()
    try:
        found = deadletters.read_dead_letters(settings.kafka)
        if args.action == "list":
            listed = deadletters.rows(found, args.mailbox, args.stage)
            print(deadletters.as_json(listed) if args.json else deadletters.render_list(listed))
            return 0
        if args.action == "show":
            dead = next((d for d in found if d.event_id == args.dead_id), None)
            if dead is None:
                print(f"mailroom dead-letters show: no dead letter {args.dead_id!r}", file=sys.stderr)
                return 1
            print(deadletters.render_show(dead))
            return 0
        try:
            config = _current_config(settings)
        except ConfigError as exc:
            print(f"mailroom dead-letters reprocess: {exc}", file=sys.stderr)
            return 2
        done = deadletters.reprocess(settings.kafka, config, found, args.dead_ids)
    except (KafkaError, TimeoutError) as exc:
        print(f"mailroom dead-letters: Kafka at {settings.kafka.bootstrap_servers}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(deadletters.as_json(done))
    else:
        for dead_id, what in done.items():
            print(f"{dead_id}  {what}")
    return 0 if all(what.startswith("reprocessed") for what in done.values()) else 1


def _audit_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser(
        "audit",
        help="per letter: thread, record, rules, reply and delivery, and what the configuration decides now",
        description="Reads the letters, decisions and reply outcomes from the topics (outside any consumer "
        "group: nothing is sent, written or committed) and shows per letter what happened, and what the "
        "configuration in force would decide now, marking the letters it would decide differently.",
    )
    audit.add_argument("--mailbox", metavar="ID", help="one mailbox's letters")
    audit.add_argument("--from", dest="since", metavar="TIME", help="letters received at or after (ISO)")
    audit.add_argument("--to", dest="until", metavar="TIME", help="letters received before (ISO)")
    audit.add_argument(
        "--letter", action="append", default=[], metavar="ID", help="a letter's event id or Message-ID"
    )
    shown = audit.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print JSON for scripts")
    shown.add_argument("--csv", action="store_true", help="print CSV, one row per letter")
    audit.add_argument(
        "--timeout", type=float, default=60.0, metavar="SECONDS", help="the longest wait for Kafka (60)"
    )


def _audit(args: argparse.Namespace, settings: WorkerSettings) -> int:
    """`audit`: reads, never writes; a bad time or an unknown mailbox exits 2, an unreachable broker 1."""
    from kafka.errors import KafkaError

    from mailroom import audit

    logs.quiet_kafka()
    try:
        since, until = (audit.moment(t) if t else None for t in (args.since, args.until))
    except ValueError as exc:
        print(f"mailroom audit: --from/--to: {exc} (an ISO date or date-time)", file=sys.stderr)
        return 2
    try:
        config = _current_config(settings)
    except ConfigError as exc:
        print(f"mailroom audit: {exc}", file=sys.stderr)
        return 2

    def progress(done: int, total: int) -> None:
        print(f"\rreading the topics: {done}/{total} messages", end="", file=sys.stderr, flush=True)
        if done == total:
            print(file=sys.stderr)

    try:
        events = audit.read_events(
            settings.kafka, args.mailbox, args.timeout, progress if sys.stderr.isatty() else None
        )
    except (KafkaError, TimeoutError) as exc:
        print(f"mailroom audit: Kafka at {settings.kafka.bootstrap_servers}: {exc}", file=sys.stderr)
        return 1
    if args.mailbox and config.mailbox(args.mailbox) is None and not events.knows(args.mailbox):
        known = ", ".join(box.id for box in config.mailboxes) or "none"
        print(f"mailroom audit: no mailbox {args.mailbox!r} (mailboxes: {known})", file=sys.stderr)
        return 2
    entries = audit.audit(
        events, config, utcnow(), mailbox=args.mailbox, since=since, until=until, letters=args.letter
    )
    if args.json:
        print(audit.as_json(entries))
    elif args.csv:
        print(audit.as_csv(entries), end="")
        print(audit.summary_line(entries), file=sys.stderr)
    else:
        print(audit.render_table(entries))
    return 0


def _config(args: argparse.Namespace, settings: WorkerSettings) -> int:
    """`config apply | export | history`: a file refused exits 2, an unreachable broker 1."""
    from kafka.errors import KafkaError

    from mailroom import configuration
    from runtime.configfeed import read_state

    logs.quiet_kafka()
    try:
        if args.action == "save":
            state = read_state(settings.kafka)
            if state.empty():
                print("mailroom templates save: the configuration topic is empty", file=sys.stderr)
                return 1
            try:
                config = configuration.save_as_template(state.config(), args.mailbox, args.rule, args.name)
            except ConfigError as exc:
                print(f"mailroom templates save: {exc}", file=sys.stderr)
                return 2
            who = _who(args)
            now = utcnow()
            changes = configuration.plan(config, state, now, who)
            print(configuration.describe(changes))
            configuration.publish(settings.kafka, changes, now, who)
            return 0
        if args.action == "apply":
            try:
                config = load_config(args.file)
                check_templates(config)
                configuration.refuse_clear_secrets(config)
            except ConfigError as exc:
                print(f"mailroom config apply: {exc}", file=sys.stderr)
                return 2
            who = _who(args)
            now = utcnow()
            changes = configuration.plan(config, read_state(settings.kafka), now, who)
            print(configuration.describe(changes))
            if args.dry_run:
                print("dry run: nothing published")
            elif changes:
                configuration.publish(settings.kafka, changes, now, who)
                print(f"published {len(changes)} change(s) as {who}")
            return 0
        if args.action == "export":
            state = read_state(settings.kafka)
            if state.empty():
                print("mailroom config export: the configuration topic is empty", file=sys.stderr)
                return 1
            text = configuration.export_yaml(state)
            if args.output is not None:
                args.output.write_text(text, encoding="utf-8")
            else:
                print(text, end="")
            return 0
        rows = configuration.history_rows(configuration.read_history(settings.kafka), args.name)
    except (KafkaError, TimeoutError) as exc:
        print(
            f"mailroom config {args.action}: Kafka at {settings.kafka.bootstrap_servers}: {exc}",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(rows, indent=2, ensure_ascii=False) if args.json else configuration.render_history(rows))
    return 0


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

    logs.quiet_kafka()
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


def _list(args: argparse.Namespace, settings: WorkerSettings) -> int:
    """`mailboxes list`, `rules list` and `templates list`: the configuration's grids."""
    from mailroom import grids

    try:
        config = _current_config(settings)
        shown: object
        if args.command == "mailboxes":
            shown = (grids.mailboxes_json if args.json else grids.render_mailboxes)(config, args.organization)
        elif args.command == "templates":
            shown = (grids.templates_json if args.json else grids.render_templates)(config, args.organization)
        else:
            shown = (grids.rules_json if args.json else grids.render_rules)(config, args.mailbox)
    except (ConfigError, UnknownMailboxError) as exc:
        print(f"mailroom {args.command} list: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(shown, indent=2, ensure_ascii=False) if args.json else shown)
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
