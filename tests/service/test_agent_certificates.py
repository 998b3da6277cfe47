"""Certificate jobs on the agent (personalise a blank UKEY, request with the key on it, write a
certificate) on real SoftHSM2 tokens, checked independently with OpenSC's pkcs11-tool."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bot.key_agent.config import PairedState
from bot.key_agent.protocol import HALL, AgentKeys, BotKey, JobJournal, b64, unb64
from bot.key_agent.runner import JobRunner
from bot.key_agent.token import TokenWorker
from bot.services.agents.so_pins import so_pin_for
from tests.support.softhsm import MODULE, USER_PIN, SoftToken, new_token, opensc_objects, softhsm

MASTER = bytes(range(7, 39))
FACTORY_SO_PIN = "12345678"
INITIAL_PIN = "50617283"


@pytest.fixture
def hall(tmp_path: Path):
    """The service hall's agent with one blank UKEY (vendor-formatted, no keys, factory SO PIN)."""
    with softhsm():
        token = new_token("blank", so_pin=FACTORY_SO_PIN, pin="000000")
        bot = BotKey.generate()
        state = PairedState("hall-1", HALL, bot.public(), AgentKeys.generate())
        worker = TokenWorker(MODULE)
        runner = JobRunner(state, worker, JobJournal(tmp_path / "journal.json"),
                           new_pin=lambda: "unused", current_pin=lambda: INITIAL_PIN,
                           factory_so_pin=FACTORY_SO_PIN)
        yield bot, state, token, runner
        worker.close()


def job(bot: BotKey, state: PairedState, token: SoftToken, kind: str, **extra) -> dict:
    return bot.job(agent=state.agent_id, kind=kind, company=state.company,
                   token_serial=token.serial, agent_sealing=state.keys.public()["sealing"],
                   lifetime_seconds=600, **extra)


def sign(csr_der: bytes, days: int = 365) -> bytes:
    """A stand-in CA (the real one has its own tests): a certificate for the request's key."""
    csr = x509.load_der_x509_csr(csr_der)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name.from_rfc4514_string("CN=Test CA")
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(name)
            .public_key(csr.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + timedelta(days=days))
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))




async def test_personalise_makes_the_key_on_the_token_and_writes_its_certificate(hall) -> None:
    bot, state, token, runner = hall
    so_pin = so_pin_for(MASTER, token.serial)
    made = await runner.run(job(bot, state, token, "personalise", so_pin=so_pin,
                                user_pin=INITIAL_PIN, data={"common_name": "临沂测试有限公司"}))
    assert made["ok"], made
    csr = x509.load_der_x509_csr(unb64(made["csr"]))
    assert csr.is_signature_valid
    assert csr.public_key().key_size == 2048
    assert token.login_works(INITIAL_PIN)
    assert not token.login_works("000000")
    token.set_so_pin(so_pin, so_pin)  # OpenSC accepts the derived SO PIN: the factory one is gone

    der = sign(unb64(made["csr"]))
    written = await runner.run(job(bot, state, token, "write_certificate",
                                   data={"certificate": b64(der)}))
    assert written["ok"], written
    [cert] = written["token"]["certificates"]
    assert cert["serial_number"] == f"{x509.load_der_x509_certificate(der).serial_number:x}"
    listing = opensc_objects(token, INITIAL_PIN)
    private = listing[listing.index("Private Key Object"):].split("\n\n")[0]
    assert "never extractable" in private
    assert "sensitive" in private
    assert "Certificate Object" in listing

    again = await runner.run(job(bot, state, token, "personalise", so_pin=so_pin,
                                 user_pin="11112222", data={"common_name": "别的公司"}))
    assert (again["ok"], again["code"]) == (False, "not_blank")
    assert token.login_works(INITIAL_PIN)  # nothing changed


async def test_request_keeps_the_key_and_a_new_certificate_replaces_the_old(hall) -> None:
    bot, state, token, runner = hall
    made = await runner.run(job(bot, state, token, "personalise",
                                so_pin=so_pin_for(MASTER, token.serial), user_pin=INITIAL_PIN))
    await runner.run(job(bot, state, token, "write_certificate",
                         data={"certificate": b64(sign(unb64(made["csr"])))}))
    renewal = await runner.run(job(bot, state, token, "request"))
    assert renewal["ok"], renewal
    old_key = x509.load_der_x509_csr(unb64(made["csr"])).public_key()
    assert x509.load_der_x509_csr(unb64(renewal["csr"])).public_key() == old_key

    longer = sign(unb64(renewal["csr"]), days=730)
    written = await runner.run(job(bot, state, token, "write_certificate",
                                   data={"certificate": b64(longer)}))
    [cert] = written["token"]["certificates"]  # the old one is gone
    assert cert["not_after"] == x509.load_der_x509_certificate(longer).not_valid_after_utc \
        .isoformat()


async def test_a_certificate_for_another_key_is_not_written(hall) -> None:
    bot, state, token, runner = hall
    await runner.run(job(bot, state, token, "personalise",
                         so_pin=so_pin_for(MASTER, token.serial), user_pin=INITIAL_PIN))
    stranger = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name.from_rfc4514_string("CN=x")).sign(stranger, hashes.SHA256()))
    wrong = sign(csr.public_bytes(serialization.Encoding.DER))
    result = await runner.run(job(bot, state, token, "write_certificate",
                                  data={"certificate": b64(wrong)}))
    assert (result["ok"], result["code"]) == (False, "key_mismatch")
    assert "Certificate Object" not in opensc_objects(token, INITIAL_PIN)


async def test_a_wrong_pin_for_a_request_changes_nothing(hall) -> None:
    bot, state, token, runner = hall
    await runner.run(job(bot, state, token, "personalise",
                         so_pin=so_pin_for(MASTER, token.serial), user_pin=INITIAL_PIN))
    runner.current_pin = lambda: USER_PIN  # not this token's PIN
    result = await runner.run(job(bot, state, token, "request"))
    assert (result["ok"], result["code"]) == (False, "pin_incorrect")
    assert "UKEY 密码不正确" in result["message"]


async def test_an_agent_without_the_factory_pin_does_not_personalise(hall) -> None:
    bot, state, token, runner = hall
    runner.factory_so_pin = None  # an applicant's agent, not the hall's
    result = await runner.run(job(bot, state, token, "personalise",
                                  so_pin=so_pin_for(MASTER, token.serial), user_pin=INITIAL_PIN))
    assert (result["ok"], result["code"]) == (False, "not_a_hall_agent")
    assert token.login_works("000000")
