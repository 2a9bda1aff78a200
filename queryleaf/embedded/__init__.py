"""The embedded default server (docs/embedded.md); its public API is ``queryleaf.engine``.

A data directory holds one SecantusDB server's storage and what lets the processes of its
owner share it. The layers, each a module:

    paths        the directory's files (private: 0700 / 0600) and its lock
    credentials  the credential the server requires, kept in the directory
    durability   whether commits are synced (on unless explicitly turned off)
    process      secantusd-py as a process: start, wait, tell if it runs, stop
    bootstrap    creating the server's user before it first runs with --auth
    health       does it answer, take our credential, write
    server       the recorded server: check it, start it, stop it (lock held)
    users        which processes use it
    lease        acquire / revive / watchdog / release
    serve        ``queryleaf serve``
"""
