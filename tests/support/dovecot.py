"""A real Dovecot IMAP server on loopback for the tests: plain auth, a passwd-file user, maildir
in a temporary directory. Started and stopped by the tests themselves."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.helpers import free_port

DOVECOT, DOVEADM = "/usr/sbin/dovecot", "/usr/bin/doveadm"
NOBODY = 65534  # the mail files' owner


@dataclass
class Dovecot:
    port: int
    user: str
    password: str
    config: Path
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        """The server goes away (its mail stays): connections refused until ``start``."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(15)
            self.process = None

    def start(self) -> None:
        """The same server, on the same port with the same mail, running (again)."""
        if self.process is None:
            self.process = _launch(self.config, self.port)

    def deliver(self, raw: bytes, folder: str = "INBOX") -> None:
        """Put a mail in a folder, as the MTA would."""
        subprocess.run([DOVEADM, "-c", str(self.config), "save", "-u", self.user, "-m", folder],
                       input=raw, check=True, capture_output=True)

    def folder(self, name: str) -> list[str]:
        """The flags of each mail in a folder (doveadm, independently of the bot)."""
        result = subprocess.run(
            [DOVEADM, "-c", str(self.config), "fetch", "-u", self.user, "flags",
             "mailbox", name], capture_output=True, text=True, check=False)
        return [line.removeprefix("flags: ").strip() for line in result.stdout.splitlines()
                if line.startswith("flags:")]


CONFIG = """
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u/Maildir
first_valid_uid = {uid}
passdb {{
  driver = passwd-file
  args = {root}/users
}}
userdb {{
  driver = passwd-file
  args = {root}/users
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
"""


@contextmanager
def dovecot_server(user: str = "unlock@example.test", password: str = "secret",
                   tls: tuple[Path, Path] | None = None) -> Iterator[Dovecot]:
    """Plain IMAP on a free port; with ``tls`` (certificate, key): implicit TLS only."""
    if not os.path.exists(DOVECOT):
        raise RuntimeError("Dovecot is not installed: run scripts/test (installs it as root)")
    root = Path(tempfile.mkdtemp(prefix="cadesk-dovecot-"))
    root.chmod(0o755)  # Dovecot's auth process runs as its own user and reads the users file
    port = free_port()
    uid = NOBODY if os.geteuid() == 0 else os.geteuid()
    (root / "mail").mkdir()
    (root / "users").write_text(
        f"{user}:{{PLAIN}}{password}:{uid}:{uid}::{root}/mail/{user}::\n", encoding="utf-8")
    config = root / "dovecot.conf"
    ssl_settings = (f"ssl = required\nssl_cert = <{tls[0]}\nssl_key = <{tls[1]}" if tls
                    else "ssl = no")
    config.write_text(CONFIG.format(root=root, uid=uid, ssl=ssl_settings,
                                    imap_port=0 if tls else port, imaps_port=port if tls else 0),
                      encoding="utf-8")
    if os.geteuid() == 0:
        os.chown(root / "mail", NOBODY, NOBODY)
    server = Dovecot(port, user, password, config)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _launch(config: Path, port: int) -> subprocess.Popen[bytes]:
    """Dovecot in the foreground, once it accepts connections on ``port``."""
    root = config.parent
    server = subprocess.Popen([DOVECOT, "-F", "-c", str(config)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                log = (root / "dovecot.log").read_text(errors="replace") if (
                    root / "dovecot.log").exists() else ""
                raise RuntimeError(f"Dovecot did not start: {log}") from None
            time.sleep(0.02)


def mail_settings(dovecot: Dovecot, smtp_port: int, poll_seconds: float = 0.5,
                  mailbox_enabled: bool = True) -> str:
    """The [email] and [mailbox] sections of a bot.toml pointing at these test servers."""
    return f"""
[email]
enabled = true
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from_address = "{dovecot.user}"
poll_seconds = {poll_seconds}
[mailbox]
enabled = {"true" if mailbox_enabled else "false"}
host = "127.0.0.1"
port = {dovecot.port}
security = "none"
username = "{dovecot.user}"
password = "{dovecot.password}"
poll_seconds = {poll_seconds}
"""
