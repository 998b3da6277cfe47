"""The agent's own small configuration file (agent.toml) and its paired state.

agent.toml says where the bot is and which PKCS#11 module drives the UKEY (on Windows, the
vendor's DLL). The state file holds the agent's private keys and the bot key it pinned when it
paired; it is written owner-readable only.
"""

import json
import os
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from bot.key_agent.protocol import AgentKeys


@dataclass
class AgentConfig:
    server: str  # e.g. https://bot.example.com
    module: str  # PKCS#11 library: /usr/lib/softhsm/libsofthsm2.so, C:\\Windows\\System32\\x.dll
    state_file: Path
    job_timeout_seconds: float = 300
    # Only the service hall's agent, which personalises blank UKEYs: their vendor's SO PIN.
    factory_so_pin: str | None = None

    @classmethod
    def load(cls, path: Path) -> "AgentConfig":
        with path.open("rb") as file:
            raw = tomllib.load(file)
        state = Path(raw.get("state_file", "agent-state.json"))
        return cls(server=raw["server"], module=raw["module"],
                   state_file=state if state.is_absolute() else path.parent / state,
                   job_timeout_seconds=float(raw.get("job_timeout_seconds", 300)),
                   factory_so_pin=os.environ.get("CADESK_AGENT_FACTORY_SO_PIN")
                   or raw.get("factory_so_pin"))


@dataclass
class PairedState:
    agent_id: str
    company: str  # USCC of the company the agent serves
    bot_public: str  # the bot's Ed25519 key, pinned at pairing
    keys: AgentKeys

    def save(self, path: Path) -> None:
        data = {"agent_id": self.agent_id, "company": self.company,
                "bot_public": self.bot_public, "keys": self.keys.to_json()}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".agent-state-")
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(data, file)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> "PairedState":
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(data["agent_id"], data["company"], data["bot_public"],
                   AgentKeys.from_json(data["keys"]))
