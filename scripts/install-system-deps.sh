#!/bin/sh
# Installs the system packages mailroom's local test servers need (Debian/Ubuntu): Dovecot IMAP + LMTP.
set -eu

if command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ]; then
    echo "dovecot is already installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "dovecot is missing; as root, run:" >&2
    echo "  apt-get update && apt-get install -y dovecot-imapd dovecot-lmtpd" >&2
    exit 1
fi

apt-get update
apt-get install -y dovecot-imapd dovecot-lmtpd
