"""Assembling the nonebot application from settings: adapters, runtime hooks, plugins."""

import gc
import sys
from typing import Any

import nonebot
from loguru import logger
from nonebot import log as nonebot_log
from nonebot.adapters import Bot
from nonebot.adapters.console import Adapter as ConsoleAdapter
from nonebot.adapters.onebot.v11 import Adapter as OneBotAdapter

from bot.adapters import qq_official, wechat
from bot.adapters.chat_delivery import NonebotChat, platform_of
from bot.config import Settings
from bot.log_masking import install_log_masking
from bot.runtime import running, start_runtime, stop_runtime

PLUGINS = ("plugins.chat", "plugins.agents", "plugins.pki",  # chat loads review and applicant
           "plugins.forms", "plugins.health")


def nonebot_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``nonebot.init``: everything comes from bot.toml."""
    qqbot = "qqbot" in settings.bot.adapters
    driver = "~fastapi" if settings.serves_http else "~none"
    return {
        # the QQ bot also calls the platform's API: an HTTP client driver beside the server
        "driver": driver + "+~aiohttp" if qqbot else driver,
        "host": settings.server.host,
        "port": settings.server.port,
        "log_level": settings.bot.log_level,
        "command_start": ["/", ""],
        "nickname": [settings.bot.nickname],
        "onebot_access_token": settings.onebot.access_token or None,
        "fastapi_reload": False,
        "fastapi_docs_url": None,
        "fastapi_redoc_url": None,
        "fastapi_openapi_url": None,
    }


def log_at_level(level: str) -> None:
    """nonebot's console handler, taking records from ``level`` up. nonebot adds it at level 0
    and drops the lower records in its filter, so every debug and trace call of the framework
    (several per message) builds a record and runs the masking patcher only to be dropped; a
    handler at the configured level lets loguru return at once. Not with the Console, whose
    backend looks nonebot's handler up by the id it had at import (and draws its own window)."""
    logger.remove(nonebot_log.logger_id)
    nonebot_log.logger_id = logger.add(sys.stdout, level=level, diagnose=False,
                                       filter=nonebot_log.default_filter,
                                       format=nonebot_log.default_format)


def install(settings: Settings) -> None:
    """Register adapters, the runtime's start and stop, and the plugins (after nonebot.init)."""
    if "console" not in settings.bot.adapters:
        log_at_level(settings.bot.log_level)
    install_log_masking()
    driver = nonebot.get_driver()
    if "onebot" in settings.bot.adapters:
        driver.register_adapter(OneBotAdapter)
    if "console" in settings.bot.adapters:
        driver.register_adapter(ConsoleAdapter)
    if "qqbot" in settings.bot.adapters:
        qq_official.configure(driver.config, settings.qqbot)
        driver.register_adapter(qq_official.WebhookAdapter)
    media: list[wechat.WeChatApi] = []  # channels whose images the fetcher gets their way
    if "wechat" in settings.bot.adapters:
        media.append(wechat.WeChatApi(settings.wechat))
        driver.register_adapter(wechat.Adapter, settings=settings, api=media[-1])

    @driver.on_startup
    async def _start() -> None:
        runtime = await start_runtime(settings, NonebotChat(), media)
        # [cluster]: the platforms' retries checked across processes
        if "qqbot" in settings.bot.adapters:
            nonebot.get_adapter(qq_official.WebhookAdapter).shared = runtime.webhook_events
        if "wechat" in settings.bot.adapters:
            nonebot.get_adapter(wechat.Adapter).shared = runtime.webhook_events
        # what start-up built lives as long as the process: the collector need not walk it
        # again on every full collection while applicants talk
        gc.freeze()

    @driver.on_bot_connect
    async def _connected(bot: Bot) -> None:
        # notices that waited for this platform (the QQ connection was down) go out now; the
        # Console connects while start-up still runs, and the outbox's first pass at start
        # delivers what waited then
        if (runtime := running()) is not None:
            await runtime.chat_outbox.reconnected(platform_of(bot))

    @driver.on_shutdown
    async def _stop() -> None:
        await stop_runtime()

    for plugin in PLUGINS:
        nonebot.load_plugin(plugin)


def run(settings: Settings) -> None:
    nonebot.init(**nonebot_options(settings))
    install(settings)
    nonebot.run()
