"""What the running bot holds: settings, database, scans, the services and background workers.

Started by the driver's start-up hook and stopped by its shutdown hook; plugins reach it through
the ``get_runtime`` dependency.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.adapters.chat_outbox import ChatOutbox
from bot.adapters.fetch import ChannelMedia, ImageFetcher
from bot.adapters.mail import MailOutbox
from bot.adapters.mailbox import MailboxPoller
from bot.adapters.metrics import Metrics
from bot.adapters.periodic import Periodic
from bot.adapters.scan_store import ScanStore
from bot.adapters.webhook_events import SharedEvents
from bot.config import Settings
from bot.services.agents.hub import AgentHub
from bot.services.agents.registry import AgentRegistry, load_bot_key
from bot.services.applications.dialogue import Dialogue
from bot.services.applications.paper_forms import PaperForms
from bot.services.certificates.chat import CertificateChat
from bot.services.certificates.jobs import CertificateJobs
from bot.services.certificates.office import CertificateOffice
from bot.services.channels import configured
from bot.services.group_mentions import GroupMentions
from bot.services.health import Health
from bot.services.notify import Notifier
from bot.services.ports import ChatChannel
from bot.services.retention.purge import Retention
from bot.services.review.desk import ReviewDesk
from bot.services.unlock.inbox import UnlockInbox
from storage.db import Database, restrict, restrict_sqlite_files, sqlite_file


@dataclass
class Runtime:
    settings: Settings
    db: Database
    scans: ScanStore
    fetcher: ImageFetcher
    mail: MailOutbox
    chat_outbox: ChatOutbox
    dialogue: Dialogue
    desk: ReviewDesk
    inbox: UnlockInbox
    poller: MailboxPoller
    agents: AgentRegistry
    hub: AgentHub
    sweeper: Periodic
    agent_jobs: Periodic  # [cluster]: started only when the database is shared
    certificates: CertificateChat | None  # None: [pki] is off
    pki_workers: list[Periodic]
    paper_forms: PaperForms
    health: Health
    metrics: Metrics
    retention: Retention
    purger: Periodic  # [retention]: started only when enabled
    # [cluster]: the webhook events taken by any process, and their hourly pruning
    webhook_events: SharedEvents | None = None
    pruner: Periodic | None = None
    # what a mention of the bot in another group than the staff's is answered
    group_mentions: GroupMentions = field(default_factory=GroupMentions)

    @classmethod
    async def start(cls, settings: Settings, chat: ChatChannel,
                    media: Sequence[ChannelMedia] = ()) -> "Runtime":
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        restrict(settings.data_dir, 0o700)  # it holds ID numbers and ID-card scans
        if (database := sqlite_file(settings.database_url)) is not None:
            restrict_sqlite_files(database)
        db = Database(settings.database_url, shared=settings.cluster.enabled)
        once = db.cluster.once  # a pass that must run in one process at a time
        await db.migrate()
        scans = ScanStore(settings.data_dir / "scans")
        fetcher = ImageFetcher(settings.scans.rules().max_bytes,
                               settings.scans.download_timeout_seconds, channels=media)
        mail = MailOutbox(db, settings.email, scans)
        mail.start()
        chat_outbox = ChatOutbox(db, settings.chat, chat, mail, configured(settings.channels))
        chat_outbox.start()
        notifier = Notifier(settings, db, chat_outbox, mail)
        inbox = UnlockInbox(settings, db, scans, notifier, mail)
        poller = MailboxPoller(settings.mailbox, inbox, db.cluster)
        if settings.mailbox.enabled:
            poller.start()
        agents = AgentRegistry(settings, db, load_bot_key(settings.data_dir), notifier)
        hub = AgentHub(settings, db, agents, notifier)
        sweeper = Periodic("token job expiry", once("token job expiry", hub.expire_due), 30)
        # [cluster]: jobs queued in another process for the agents connected to this one
        agent_jobs = Periodic("agent jobs", hub.sync, settings.cluster.agent_poll_seconds)
        if settings.agents.enabled:
            sweeper.start()
            if db.cluster.shared:
                agent_jobs.start()
        certificates, pki_workers = None, []
        if settings.pki.enabled:
            office = CertificateOffice(settings, db, notifier)
            await office.recover_crl()  # a change committed before a crash is published now
            steps = CertificateJobs(settings, db, office, hub, notifier)
            hub.certificate_steps = steps  # the hub hands certificate jobs' results back
            certificates = CertificateChat(office, steps)
            pki_workers = [
                Periodic("CRL", once("CRL", office.refresh_crl), 300),
                Periodic("expiry reminders", once("expiry reminders", office.send_reminders),
                         settings.pki.reminder_check_minutes * 60)]
            for worker in pki_workers:
                worker.start()
        paper_forms = PaperForms(settings)
        health = Health(settings, db, chat, poller.progress, hub)
        retention = Retention(settings, db, scans, notifier)
        purger = Periodic("retention", once("retention", retention.run),
                          settings.retention.check_hours * 3600)
        if settings.retention.enabled:
            purger.start()
        webhook_events = pruner = None
        if db.cluster.shared:
            webhook_events = SharedEvents(db)
            pruner = Periodic("webhook events", once("webhook events", webhook_events.prune),
                              3600)
            pruner.start()
        return cls(settings, db, scans, fetcher, mail, chat_outbox,
                   Dialogue(settings, db, scans, fetcher, notifier, agents, hub, paper_forms,
                            certificates, default_region=settings.centre.city),
                   ReviewDesk(settings, db, scans, fetcher, notifier, agents, hub, certificates,
                              health),
                   inbox, poller, agents, hub, sweeper, agent_jobs, certificates, pki_workers,
                   paper_forms,
                   health, Metrics(health), retention, purger, webhook_events, pruner)

    async def stop(self) -> None:
        if self.pruner is not None:
            await self.pruner.stop()
        await self.purger.stop()
        for worker in self.pki_workers:
            await worker.stop()
        await self.sweeper.stop()
        await self.agent_jobs.stop()
        await self.hub.hellos.stop()
        await self.poller.stop()
        await self.mail.stop()
        await self.chat_outbox.stop()
        await self.fetcher.close()
        await self.dialogue.states.close()  # the answers being saved are kept
        await self.dialogue.reads.close()
        await self.db.close()


_current: Runtime | None = None


async def start_runtime(settings: Settings, chat: ChatChannel,
                        media: Sequence[ChannelMedia] = ()) -> Runtime:
    """``media``: the chat channels whose images are fetched their own way (WeChat's)."""
    global _current
    _current = await Runtime.start(settings, chat, media)
    return _current


async def stop_runtime() -> None:
    global _current
    if _current is not None:
        await _current.stop()
        _current = None


def running() -> Runtime | None:
    """The runtime, or None before start-up finished (or after shutdown)."""
    return _current


def get_runtime() -> Runtime:
    if _current is None:
        raise RuntimeError("the cadesk runtime is not started")
    return _current
