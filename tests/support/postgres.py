"""A throwaway PostgreSQL server for the tests: initdb in a temp dir, loopback only."""

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.helpers import free_port


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run scripts/test (installs it as root)")
    return Path(found[-1]).parent


def _as_owner(argv: list[str]) -> list[str]:
    # the server refuses to run as root; Debian's package brings a postgres user
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def postgres_server() -> Iterator[Callable[[], str]]:
    """Start a server; yield a function that creates an empty database and returns its URL."""
    bin_dir, port = _binaries(), free_port()
    root = Path(tempfile.mkdtemp(prefix="cadesk-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
    data = root / "data"
    subprocess.run(_as_owner([str(bin_dir / "initdb"), "-D", str(data), "-U", "cadesk",
                              "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"]),
                   check=True, capture_output=True)
    server = subprocess.Popen(_as_owner([str(bin_dir / "postgres"), "-D", str(data),
                                         "-p", str(port), "-k", str(root),
                                         "-h", "127.0.0.1", "-c", "fsync=off"]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            ready = subprocess.run([str(bin_dir / "pg_isready"), "-h", "127.0.0.1",
                                    "-p", str(port)], capture_output=True)
            if ready.returncode == 0:
                break
            time.sleep(0.05)
        names = itertools.count(1)

        def new_database() -> str:
            name = f"cadesk_{next(names)}"
            subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                            "-U", "cadesk", name], check=True, capture_output=True)
            return f"postgresql+asyncpg://cadesk@127.0.0.1:{port}/{name}"

        yield new_database
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(root, ignore_errors=True)
