"""``python -m pidfs_fuse.mount``: the background server process started by ``pidfs-fuse mount``
(``client.spawn_server``); see ``main``."""

from .main import server_main

if __name__ == "__main__":
    raise SystemExit(server_main())
