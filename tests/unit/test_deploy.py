"""The service files a sysadmin installs (deploy/): the systemd units pass systemd's own check
and keep their hardening; the container recipe runs the bot as a non-root user with its data
on a volume and a health check."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = ("cadesk.service", "cadesk-backup.service", "cadesk-backup.timer")
HARDENING = ("NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/cadesk",
             "ProtectHome=yes", "PrivateTmp=yes", "CapabilityBoundingSet=\n", "User=cadesk",
             "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "UMask=0077")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    # the units name the installed virtualenv, /opt/cadesk/.venv; here, this one's Python
    for name in UNITS:
        text = (DEPLOY / name).read_text(encoding="utf-8")
        (tmp_path / name).write_text(text.replace("/opt/cadesk/.venv/bin/python", sys.executable),
                                     encoding="utf-8")
    result = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / n) for n in UNITS)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # a misspelt option is only a warning: none either


def test_the_service_is_hardened() -> None:
    unit = (DEPLOY / "cadesk.service").read_text(encoding="utf-8")
    for option in HARDENING:
        assert option in unit, option


def test_the_container_runs_unprivileged_with_a_data_volume_and_a_health_check() -> None:
    recipe = (DEPLOY / "Containerfile").read_text(encoding="utf-8")
    assert "FROM python:3.11-slim" in recipe
    assert "\nUSER cadesk\n" in recipe
    assert 'VOLUME ["/var/lib/cadesk"]' in recipe
    assert "HEALTHCHECK" in recipe
    assert "/healthz" in recipe
