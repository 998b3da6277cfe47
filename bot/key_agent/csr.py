"""A PKCS#10 certificate request signed by a key that never leaves the UKEY.

cryptography's builders sign only with keys they hold, so the request is assembled with
asn1crypto (python-pkcs11's own dependency) and signed on the token (CKM_SHA256_RSA_PKCS).
The CA ignores the requested subject and builds its own from the company profile; the request
carries one anyway, so the person at the PC and any log show what it was for.
"""

from asn1crypto import csr as asn1_csr
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from pkcs11 import Mechanism, PrivateKey, PublicKey
from pkcs11.util.rsa import encode_rsa_public_key


def build_csr(public: PublicKey, private: PrivateKey, common_name: str) -> bytes:
    """The DER of a CSR for the RSA key pair on the token (``private`` needs a user login)."""
    spki = asn1_keys.PublicKeyInfo({
        "algorithm": asn1_keys.PublicKeyAlgorithm({"algorithm": "rsa"}),
        "public_key": asn1_keys.RSAPublicKey.load(encode_rsa_public_key(public)),
    })
    info = asn1_csr.CertificationRequestInfo({
        "version": "v1",
        "subject": asn1_x509.Name.build({"common_name": common_name or "cadesk"},
                                        use_printable=False),
        "subject_pk_info": spki,
        "attributes": [],
    })
    signature = private.sign(info.dump(), mechanism=Mechanism.SHA256_RSA_PKCS)
    return asn1_csr.CertificationRequest({
        "certification_request_info": info,
        "signature_algorithm": asn1_csr.SignedDigestAlgorithm({"algorithm": "sha256_rsa"}),
        "signature": signature,
    }).dump()
