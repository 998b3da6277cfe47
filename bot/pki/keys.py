"""Which keys the CA accepts, and which hash each signs with."""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bot.pki.errors import CAError

MIN_RSA_BITS = 2048
# NIST curves only: what Windows CryptoAPI, NSS, Java and OpenSSL all verify.
ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def check_subject_key(key: object) -> PublicKey:
    """A CSR's key must be RSA >= 2048 bits or ECDSA on a NIST curve."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise CAError(
                f"密钥强度不足：RSA 密钥只有 {key.key_size} 位，至少需要 {MIN_RSA_BITS} 位。"
            )
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ALLOWED_CURVES):
            raise CAError(f"不支持的椭圆曲线 {key.curve.name}，仅支持 P-256、P-384、P-521。")
        return key
    raise CAError("不支持的密钥类型，证书请求的密钥必须是 RSA（至少 2048 位）或 ECDSA。")


def signing_hash(key: SigningKey) -> hashes.HashAlgorithm:
    """SHA-384 for P-384, SHA-512 for P-521, SHA-256 otherwise (P-256 and RSA)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if isinstance(key.curve, ec.SECP521R1):
            return hashes.SHA512()
        if isinstance(key.curve, ec.SECP384R1):
            return hashes.SHA384()
    return hashes.SHA256()


def same_public_key(a: object, b: object) -> bool:
    encoding = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    try:
        return a.public_bytes(encoding, spki) == b.public_bytes(encoding, spki)  # type: ignore[attr-defined]
    except (AttributeError, UnsupportedAlgorithm):
        return False
