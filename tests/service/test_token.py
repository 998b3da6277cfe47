"""The token layer against real SoftHSM2 tokens, checked independently with OpenSC."""

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pkcs11 import TokenFlag

from bot.key_agent.token import PinState, TokenError, TokenWorker
from bot.samples import fake_uscc
from tests.support.softhsm import MODULE, SO_PIN, USER_PIN, new_token, softhsm


@pytest.fixture
def worker():
    with softhsm():
        worker = TokenWorker(MODULE)
        yield worker
        worker.close()


def organisation_certificate(company: str, uscc: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, company),
                         x509.NameAttribute(NameOID.SERIAL_NUMBER, uscc)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(0x1234ABCD)
            .not_valid_before(now).not_valid_after(now + timedelta(days=365))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


async def test_token_info_reads_serial_pin_state_and_certificates(worker: TokenWorker) -> None:
    token = new_token("ukey-a")
    uscc = fake_uscc()
    token.write_certificate(organisation_certificate("临沂测试建设有限公司", uscc))
    info = await worker.info(token.serial)
    assert (info.serial, info.label, info.manufacturer) == (token.serial, "ukey-a",
                                                            "SoftHSM project")
    assert info.pin == PinState(initialized=True, locked=False, count_low=False, final_try=False)
    [cert] = info.certificates
    assert cert.organisation == "临沂测试建设有限公司"
    assert uscc in cert.subject
    assert cert.serial_number == "1234abcd"


async def test_a_token_plugged_in_after_start_is_found(worker: TokenWorker) -> None:
    first = new_token("ukey-first")
    assert (await worker.info(first.serial)).label == "ukey-first"
    second = new_token("ukey-second")  # inserted while the worker is running
    assert (await worker.info(second.serial)).label == "ukey-second"


async def test_reset_pin_with_the_so_pin_and_prove_it_with_opensc(worker: TokenWorker) -> None:
    token = new_token("ukey-reset")
    assert token.login_works(USER_PIN)
    info = await worker.reset_pin(token.serial, SO_PIN, "654321")
    assert info.pin.initialized
    assert not token.login_works(USER_PIN)  # the forgotten PIN no longer works
    assert token.login_works("654321")


async def test_a_wrong_so_pin_leaves_the_token_untouched(worker: TokenWorker) -> None:
    token = new_token("ukey-wrong-so")
    with pytest.raises(TokenError) as refused:
        await worker.reset_pin(token.serial, "00000000", "654321")
    assert refused.value.code == "so_pin_incorrect"
    assert "UKEY 未改动" in str(refused.value)
    assert token.login_works(USER_PIN)
    assert not token.login_works("654321")


async def test_a_new_pin_the_token_refuses(worker: TokenWorker) -> None:
    token = new_token("ukey-short")
    with pytest.raises(TokenError) as refused:
        await worker.reset_pin(token.serial, SO_PIN, "12")  # SoftHSM wants 4–255
    assert refused.value.code == "new_pin_invalid"
    assert token.login_works(USER_PIN)


async def test_another_serial_is_not_touched(worker: TokenWorker) -> None:
    token = new_token("ukey-mine")
    with pytest.raises(TokenError) as refused:
        await worker.reset_pin("0000000000000000", SO_PIN, "654321")
    assert refused.value.code == "token_not_found"
    assert token.login_works(USER_PIN)


def test_pin_flags_as_a_real_locked_ukey_reports_them() -> None:
    # SoftHSM 2.6 never locks a user PIN, so the locked state is tested where flags are read
    locked = PinState.from_flags(TokenFlag.USER_PIN_INITIALIZED | TokenFlag.USER_PIN_LOCKED)
    assert locked.locked
    assert locked.describe() == "用户 PIN 已锁定"
    last = PinState.from_flags(TokenFlag.USER_PIN_INITIALIZED | TokenFlag.USER_PIN_FINAL_TRY
                               | TokenFlag.USER_PIN_COUNT_LOW)
    assert last.describe() == "用户 PIN 只剩最后一次尝试"
    assert not PinState.from_flags(0).initialized
