"""The web admin: the System Mailboxes screens, served by `mailroom admin`."""
