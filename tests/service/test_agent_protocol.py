"""Trust between bot and agent: every forgery, replay and mix-up is refused before a token is
touched, and a reset job works end to end on a SoftHSM token with the derived SO PIN."""

import json
import time
from pathlib import Path

import pytest

from bot.key_agent.protocol import (
    AgentKeys,
    BotKey,
    JobJournal,
    Refused,
    b64,
    canonical,
    check_proof,
    new_challenge,
    unb64,
    verify_job,
)
from bot.key_agent.token import TokenError, TokenWorker
from bot.services.agents.so_pins import load_master, so_pin_for
from tests.support.softhsm import MODULE, USER_PIN, new_token, softhsm

COMPANY = "91371302MA3C4XYZ8K"
AGENT_ID = "7"


@pytest.fixture
def parties(tmp_path: Path):
    bot, agent = BotKey.generate(), AgentKeys.generate()
    return bot, agent, JobJournal(tmp_path / "journal.json")


def a_job(bot: BotKey, agent: AgentKeys, **changes) -> dict:
    options = {"agent": AGENT_ID, "kind": "reset_pin", "company": COMPANY, "token_serial": "abc",
               "agent_sealing": agent.public()["sealing"], "lifetime_seconds": 600,
               "so_pin": "123412341234", **changes}
    return bot.job(**options)


def verify(job: dict, bot: BotKey, agent: AgentKeys, **changes):
    options = {"bot_public": bot.public(), "agent": AGENT_ID, "company": COMPANY, "keys": agent,
               **changes}
    return verify_job(job, **options)


def refused(code: str, job: dict, bot: BotKey, agent: AgentKeys, **changes):
    with pytest.raises(Refused) as error:
        verify(job, bot, agent, **changes)
    assert error.value.code == code


def test_a_good_job_is_accepted_and_its_secret_opened(parties) -> None:
    bot, agent, _ = parties
    job = verify(a_job(bot, agent), bot, agent)
    assert (job.kind, job.company, job.token_serial, job.so_pin) == (
        "reset_pin", COMPANY, "abc", "123412341234")


def test_the_so_pin_is_not_readable_on_the_wire(parties) -> None:
    bot, agent, _ = parties
    assert "123412341234" not in json.dumps(a_job(bot, agent))


def test_forged_and_altered_jobs_are_refused(parties) -> None:
    bot, agent, _ = parties
    impostor = BotKey.generate()
    refused("bad_signature", a_job(impostor, agent), bot, agent)
    altered = {**a_job(bot, agent), "token_serial": "another-token"}
    refused("bad_signature", altered, bot, agent)
    refused("bad_signature", {**a_job(bot, agent), "signature": ""}, bot, agent)


def test_expired_wrong_company_and_foreign_agent(parties) -> None:
    bot, agent, _ = parties
    refused("expired", a_job(bot, agent, now=time.time() - 3600), bot, agent)
    refused("wrong_company", a_job(bot, agent, company="91110000000000000X"), bot, agent)
    other_agent = AgentKeys.generate()
    refused("bad_seal", a_job(bot, other_agent), bot, agent)  # sealed for someone else


def test_the_journal_across_a_restart(parties, tmp_path: Path) -> None:
    bot, agent, journal = parties
    done, cut_short = a_job(bot, agent), a_job(bot, agent)
    for job in (done, cut_short):
        journal.begin(job, time.time())
    journal.finish(done["id"], {"id": done["id"], "ok": True})
    restarted = JobJournal(tmp_path / "journal.json")  # the agent process died here
    assert restarted.earlier(done) == {"id": done["id"], "ok": True}  # sent again: same answer
    assert restarted.earlier(cut_short)["code"] == "interrupted"  # never run a second time
    reused_id = a_job(bot, agent, job_id=done["id"])
    with pytest.raises(Refused) as refusal:
        restarted.earlier(reused_id)
    assert refusal.value.code == "replay"
    assert restarted.earlier(a_job(bot, agent)) is None


def test_the_agent_proves_its_key_on_connecting(parties) -> None:
    _, agent, _ = parties
    challenge = new_challenge()
    check_proof(agent.public()["identity"], challenge, agent.prove(challenge))
    with pytest.raises(Refused):
        check_proof(agent.public()["identity"], new_challenge(), agent.prove(challenge))
    with pytest.raises(Refused):
        check_proof(AgentKeys.generate().public()["identity"], challenge, agent.prove(challenge))


def test_agent_keys_survive_a_save_and_load(parties) -> None:
    _, agent, _ = parties
    again = AgentKeys.from_json(json.loads(json.dumps(agent.to_json())))
    assert again.public() == agent.public()
    assert unb64(b64(b"\x00\xff")) == b"\x00\xff"


def test_so_pins_are_derived_per_token_and_never_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    master = bytes(range(32))
    assert so_pin_for(master, "serial-1") == so_pin_for(master, "serial-1")
    assert so_pin_for(master, "serial-1") != so_pin_for(master, "serial-2")
    assert so_pin_for(master, "serial-1").isdigit()
    monkeypatch.setenv("CADESK_SO_MASTER", master.hex())
    assert load_master() == master
    monkeypatch.setenv("CADESK_SO_MASTER", "00" * 8)
    with pytest.raises(RuntimeError, match="at least 32 bytes"):
        load_master()


async def test_a_signed_reset_job_resets_a_real_token(parties) -> None:
    bot, agent, _ = parties
    master, wrong_master = bytes(range(32, 64)), bytes(range(64, 96))
    with softhsm():
        token = new_token("ukey-job", so_pin="00000000")
        token.set_so_pin("00000000", so_pin_for(master, token.serial))  # as the CA side does
        worker = TokenWorker(MODULE)
        try:
            stale = verify(a_job(bot, agent, token_serial=token.serial,
                                 so_pin=so_pin_for(wrong_master, token.serial)),
                           bot, agent)
            with pytest.raises(TokenError, match="不正确"):
                await worker.reset_pin(stale.token_serial, stale.so_pin, "24681357")
            assert token.login_works(USER_PIN)  # a wrong SO PIN changed nothing

            job = verify(a_job(bot, agent, token_serial=token.serial,
                               so_pin=so_pin_for(master, token.serial)), bot, agent)
            await worker.reset_pin(job.token_serial, job.so_pin, "24681357")
            assert not token.login_works(USER_PIN)
            assert token.login_works("24681357")
        finally:
            worker.close()


@pytest.mark.parametrize("mangle", [
    lambda job: ["not", "a", "job"],
    lambda job: {**job, "id": 7},
    lambda job: {**job, "data": ["x"]},
    lambda job: {**job, "expires_at": "soon"},
    lambda job: {**job, "expires_at": float("nan")},
    lambda job: {**job, "so_pin": "AAAA"},
])
def test_malformed_jobs_signed_by_the_bot_are_refused_not_crashed(mangle) -> None:
    """Even a job the bot itself signed (a bug on its side) is refused with a code, never an
    exception in the agent, and a NaN expiry is not 'never'."""
    bot, keys = BotKey.generate(), AgentKeys.generate()
    job = bot.job(agent=AGENT_ID, kind="reset_pin", company=COMPANY, token_serial="abc",
                  agent_sealing=keys.public()["sealing"], lifetime_seconds=60, so_pin="1")
    body = mangle({k: v for k, v in job.items() if k != "signature"})
    if isinstance(body, dict):
        body["signature"] = b64(bot.key.sign(canonical(body)))
    with pytest.raises(Refused):
        verify_job(body, bot_public=bot.public(), agent=AGENT_ID, company=COMPANY, keys=keys)
