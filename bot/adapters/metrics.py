"""``/metrics``: the health check's figures and the HTTP requests answered, in Prometheus' text
format (prometheus-client). Each runtime has its own registry, so two bots in one process (the
tests) count apart; the health figures are read when scraped, not kept."""

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.services.health import Health, HealthReport, OutboxHealth, Status

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self, health: Health) -> None:
        self.health = health
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "cadesk_http_requests", "HTTP requests answered, by route (as declared) and status",
            ["route", "method", "status"], registry=self.registry)
        self._report = _ReportCollector()
        self.registry.register(self._report)

    def count_request(self, route: str, method: str, status: int) -> None:
        self.requests.labels(route, method, str(status)).inc()

    async def render(self) -> bytes:
        """A fresh health check, and everything in the registry, as Prometheus text."""
        self._report.report = await self.health.check()
        # nothing awaits between the check and the rendering: a concurrent scrape cannot
        # swap the report in between
        return generate_latest(self.registry)


def _gauge(name: str, documentation: str, value: float | None = None,
           labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"cadesk_{name}", documentation, value=value, labels=labels)


class _ReportCollector(Collector):
    """Turns the latest health report into gauges."""

    report: HealthReport | None = None

    def describe(self) -> list[Metric]:
        return []  # the names depend on the configuration: none registered in advance

    def collect(self) -> Iterator[Metric]:
        report = self.report
        if report is None:
            return
        status = _gauge("status", "1 for the bot's overall status (ok, degraded, down)",
                        labels=["status"])
        for state in Status:
            status.add_metric([state.value], float(report.status is state))
        yield status
        yield _gauge("database_up", "1 when the database answered SELECT 1",
                     float(report.database))
        if report.database_seconds is not None:
            yield _gauge("database_ping_seconds", "How long SELECT 1 took",
                         report.database_seconds)
        chat = _gauge("chat_bots_connected", "Bots connected, per chat platform",
                      labels=["platform"])
        for platform, count in report.channels.items():
            chat.add_metric([platform], count)
        yield chat
        if (mailbox := report.mailbox) is not None:
            yield _gauge("mailbox_fresh", "1 while the unlock mailbox is read in time",
                         float(mailbox.fresh))
            if mailbox.last_success_at is not None:
                yield _gauge("mailbox_last_success_timestamp_seconds",
                             "When the unlock mailbox was last read to the end",
                             mailbox.last_success_at.timestamp())
            if mailbox.waiting is not None:
                yield _gauge("mailbox_waiting_mails", "Mails seen in the unlock mailbox and "
                             "not yet filed", mailbox.waiting)
        yield from _outboxes(report, {"mail": report.mail_outbox, "chat": report.chat_outbox})
        if (agents := report.agents) is not None:
            yield _gauge("agents_online", "Key agents connected", agents.online)
            yield _gauge("hall_agent_online", "1 while a service hall agent is connected",
                         float(agents.hall_online))
        if (crl := report.crl) is not None:
            yield _gauge("crl_number", "The newest CRL's number", crl.number)
            yield _gauge("crl_age_seconds", "Since the newest CRL was signed",
                         (report.checked_at - crl.issued_at).total_seconds())
            yield _gauge("crl_next_update_timestamp_seconds", "The newest CRL's nextUpdate",
                         crl.next_update.timestamp())


def _outboxes(report: HealthReport, boxes: dict[str, OutboxHealth | None]) -> Iterator[Metric]:
    known = {name: box for name, box in boxes.items() if box is not None}
    if not known:
        return
    waiting = _gauge("outbox_waiting", "Messages queued and not yet sent", labels=["outbox"])
    oldest = _gauge("outbox_oldest_seconds", "How long the oldest queued message has waited",
                    labels=["outbox"])
    for name, box in known.items():
        waiting.add_metric([name], box.waiting)
        age = 0.0 if box.oldest_at is None else (report.checked_at - box.oldest_at).total_seconds()
        oldest.add_metric([name], age)
    yield waiting
    yield oldest
