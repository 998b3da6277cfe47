"""The unlock mailbox under test: a runtime's configuration against the test servers, a poller
as after a restart, counting rows."""

from typing import Any

from sqlalchemy import func, select

from bot.adapters.mailbox import MailboxPoller
from bot.runtime import Runtime
from tests.support.dovecot import Dovecot, mail_settings
from tests.support.smtp_sink import SmtpSink


def unlock_desk_config(dovecot: Dovecot, smtp: SmtpSink) -> str:
    """bot.toml for a technician, the mail servers, and the poller left to the test (off)."""
    return f"""
[staff]
technicians = ["qq:900001"]
{mail_settings(dovecot, smtp.port, 0.2, mailbox_enabled=False)}
human_folder = "待人工处理"
replies_per_sender_per_hour = 3
"""


def poller_of(runtime: Runtime) -> MailboxPoller:
    """A fresh poller, as after a restart: it knows only what the database knows."""
    return MailboxPoller(runtime.settings.mailbox, runtime.inbox)


async def count(runtime: Runtime, model: Any) -> int:
    """How many rows the table of ``model`` holds."""
    async with runtime.db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(model))
