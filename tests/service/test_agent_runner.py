"""The agent's job runner on a SoftHSM token: one good reset, and every bad job refused with
the token untouched (checked with OpenSC)."""

import time
from pathlib import Path

import pytest

from bot.key_agent.config import AgentConfig, PairedState
from bot.key_agent.protocol import AgentKeys, BotKey, JobJournal
from bot.key_agent.runner import JobRunner, ask_new_pin, new_pin_from_environment
from bot.key_agent.token import TokenWorker
from bot.services.agents.so_pins import so_pin_for
from tests.support.softhsm import MODULE, USER_PIN, SoftToken, new_token, softhsm

COMPANY, OTHER = "91371302MA3C4XYZ8K", "91110000MA01ABCD2X"
MASTER = bytes(range(100, 132))
NEW_PIN = "24681357"


@pytest.fixture
def setting(tmp_path: Path):
    with softhsm():
        token = new_token("ukey", so_pin="00000000")
        token.set_so_pin("00000000", so_pin_for(MASTER, token.serial))
        bot = BotKey.generate()
        state = PairedState("agent-1", COMPANY, bot.public(), AgentKeys.generate())
        worker = TokenWorker(MODULE)
        asked: list[str] = []

        def new_pin() -> str:
            asked.append(NEW_PIN)
            return NEW_PIN

        runner = JobRunner(state, worker, JobJournal(tmp_path / "journal.json"), new_pin)
        runner.asked = asked
        yield bot, state, token, runner
        worker.close()


def reset_job(bot: BotKey, state: PairedState, token: SoftToken, **changes) -> dict:
    options = {"agent": state.agent_id, "kind": "reset_pin", "company": COMPANY,
               "token_serial": token.serial,
               "agent_sealing": state.keys.public()["sealing"], "lifetime_seconds": 600,
               "so_pin": so_pin_for(MASTER, token.serial), **changes}
    return bot.job(**options)


async def test_a_good_job_resets_the_pin_once_even_if_sent_twice(setting) -> None:
    bot, state, token, runner = setting
    job = reset_job(bot, state, token)
    result = await runner.run(job)
    assert result["ok"], result
    assert await runner.run(job) == result  # the bot lost the answer and sent the job again
    assert len(runner.asked) == 1  # the person was asked for a PIN once
    assert result["token"]["serial"] == token.serial
    assert not token.login_works(USER_PIN)
    assert token.login_works(NEW_PIN)


@pytest.mark.parametrize(("attack", "code"), [
    ("forged", "bad_signature"), ("expired", "expired"), ("other company", "wrong_company"),
    ("wrong token", "wrong_token"), ("replayed", "replay"),
])
async def test_bad_jobs_leave_the_token_untouched(setting, attack: str, code: str) -> None:
    bot, state, token, runner = setting
    job = {
        "forged": lambda: reset_job(BotKey.generate(), state, token),
        "expired": lambda: reset_job(bot, state, token, now=time.time() - 3600),
        "other company": lambda: reset_job(bot, state, token, company=OTHER),
        "wrong token": lambda: reset_job(bot, state, token, token_serial="0000000000000000"),
        "replayed": lambda: reset_job(bot, state, token, job_id="same"),
    }[attack]()
    if attack == "replayed":  # it ran once, as a token_info job with the same id
        first = bot.job(agent=state.agent_id, kind="token_info", company=COMPANY,
                        token_serial=token.serial,
                        agent_sealing=state.keys.public()["sealing"], lifetime_seconds=600,
                        job_id="same")
        assert (await runner.run(first))["ok"]
    result = await runner.run(job)
    assert (result["ok"], result["code"]) == (False, code)
    assert token.login_works(USER_PIN)
    assert not token.login_works(NEW_PIN)


async def test_token_info_job_reports_the_token(setting) -> None:
    bot, state, _, runner = setting
    job = bot.job(agent=state.agent_id, kind="token_info", company=COMPANY, token_serial=None,
                  agent_sealing=state.keys.public()["sealing"], lifetime_seconds=60)
    result = await runner.run(job)
    assert result["ok"]
    assert result["token"]["label"] == "ukey"
    assert result["token"]["pin"]["initialized"]


def test_the_new_pin_is_asked_twice_until_both_match(capsys: pytest.CaptureFixture) -> None:
    answers = iter(["12", "123456", "654321", "123456", "123456"])
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return next(answers)

    assert ask_new_pin(prompt) == "123456"
    assert asked == ["请输入新密码：", "请输入新密码：", "请再次输入新密码：", "请输入新密码：",
                     "请再次输入新密码："]
    said = capsys.readouterr().out
    assert "至少 4 位" in said
    assert "两次输入的新密码不一致" in said


def test_unattended_pin_and_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADESK_AGENT_NEW_PIN", "777777")
    assert new_pin_from_environment() == "777777"
    monkeypatch.delenv("CADESK_AGENT_NEW_PIN")
    (tmp_path / "pin").write_text("888888\n", encoding="utf-8")
    monkeypatch.setenv("CADESK_AGENT_PIN_FILE", str(tmp_path / "pin"))
    assert new_pin_from_environment() == "888888"
    (tmp_path / "agent.toml").write_text(
        'server = "https://bot.example.test"\nmodule = "C:\\\\ukey\\\\vendor.dll"\n',
        encoding="utf-8")
    config = AgentConfig.load(tmp_path / "agent.toml")
    assert config.state_file == tmp_path / "agent-state.json"
    state = PairedState("a", COMPANY, BotKey.generate().public(), AgentKeys.generate())
    state.save(config.state_file)
    assert config.state_file.stat().st_mode & 0o077 == 0
    assert PairedState.load(config.state_file).keys.public() == state.keys.public()


async def test_no_new_pin_fails_the_job_and_leaves_the_token(setting) -> None:
    bot, state, token, runner = setting

    def nobody_there() -> str:
        raise RuntimeError("no new PIN given")

    runner.new_pin = nobody_there
    result = await runner.run(reset_job(bot, state, token))
    assert (result["ok"], result["code"]) == (False, "no_new_pin")
    assert token.login_works(USER_PIN)


async def test_a_job_signed_for_another_agent_is_refused(setting, tmp_path: Path) -> None:
    """Agent 2 of the same company, even holding the PINs sealed to its own key, refuses a job
    the bot signed for agent 1: the agent's id is in the signed body."""
    bot, first, token, _ = setting
    second = PairedState("agent-2", COMPANY, bot.public(), AgentKeys.generate())
    runner = JobRunner(second, TokenWorker(MODULE), JobJournal(tmp_path / "journal-2.json"),
                       lambda: NEW_PIN)
    for_first = reset_job(bot, second, token, agent=first.agent_id)  # sealed to agent 2's key
    try:
        result = await runner.run(for_first)
        assert (result["ok"], result["code"]) == (False, "wrong_agent")
        assert token.login_works(USER_PIN)
        assert not token.login_works(NEW_PIN)
        assert not (tmp_path / "journal-2.json").exists()  # refused before anything was kept
        mine = await runner.run(reset_job(bot, second, token, agent=second.agent_id))
        assert mine["ok"], mine
    finally:
        runner.worker.close()
