"""The key agent as the applicant's PC runs it: ``cadesk-agent pair`` and ``run`` as processes
of their own, on a SoftHSM2 token."""

import asyncio
import os
import sys
from pathlib import Path

from tests.support.softhsm import MODULE


async def start_agent(agent_dir: Path, port: int, code: str | None, softhsm_conf: Path,
                      env: dict[str, str]) -> asyncio.subprocess.Process:
    """Pair (when given a code) and start ``cadesk-agent run --unattended`` as its own process."""
    agent_env = {**os.environ, "SOFTHSM2_CONF": str(softhsm_conf), **env}
    if code is not None:
        paired = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.key_agent.cli", "pair", "--server",
            f"http://127.0.0.1:{port}", "--code", code, "--module", MODULE,
            cwd=agent_dir, env=agent_env)
        assert await paired.wait() == 0
    with (agent_dir / "agent.log").open("ab") as agent_log:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.key_agent.cli", "run", "--unattended",
            cwd=agent_dir, env=agent_env, stdout=agent_log, stderr=asyncio.subprocess.STDOUT)
