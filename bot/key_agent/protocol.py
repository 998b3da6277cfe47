"""Trust between the bot and a key agent, in plain cryptography.

- Each side has an Ed25519 identity key; the agent also has an X25519 key for secrets sent to it.
- A job is a JSON object signed by the bot: id, the agent it is for (its id: a job signed for
  one agent is refused by every other, even of the same company), kind, company (USCC, or
  ``HALL`` for the service hall's agent), token serial, expiry, nonce, plain ``data`` (e.g. a
  certificate to write) and PINs sealed to the agent (ephemeral X25519, HKDF-SHA256,
  ChaCha20-Poly1305 with the job id as associated data), so nobody watching the connection, nor
  a relay, can read them.
- The agent accepts a job only with a good signature from the pinned bot key, for itself and
  its own company, not expired, and never run before (``JobJournal`` keeps ids and results on disk).
"""

import base64
import json
import math
import os
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KINDS = ("token_info", "reset_pin", "personalise", "request", "write_certificate")
HALL = "HALL"  # the company of the service hall's agent, which personalises blank UKEYs
SEALED = ("so_pin", "user_pin")  # the secrets a job may carry, each sealed to the agent
_RAW = {"encoding": serialization.Encoding.Raw, "format": serialization.PublicFormat.Raw}


# A successful job's answer carries the token read, and these jobs a request signed on it.
SIGNS_A_REQUEST = frozenset({"personalise", "request"})


def result_problem(message: object, kind: str) -> str | None:
    """What is wrong with an agent's answer to a ``kind`` job, or None when it has the shape
    the runner sends: ``{"id", "ok": bool, "code"?, "message"?, "token": {"serial": str, …}
    when ok, "csr": base64 when ok and the job signs a request}``."""
    if not isinstance(message, dict) or not isinstance(message.get("id"), str):
        return "not an answer to a job"
    if not isinstance(message.get("ok"), bool):
        return "ok missing"
    for text in ("code", "message"):
        if message.get(text) is not None and not isinstance(message[text], str):
            return f"{text} not text"
    if not message["ok"]:
        return None
    token = message.get("token")
    if not isinstance(token, dict) or not isinstance(token.get("serial"), str) \
            or not token["serial"].strip():
        return "token or its serial missing"
    certificates = token.get("certificates", [])
    if not isinstance(certificates, list) or not all(isinstance(c, dict) for c in certificates):
        return "certificates not a list of objects"
    if kind in SIGNS_A_REQUEST:
        csr = message.get("csr")
        try:
            x509.load_der_x509_csr(unb64(csr) if isinstance(csr, str) else b"")
        except ValueError:
            return "csr missing or not a certificate request"
    return None


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Refused(Exception):
    """A message that must not be acted on; ``code`` for logs and technicians."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class AgentKeys:
    """The agent's own keys: identity (Ed25519) and secrets (X25519)."""

    identity: Ed25519PrivateKey
    sealing: X25519PrivateKey

    @classmethod
    def generate(cls) -> "AgentKeys":
        return cls(Ed25519PrivateKey.generate(), X25519PrivateKey.generate())

    def public(self) -> dict[str, str]:
        return {"identity": b64(self.identity.public_key().public_bytes(**_RAW)),
                "sealing": b64(self.sealing.public_key().public_bytes(**_RAW))}

    def to_json(self) -> dict[str, str]:
        raw = {"encoding": serialization.Encoding.Raw,
               "format": serialization.PrivateFormat.Raw,
               "encryption_algorithm": serialization.NoEncryption()}
        return {"identity": b64(self.identity.private_bytes(**raw)),
                "sealing": b64(self.sealing.private_bytes(**raw))}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> "AgentKeys":
        return cls(Ed25519PrivateKey.from_private_bytes(unb64(data["identity"])),
                   X25519PrivateKey.from_private_bytes(unb64(data["sealing"])))

    def prove(self, challenge: str) -> str:
        """Answer the bot's challenge on connecting: a signature over it."""
        return b64(self.identity.sign(b"cadesk-agent-hello:" + unb64(challenge)))


def check_proof(agent_identity: str, challenge: str, proof: str) -> None:
    try:
        Ed25519PublicKey.from_public_bytes(unb64(agent_identity)).verify(
            unb64(proof), b"cadesk-agent-hello:" + unb64(challenge))
    except (InvalidSignature, ValueError):
        raise Refused("bad_proof", "密钥代理未能证明它持有绑定时的密钥") from None


def new_challenge() -> str:
    return b64(secrets.token_bytes(32))


def _box_key(shared: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)


def seal(recipient_sealing: str, secret: str, job_id: str) -> str:
    ephemeral = X25519PrivateKey.generate()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(unb64(recipient_sealing)))
    nonce = secrets.token_bytes(12)
    sealed = ChaCha20Poly1305(_box_key(shared, b"cadesk-seal")).encrypt(
        nonce, secret.encode(), job_id.encode())
    return b64(ephemeral.public_key().public_bytes(**_RAW) + nonce + sealed)


def unseal(keys: AgentKeys, sealed: str, job_id: str) -> str:
    try:
        data = unb64(sealed)
        ephemeral, nonce, box = data[:32], data[32:44], data[44:]
        shared = keys.sealing.exchange(X25519PublicKey.from_public_bytes(ephemeral))
        return ChaCha20Poly1305(_box_key(shared, b"cadesk-seal")).decrypt(
            nonce, box, job_id.encode()).decode()
    except (InvalidTag, ValueError, TypeError):
        raise Refused("bad_seal",
                      "任务中加密的密码被改动过，或不是发给本密钥代理的") from None


@dataclass
class BotKey:
    """The bot's signing key; agents pin its public half when they pair."""

    key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> "BotKey":
        return cls(Ed25519PrivateKey.generate())

    def public(self) -> str:
        return b64(self.key.public_key().public_bytes(**_RAW))

    def job(self, *, agent: str, kind: str, company: str, token_serial: str | None,
            agent_sealing: str,
            lifetime_seconds: float, so_pin: str | None = None, user_pin: str | None = None,
            data: dict[str, Any] | None = None, now: float | None = None,
            job_id: str | None = None) -> dict[str, Any]:
        if kind not in KINDS:
            raise ValueError(kind)
        job_id = job_id or b64(secrets.token_bytes(16))
        body: dict[str, Any] = {
            "id": job_id, "agent": agent, "kind": kind, "company": company,
            "token_serial": token_serial,
            "expires_at": (now or time.time()) + lifetime_seconds,
            "nonce": b64(secrets.token_bytes(16)),
            "so_pin": seal(agent_sealing, so_pin, job_id) if so_pin is not None else None}
        if user_pin is not None:
            body["user_pin"] = seal(agent_sealing, user_pin, job_id)
        if data:
            body["data"] = data
        return {**body, "signature": b64(self.key.sign(canonical(body)))}


class JobJournal:
    """Every job this agent accepted, on disk before it runs, with its result once done.

    A job sent again (the bot lost the answer) gets the stored result; a job that was started
    but never finished (the agent died) reports ``interrupted`` and is not run again; another
    job reusing an id is a replay.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._jobs: dict[str, dict[str, Any]] = (
            json.loads(path.read_text(encoding="utf-8")) if path.exists() else {})

    def earlier(self, job: dict[str, Any]) -> dict[str, Any] | None:
        """What became of this very job before, or None when it is new."""
        entry = self._jobs.get(str(job.get("id")))
        if entry is None:
            return None
        if entry["digest"] != _digest(job):
            raise Refused("replay", f"任务编号 {job.get('id')} 已用过（重放）")
        if entry.get("result") is not None:
            return entry["result"]
        return {"id": job["id"], "ok": False, "code": "interrupted",
                "message": "密钥代理在执行中断开，任务未重做，请技术人员确认 UKEY 状态后重新安排"}

    def begin(self, job: dict[str, Any], now: float) -> None:
        self._jobs = {k: v for k, v in self._jobs.items() if v["expires_at"] > now - 86400}
        self._jobs[str(job["id"])] = {"digest": _digest(job),
                                      "expires_at": float(job["expires_at"]), "result": None}
        self._write()

    def finish(self, job_id: str, result: dict[str, Any]) -> None:
        self._jobs[job_id]["result"] = result
        self._write()

    def _write(self) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".journal-")
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(self._jobs, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, self.path)


def _digest(job: dict[str, Any]) -> str:
    return b64(hashes_sha256(canonical(job)))


def hashes_sha256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


@dataclass
class VerifiedJob:
    id: str
    kind: str
    company: str
    token_serial: str | None
    so_pin: str | None
    user_pin: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


def verify_job(job: dict[str, Any], *, bot_public: str, agent: str, company: str,
               keys: AgentKeys, now: float | None = None) -> VerifiedJob:
    """Everything an agent checks about a job itself, before anything else happens."""
    now = time.time() if now is None else now
    if not isinstance(job, dict):
        raise Refused("bad_job", "任务格式不对（应为 JSON 对象）")
    body = {k: v for k, v in job.items() if k != "signature"}
    try:
        Ed25519PublicKey.from_public_bytes(unb64(bot_public)).verify(
            unb64(str(job.get("signature", ""))), canonical(body))
    except (InvalidSignature, ValueError):
        raise Refused("bad_signature", "任务不是绑定的服务签发的（签名不对）") from None
    if body.get("kind") not in KINDS:
        raise Refused("bad_kind", f"未知的任务类型 {body.get('kind')!r}")
    if not isinstance(body.get("id"), str) or not body["id"]:
        raise Refused("bad_job", "任务缺少编号")
    if not isinstance(body.get("data") or {}, dict):
        raise Refused("bad_job", "任务的数据格式不对")
    try:
        expires_at = float(body.get("expires_at", 0))
    except (TypeError, ValueError):
        raise Refused("bad_job", "任务的有效期格式不对") from None
    if body.get("kind") != "token_info" and not body.get("token_serial"):
        raise Refused("bad_job", "改动 UKEY 的任务须写明 UKEY 卡号")
    needs = {"reset_pin": ("so_pin",), "personalise": ("so_pin", "user_pin")}.get(body["kind"], ())
    if not all(body.get(name) for name in needs):
        raise Refused("bad_job", f"{body['kind']} 任务缺少 {'、'.join(needs)}")
    if body["kind"] == "write_certificate" and not (body.get("data") or {}).get("certificate"):
        raise Refused("bad_job", "写入证书的任务缺少证书")
    if body.get("agent") != agent:  # jobs signed before the binding carry no agent: refused
        raise Refused("wrong_agent", "任务是发给另一个密钥代理的")
    if body.get("company") != company:
        raise Refused("wrong_company", "任务属于另一个单位")
    if not math.isfinite(expires_at) or expires_at <= now:  # NaN would never expire
        raise Refused("expired", "任务已过期")
    pins = {name: unseal(keys, body[name], body["id"]) if body.get(name) else None
            for name in SEALED}
    return VerifiedJob(body["id"], body["kind"], body["company"], body.get("token_serial"),
                       pins["so_pin"], pins["user_pin"], dict(body.get("data") or {}))
