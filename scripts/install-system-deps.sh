#!/bin/sh
# Installs the system packages mailroom's local servers need (Debian/Ubuntu): Dovecot IMAP + LMTP for mail,
# a Java runtime and Maven for the Kafka broker (its jars come from Maven Central), Chromium for the web
# admin's browser tests. Does nothing when all are there.
set -eu

missing=""
command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ] || missing="$missing dovecot-imapd dovecot-lmtpd"
command -v java >/dev/null 2>&1 || missing="$missing openjdk-17-jre-headless"
command -v mvn >/dev/null 2>&1 || missing="$missing maven"
[ -x /usr/bin/chromium ] || missing="$missing chromium"

if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages; as root, run:" >&2
    echo "  apt-get update && apt-get install -y$missing" >&2
    exit 1
fi

echo "installing:$missing"
apt-get update -qq
# shellcheck disable=SC2086  # the list is meant to split into package names
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
