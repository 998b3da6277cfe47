"""The CA core (bot/pki) checked with the standard openssl command-line tool, not only with
cryptography: what relying parties will see is what openssl says."""

import datetime as dt
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pkcs11.util.ec import encode_ec_public_key
from pkcs11.util.rsa import encode_rsa_public_key

from bot.pki.ca import (
    CAError,
    CertificateAuthority,
    EmbeddedCA,
    OrgSubject,
    RevokedEntry,
    TokenKeyRef,
    crl_der,
    crl_pem,
    subject_of,
)
from bot.pki.token_key import open_token_key
from bot.samples import fake_uscc
from tests.support.softhsm import MODULE, USER_PIN, new_token, softhsm

CRL_URL = "http://cadesk.example.test/pki/crl"
COMPANY = "深圳市示例科技有限公司"
PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER


def openssl(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, check=check, timeout=30
    )


def write_pem(path: Path, item: x509.Certificate | x509.CertificateRevocationList) -> Path:
    path.write_bytes(item.public_bytes(PEM))
    return path


def make_csr(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, asked: str = "请求者自填"
) -> bytes:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, asked)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(DER)


def openssl_serial(serial: int) -> str:
    """How openssl prints a serial: upper-case hex, whole octets."""
    text = f"{serial:X}"
    return text.zfill(len(text) + len(text) % 2)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pki") / "ca"


@pytest.fixture(scope="module")
def ca(ca_dir: Path) -> EmbeddedCA:
    return EmbeddedCA.open(ca_dir, crl_url=CRL_URL)


@pytest.fixture(scope="module")
def ca_file(ca: EmbeddedCA, ca_dir: Path) -> Path:
    return write_pem(ca_dir.parent / "ca-for-openssl.pem", ca.certificate)


@pytest.fixture(scope="module")
def company() -> OrgSubject:
    return OrgSubject(company_name=COMPANY, uscc=fake_uscc())


def issue_for_a_year(
    ca: EmbeddedCA, key: rsa.RSAPrivateKey, company: OrgSubject
) -> x509.Certificate:
    start = now() - dt.timedelta(minutes=1)
    return ca.issue(make_csr(key), company, start, start + dt.timedelta(days=365))


def test_embedded_ca_satisfies_the_interface(ca: EmbeddedCA) -> None:
    assert isinstance(ca, CertificateAuthority)


def test_issued_certificate_chains_to_the_ca(
    ca: EmbeddedCA, ca_file: Path, rsa_key: rsa.RSAPrivateKey, company: OrgSubject, tmp_path: Path
) -> None:
    cert = write_pem(tmp_path / "org.pem", issue_for_a_year(ca, rsa_key, company))
    result = openssl("verify", "-CAfile", ca_file, "-purpose", "sslclient", cert)
    assert result.stdout.strip() == f"{cert}: OK"


def test_openssl_reads_the_profile(
    ca: EmbeddedCA, rsa_key: rsa.RSAPrivateKey, company: OrgSubject, tmp_path: Path
) -> None:
    start = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)
    end = dt.datetime(2027, 11, 1, 8, 0, tzinfo=dt.UTC)
    cert = write_pem(tmp_path / "org.pem", ca.issue(make_csr(rsa_key), company, start, end))
    text = openssl("x509", "-text", "-noout", "-nameopt", "oneline,-esc_msb", "-in", cert).stdout
    subject = next(line for line in text.splitlines() if "Subject:" in line)
    assert subject.strip() == (
        f"Subject: C = CN, O = {COMPANY}, organizationIdentifier = NTRCN-{company.uscc}, "
        f"CN = {COMPANY}"
    )
    assert "请求者自填" not in text  # the CSR's own subject is ignored
    assert "Not Before: Nov  1 08:00:00 2026 GMT" in text
    assert "Not After : Nov  1 08:00:00 2027 GMT" in text
    assert "X509v3 Basic Constraints: critical\n                CA:FALSE" in text
    assert (
        "X509v3 Key Usage: critical\n"
        "                Digital Signature, Non Repudiation, Key Encipherment"
    ) in text
    assert "TLS Web Client Authentication, E-mail Protection" in text
    assert f"URI:{CRL_URL}" in text
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert ca_ski.value.digest.hex(":").upper() in text.split("Authority Key Identifier")[1]
    assert "Signature Algorithm: ecdsa-with-SHA384" in text


def test_ec_subject_key_gets_no_key_encipherment(ca: EmbeddedCA, company: OrgSubject) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    start = now()
    cert = ca.issue(make_csr(key), company, start, start + dt.timedelta(days=30))
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature
    assert usage.content_commitment
    assert not usage.key_encipherment


def test_serials_are_positive_and_at_most_20_octets(
    ca: EmbeddedCA, rsa_key: rsa.RSAPrivateKey, company: OrgSubject
) -> None:
    serials = {issue_for_a_year(ca, rsa_key, company).serial_number for _ in range(5)}
    assert len(serials) == 5
    assert all(0 < serial < 2**159 for serial in serials)


def test_subject_is_read_back_from_the_certificate(
    ca: EmbeddedCA, rsa_key: rsa.RSAPrivateKey, company: OrgSubject
) -> None:
    assert subject_of(issue_for_a_year(ca, rsa_key, company)) == company
    assert subject_of(ca.certificate) is None  # no organizationIdentifier


def test_csr_with_a_broken_signature_is_refused(
    ca: EmbeddedCA, rsa_key: rsa.RSAPrivateKey, company: OrgSubject
) -> None:
    csr = bytearray(make_csr(rsa_key))
    csr[-1] ^= 0x01  # last byte of the signature value
    start = now()
    with pytest.raises(CAError, match="签名验证失败"):
        ca.issue(bytes(csr), company, start, start + dt.timedelta(days=365))


def test_weak_and_garbled_requests_are_refused(ca: EmbeddedCA, company: OrgSubject) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    start = now()
    with pytest.raises(CAError, match="RSA 密钥只有 1024 位，至少需要 2048 位"):
        ca.issue(make_csr(weak), company, start, start + dt.timedelta(days=365))
    with pytest.raises(CAError, match="格式无效"):
        ca.issue(b"not a CSR", company, start, start + dt.timedelta(days=365))


def test_bad_subject_and_validity_are_refused(
    ca: EmbeddedCA, rsa_key: rsa.RSAPrivateKey, company: OrgSubject
) -> None:
    csr, start = make_csr(rsa_key), now()
    year = start + dt.timedelta(days=365)
    with pytest.raises(CAError, match="统一社会信用代码"):
        ca.issue(csr, OrgSubject(COMPANY, "91440300MA5F00000X"), start, year)
    with pytest.raises(CAError, match="公司名称为空"):
        ca.issue(csr, OrgSubject("  ", company.uscc), start, year)
    with pytest.raises(CAError, match="截止时间必须晚于起始时间"):
        ca.issue(csr, company, year, start)
    with pytest.raises(CAError, match="CA 证书本身的有效期"):
        ca.issue(csr, company, start, ca.certificate.not_valid_after_utc + dt.timedelta(days=1))


def test_renewal_keeps_the_key_and_moves_the_expiry(
    ca: EmbeddedCA, ca_file: Path, rsa_key: rsa.RSAPrivateKey, company: OrgSubject, tmp_path: Path
) -> None:
    old = issue_for_a_year(ca, rsa_key, company)
    new_expiry = old.not_valid_after_utc + dt.timedelta(days=365)
    renewed = ca.issue(make_csr(rsa_key), company, now(), new_expiry)
    old_file = write_pem(tmp_path / "old.pem", old)
    new_file = write_pem(tmp_path / "new.pem", renewed)
    assert openssl("x509", "-noout", "-pubkey", "-in", new_file).stdout == (
        openssl("x509", "-noout", "-pubkey", "-in", old_file).stdout
    )
    assert openssl("x509", "-noout", "-enddate", "-in", new_file).stdout.strip() == (
        f"notAfter={new_expiry:%b} {new_expiry.day:2d} {new_expiry:%H:%M:%S %Y} GMT"
    )
    assert renewed.serial_number != old.serial_number
    assert openssl("verify", "-CAfile", ca_file, new_file).returncode == 0


def test_crl_holds_and_revokes_and_openssl_enforces_it(
    ca: EmbeddedCA, ca_file: Path, rsa_key: rsa.RSAPrivateKey, company: OrgSubject, tmp_path: Path
) -> None:
    held, revoked, unaffected = (issue_for_a_year(ca, rsa_key, company) for _ in range(3))
    files = {name: write_pem(tmp_path / f"{name}.pem", cert) for name, cert in
             (("held", held), ("revoked", revoked), ("unaffected", unaffected))}
    start = now() - dt.timedelta(seconds=5)
    entries = [
        RevokedEntry(held.serial_number, start, x509.ReasonFlags.certificate_hold),
        RevokedEntry(revoked.serial_number, start, x509.ReasonFlags.key_compromise),
    ]
    crl = ca.crl(entries, 7, start, start + dt.timedelta(hours=1))
    crl_file = tmp_path / "crl.pem"
    crl_file.write_bytes(crl_pem(crl))
    text = openssl("crl", "-text", "-noout", "-in", crl_file).stdout
    blocks = {block.split()[0]: block for block in text.split("Serial Number: ")[1:]}
    assert "Certificate Hold" in blocks[openssl_serial(held.serial_number)]
    assert "Key Compromise" in blocks[openssl_serial(revoked.serial_number)]
    assert openssl_serial(unaffected.serial_number) not in text
    assert "X509v3 CRL Number: \n                7" in text
    assert openssl("crl", "-noout", "-CAfile", ca_file, "-in", crl_file).stderr.strip() == (
        "verify OK"
    )

    def verify(name: str, crl_path: Path) -> subprocess.CompletedProcess[str]:
        return openssl("verify", "-crl_check", "-CAfile", ca_file, "-CRLfile", crl_path,
                       files[name], check=False)

    on_hold = verify("held", crl_file)
    assert on_hold.returncode != 0
    assert "certificate revoked" in on_hold.stdout + on_hold.stderr
    assert verify("revoked", crl_file).returncode != 0
    assert verify("unaffected", crl_file).returncode == 0

    # 解挂: the next CRL leaves the held serial out, and the certificate is trusted again.
    released = ca.crl(entries[1:], 8, start, start + dt.timedelta(hours=1))
    der_file = tmp_path / "released.crl"
    der_file.write_bytes(crl_der(released))
    pem_file = tmp_path / "released.pem"
    openssl("crl", "-inform", "DER", "-in", der_file, "-out", pem_file)
    assert verify("held", pem_file).returncode == 0
    assert verify("revoked", pem_file).returncode != 0


def test_revocation_outranks_a_hold_and_unspecified_has_no_reason_code(ca: EmbeddedCA) -> None:
    at = now()
    crl = ca.crl(
        [
            RevokedEntry(11, at, x509.ReasonFlags.certificate_hold),
            RevokedEntry(11, at, x509.ReasonFlags.cessation_of_operation),
            RevokedEntry(12, at, x509.ReasonFlags.unspecified),
        ],
        1, at, at + dt.timedelta(days=1),
    )
    assert len(crl) == 2
    first = crl.get_revoked_certificate_by_serial_number(11)
    second = crl.get_revoked_certificate_by_serial_number(12)
    assert first is not None
    assert second is not None
    reason = first.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.cessation_of_operation
    assert len(second.extensions) == 0


def test_reopening_the_directory_gives_the_same_ca(ca: EmbeddedCA, ca_dir: Path) -> None:
    again = EmbeddedCA.open(ca_dir)
    assert again.certificate == ca.certificate
    assert stat.S_IMODE((ca_dir / "ca-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(ca_dir.stat().st_mode) == 0o700
    assert sorted(p.name for p in ca_dir.iterdir()) == ["ca-cert.pem", "ca-key.pem"]
    text = openssl("x509", "-text", "-noout", "-in", ca_dir / "ca-cert.pem").stdout
    assert "X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0" in text
    assert "X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign" in text
    assert "ASN1 OID: secp384r1" in text


def test_concurrent_first_starts_make_one_ca(tmp_path: Path) -> None:
    directory = tmp_path / "ca"
    program = (
        "import sys; from pathlib import Path; from bot.pki.ca import EmbeddedCA\n"
        "from cryptography.hazmat.primitives import hashes\n"
        "print(EmbeddedCA.open(Path(sys.argv[1])).certificate.fingerprint(hashes.SHA256()).hex())"
    )
    starts = [
        subprocess.Popen([sys.executable, "-c", program, str(directory)], stdout=subprocess.PIPE,
                         text=True, cwd=Path(__file__).resolve().parents[2])
        for _ in range(4)
    ]
    fingerprints = {start.communicate(timeout=60)[0].strip() for start in starts}
    assert all(start.returncode == 0 for start in starts)
    assert len(fingerprints) == 1
    assert sorted(p.name for p in directory.iterdir()) == ["ca-cert.pem", "ca-key.pem"]


@pytest.fixture(scope="module")
def existing_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An RSA CA made with openssl, its key encrypted, as an operator would bring it."""
    directory = tmp_path_factory.mktemp("existing")
    cert, key = directory / "root.pem", directory / "root.key"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-keyout", key, "-out", cert,
            "-passout", "pass:s3cret", "-subj", "/C=CN/O=某某认证中心/CN=某某认证中心 CA", "-utf8",
            "-days", "3650", "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return cert, key


def test_an_existing_ca_given_by_file_is_used(
    existing_ca: tuple[Path, Path], rsa_key: rsa.RSAPrivateKey, company: OrgSubject,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cert_file, key_file = existing_ca
    monkeypatch.setenv("CADESK_CA_KEY_PASSWORD", "s3cret")
    ca = EmbeddedCA.open(tmp_path / "unused", cert_file=cert_file, key_file=key_file)
    assert ca.certificate == x509.load_pem_x509_certificate(cert_file.read_bytes())
    assert not (tmp_path / "unused").exists()
    issued = write_pem(tmp_path / "org.pem", issue_for_a_year(ca, rsa_key, company))
    assert openssl("verify", "-CAfile", cert_file, issued).returncode == 0
    crl_file = write_pem(tmp_path / "crl.pem", ca.crl([], 1, now(), now() + dt.timedelta(days=1)))
    assert "sha256WithRSAEncryption" in openssl("crl", "-text", "-noout", "-in", crl_file).stdout


def test_an_encrypted_key_without_its_password_is_refused(
    existing_ca: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_file, key_file = existing_ca
    monkeypatch.delenv("CADESK_CA_KEY_PASSWORD", raising=False)
    with pytest.raises(CAError, match="CADESK_CA_KEY_PASSWORD"):
        EmbeddedCA.open(tmp_path, cert_file=cert_file, key_file=key_file)
    monkeypatch.setenv("CADESK_CA_KEY_PASSWORD", "wrong")
    with pytest.raises(CAError, match="口令错误"):
        EmbeddedCA.open(tmp_path, cert_file=cert_file, key_file=key_file)


def test_a_mismatched_certificate_and_key_are_refused(
    existing_ca: tuple[Path, Path], ca_dir: Path, ca: EmbeddedCA, tmp_path: Path
) -> None:
    cert_file, _ = existing_ca
    with pytest.raises(CAError, match="不是一对"):
        EmbeddedCA.open(tmp_path, cert_file=cert_file, key_file=ca_dir / "ca-key.pem")


def test_a_leaf_certificate_cannot_be_brought_as_the_ca(
    ca: EmbeddedCA, rsa_key: rsa.RSAPrivateKey, company: OrgSubject, tmp_path: Path
) -> None:
    leaf = write_pem(tmp_path / "leaf.pem", issue_for_a_year(ca, rsa_key, company))
    key = tmp_path / "leaf.key"
    key.write_bytes(rsa_key.private_bytes(PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    os.chmod(key, 0o600)
    with pytest.raises(CAError, match="不是 CA 证书"):
        EmbeddedCA.open(tmp_path, cert_file=leaf, key_file=key)


# --- the CA key on a PKCS#11 token (SoftHSM2), never leaving it ---------------------------------

TOKEN_LABEL = "cadesk-ca"


@pytest.fixture(scope="module")
def ca_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A token holding an ECDSA P-384 and an RSA-2048 key made by pkcs11-tool, with the public
    halves exported; yields the public-key files by key label."""
    directory = tmp_path_factory.mktemp("token")
    with softhsm():
        new_token(TOKEN_LABEL)
        base = ["pkcs11-tool", "--module", MODULE, "--token-label", TOKEN_LABEL]
        keys = (("ca-ec", "EC:secp384r1", "01"), ("ca-rsa", "rsa:2048", "02"))
        for label, key_type, key_id in keys:
            subprocess.run([*base, "--login", "--pin", USER_PIN, "--keypairgen", "--key-type",
                            key_type, "--label", label, "--id", key_id],
                           check=True, capture_output=True)
        # pkcs11-tool 0.23 cannot export EC public keys under OpenSSL 3: read them here.
        lib = pkcs11.lib(MODULE)
        lib.reinitialize()
        publics = {}
        with lib.get_token(token_label=TOKEN_LABEL).open() as session:
            for label, _, _ in keys:
                public = session.get_key(object_class=pkcs11.ObjectClass.PUBLIC_KEY, label=label)
                publics[label] = directory / f"{label}.der"
                publics[label].write_bytes(
                    encode_ec_public_key(public) if label == "ca-ec"
                    else encode_rsa_public_key(public)
                )
        yield publics


def self_signed_on_token(public_der: Path, label: str, directory: Path) -> Path:
    """The CA certificate, self-signed by the token key through the same adapter."""
    public = serialization.load_der_public_key(public_der.read_bytes())
    assert isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    key = open_token_key(TokenKeyRef(MODULE, TOKEN_LABEL, label), public)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"令牌 CA {label}")])
    start = now() - dt.timedelta(hours=1)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return write_pem(directory / f"{label}.pem", cert)


@pytest.mark.parametrize("label", ["ca-ec", "ca-rsa"])
def test_a_ca_key_on_a_pkcs11_token_signs_certificates_and_crls(
    ca_token: dict[str, Path], label: str, rsa_key: rsa.RSAPrivateKey, company: OrgSubject,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CADESK_CA_TOKEN_PIN", USER_PIN)
    cert_file = self_signed_on_token(ca_token[label], label, tmp_path)
    ca = EmbeddedCA.open(tmp_path / "unused", cert_file=cert_file,
                         key_token=TokenKeyRef(MODULE, TOKEN_LABEL, label))
    issued = write_pem(tmp_path / "org.pem", issue_for_a_year(ca, rsa_key, company))
    assert openssl("verify", "-CAfile", cert_file, issued).returncode == 0
    crl = ca.crl([], 1, now(), now() + dt.timedelta(days=1))
    crl_file = write_pem(tmp_path / "crl.pem", crl)
    assert openssl("crl", "-noout", "-CAfile", cert_file, "-in", crl_file).stderr.strip() == (
        "verify OK"
    )


def test_a_token_key_that_does_not_match_the_certificate_is_refused(
    ca_token: dict[str, Path], ca_dir: Path, ca: EmbeddedCA, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CADESK_CA_TOKEN_PIN", USER_PIN)
    with pytest.raises(CAError, match="不是一对"):  # the embedded CA's P-384 cert, another key
        EmbeddedCA.open(tmp_path, cert_file=ca_dir / "ca-cert.pem",
                        key_token=TokenKeyRef(MODULE, TOKEN_LABEL, "ca-ec"))
    monkeypatch.setenv("CADESK_CA_TOKEN_PIN", "000000")
    with pytest.raises(CAError, match="PIN 错误"):
        EmbeddedCA.open(tmp_path, cert_file=ca_dir / "ca-cert.pem",
                        key_token=TokenKeyRef(MODULE, TOKEN_LABEL, "ca-ec"))
