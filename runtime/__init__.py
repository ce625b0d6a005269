"""How any mailroom worker runs: the one stream loop, the error policy, the ledger, settings and
configuration loading, and the connection helpers. Workers import it and `schemas/`; it imports no worker."""
