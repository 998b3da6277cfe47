"""Property-based tests (hypothesis): every validator, the unlock-mail subject parser and MIME
reading, scan inspection on arbitrary bytes, and the agent's job verification. Thousands of
generated inputs: nothing crashes, every refusal says in Chinese what to fix (or, for jobs, is
a ``Refused`` with a code).

Reproducible: ``derandomize=True`` draws the same examples on every run and no example database
is written (``database=None``)."""

import base64
import copy
import random
import re
import time
import unicodedata
from email.message import EmailMessage
from email.policy import SMTP

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain import validators
from bot.domain.fields import FieldKind
from bot.domain.forms import FORMS
from bot.domain.masking import mask_personal_numbers
from bot.domain.scans import (
    CHAT_FORMATS,
    InvalidScan,
    ScanRules,
    UnreadableScan,
    inspect_scan,
)
from bot.domain.unlock_mail import decode_words, read_mail, unlock_company
from bot.domain.validators import InvalidAnswer
from bot.key_agent.protocol import KINDS, AgentKeys, BotKey, Refused, verify_job
from bot.samples import fake_id_number, fake_uscc


def runs(examples: int) -> settings:
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


CJK = re.compile(r"[\u4e00-\u9fff]")


def assert_clear(message: str) -> None:
    """A refusal a person can act on: Chinese, a whole sentence, no programmer's words."""
    assert CJK.search(message), message
    assert message.endswith("。"), message
    assert len(message) < 300, message
    assert not re.search(r"Error|Traceback|Exception|None", message), message


# what people type: any text, and text built from the characters numbers are made of
# (ASCII and full-width digits, other scripts' digits, superscripts, separators, X, letters)
NUMBERISH = st.text(st.sampled_from(
    "0123456789０１２３４５６７８９٠١٢٣٤٥٦٧٨٩²³¹ -—+()（）Xx・·ABCDEFGHJKLMNPQRTUWY@. \u3000"),
    max_size=24)
TYPED = st.one_of(st.text(max_size=60), NUMBERISH)

FIELDS = sorted({(form.key, f.key): f for form in FORMS.values() for f in form.fields
                 if f.kind is not FieldKind.SCAN and not f.preset}.items())
VALIDATORS = {
    "uscc_code": validators.uscc_code, "id_number": validators.id_number,
    "mobile": validators.mobile, "phone": validators.phone,
    "person_name": validators.person_name, "company_name": validators.company_name,
    "email_address": validators.email_address,
    "text": validators.text(2, 40, "地址"),
    "integer_between": validators.integer_between(1, 10, "个"),
    "choice": validators.choice(("同意", "不同意")),
}


NUMBERS = ("uscc_code", "id_number", "mobile", "phone", "integer_between")


def accept_or_explain(validate: validators.Validator, typed: str, number: bool = False) -> None:
    try:
        value = validate(typed)
    except InvalidAnswer as error:
        assert_clear(str(error))
        return
    assert validate(value) == value  # what is kept is itself a valid answer, unchanged
    assert not any(unicodedata.category(c) == "Cc" for c in value)  # NUL breaks PostgreSQL
    if number:  # kept in the digits everyone can read and check: 0-9
        assert re.fullmatch(r"[0-9A-Z()\-]+", value), value


@pytest.mark.parametrize("name", sorted(VALIDATORS))
@runs(300)
@given(typed=TYPED)
def test_every_validator_accepts_or_says_why(name: str, typed: str) -> None:
    accept_or_explain(VALIDATORS[name], typed, number=name in NUMBERS)


@pytest.mark.parametrize(("key", "field"), FIELDS, ids=[f"{f}.{k}" for (f, k), _ in FIELDS])
@runs(40)
@given(typed=TYPED)
def test_every_form_field_accepts_or_says_why(key: tuple[str, str], field, typed: str) -> None:
    accept_or_explain(field.check, typed)


FULL_WIDTH = str.maketrans("0123456789ABCDEFGHJKLMNPQRTUWXY",
                           "０１２３４５６７８９ＡＢＣＤＥＦＧＨＪＫＬＭＮＰＱＲＴＵＷＸＹ")


def typed_like_a_person(value: str, data: st.DataObject) -> str:
    """Lower case, full-width, spaces or dashes every few characters, spaces around."""
    if data.draw(st.booleans()):
        value = value.lower()
    if data.draw(st.booleans()):
        value = value.upper().translate(FULL_WIDTH)
    cut = data.draw(st.integers(2, 8))
    separator = data.draw(st.sampled_from(["", " ", "-", "\u3000"]))
    value = separator.join(value[i:i + cut] for i in range(0, len(value), cut))
    return data.draw(st.sampled_from(["", " ", "\u3000"])) + value + " "


@runs(200)
@given(seed=st.integers(0, 2**32), data=st.data())
def test_real_codes_typed_any_way_are_accepted(seed: int, data: st.DataObject) -> None:
    rng = random.Random(seed)
    uscc, id_number = fake_uscc(rng), fake_id_number(rng, ends_with_x=rng.random() < 0.1)
    assert validators.uscc_code(typed_like_a_person(uscc, data)) == uscc
    assert validators.id_number(typed_like_a_person(id_number, data)) == id_number
    mobile = "1" + data.draw(st.sampled_from("3456789")) + f"{rng.randrange(10**9):09d}"
    prefix = data.draw(st.sampled_from(["", "+86", "0086", "+86 "]))
    assert validators.mobile(prefix + typed_like_a_person(mobile, data)) == mobile


@runs(300)
@given(seed=st.integers(0, 2**32), position=st.integers(0, 17), data=st.data())
def test_one_character_wrong_is_always_caught(seed: int, position: int,
                                              data: st.DataObject) -> None:
    """GB 32100 and GB 11643 check characters catch every single wrong character."""
    rng = random.Random(seed)
    for code, validate, alphabet in (
            (fake_uscc(rng), validators.uscc_code, "0123456789ABCDEFGHJKLMNPQRTUWXY"),
            (fake_id_number(rng), validators.id_number, "0123456789X")):
        wrong = data.draw(st.sampled_from([c for c in alphabet if c != code[position]]))
        with pytest.raises(InvalidAnswer) as refused:
            validate(code[:position] + wrong + code[position + 1:])
        assert_clear(str(refused.value))


# --- numbers as people write them: 两年, 贰年, 2 年, 十二个 (issue 13) -------------------------
# each digit's ways of writing it (daily, 两 before a measure word, financial 大写), full-width too
DIGIT_SPELLINGS = {1: "1１一壹", 2: "2２二两贰", 3: "3３三叁", 4: "4４四肆", 5: "5５五伍",
                   6: "6６六陆", 7: "7７七柒", 8: "8８八捌", 9: "9９九玖"}


def written_number(n: int, data: st.DataObject) -> str:
    """``n`` (1–99) as someone might type it: digits, or Chinese numerals with 十 or 拾."""
    if data.draw(st.booleans()):
        return str(n) if data.draw(st.booleans()) else str(n).translate(FULL_WIDTH)
    tens, ones = divmod(n, 10)

    def digit(d: int) -> str:
        return data.draw(st.sampled_from(DIGIT_SPELLINGS[d][2:]))

    if not tens:
        return digit(ones)
    high = "" if tens == 1 and data.draw(st.booleans()) else digit(tens)
    return high + data.draw(st.sampled_from("十拾")) + (digit(ones) if ones else "")


SPACES = st.sampled_from(["", " ", "\u3000"])


@runs(300)
@given(years=st.integers(1, 3), unit=st.booleans(), data=st.data())
def test_a_term_is_taken_however_it_is_written(years: int, unit: bool,
                                               data: st.DataObject) -> None:
    typed = (data.draw(SPACES) + written_number(years, data) + data.draw(SPACES)
             + ("年" if unit else "") + data.draw(SPACES))
    assert FORMS["certificate"].field("years").check(typed) == f"{years}年"


@runs(300)
@given(count=st.integers(1, 20), unit=st.booleans(), data=st.data())
def test_a_count_is_taken_however_it_is_written(count: int, unit: bool,
                                                data: st.DataObject) -> None:
    typed = written_number(count, data) + data.draw(SPACES) + ("个" if unit else "")
    assert FORMS["certificate"].field("ukey_count").check(typed) == str(count)


@runs(100)
@given(count=st.integers(21, 99), data=st.data())
def test_a_count_out_of_range_is_refused_however_it_is_written(count: int,
                                                               data: st.DataObject) -> None:
    with pytest.raises(InvalidAnswer, match="1–20"):
        FORMS["certificate"].field("ukey_count").check(written_number(count, data))


CHOICES = sorted({(form.key, f.key): f for form in FORMS.values() for f in form.fields
                  if f.kind is FieldKind.CHOICE}.items())


@pytest.mark.parametrize(("key", "field"), CHOICES, ids=[f"{f}.{k}" for (f, k), _ in CHOICES])
def test_every_option_is_its_own_text_and_its_number(key: tuple[str, str], field) -> None:
    """Reading Chinese numerals never turns one option's text into another option (the choice
    itself: a field may refuse an option afterwards, as 注册协议 refuses 不同意)."""
    pick = validators.choice(field.choices)
    for number, option in enumerate(field.choices, 1):
        assert pick(option) == option
        assert pick(str(number)) == option


# --- masking: what the validators accept is masked in any text ----------------------------
SEPARATORS = st.sampled_from(["", " ", "  ", "-", "－", "\u3000", "\t", "\n", "\xa0", " - "])
FULL_DIGITS = str.maketrans("0123456789Xx", "０１２３４５６７８９Ｘｘ")
AROUND = st.text(max_size=30)
# what may stand right next to a number: not a letter or digit (that is another kind of code)
BOUNDARY = st.sampled_from([" ", "：", "，", "号码", "\n", "（", "身份证", "电话:", "。"])


def spelled(number: str, data: st.DataObject) -> tuple[str, list[int]]:
    """The number with separators between any digits, maybe full-width, and where each of its
    digits landed."""
    if data.draw(st.booleans()):
        number = number.translate(FULL_DIGITS)
    if data.draw(st.booleans()):
        number = number.lower()
    typed, where = "", []
    for i, digit in enumerate(number):
        if i:
            typed += data.draw(SEPARATORS)
        where.append(len(typed))
        typed += digit
    return typed, where


@runs(400)
@given(seed=st.integers(0, 2**32), data=st.data())
def test_accepted_numbers_are_masked_in_any_text(seed: int, data: st.DataObject) -> None:
    """An ID or mobile number the validators accept, inside arbitrary text: its middle digits
    are starred where they stand (the first 3 and last 4 may show)."""
    rng = random.Random(seed)
    if data.draw(st.booleans()):
        number = fake_id_number(rng, ends_with_x=rng.random() < 0.3)
        typed, where = spelled(number, data)
        assert validators.id_number(typed) == number
        middle = where[3:14]
    else:
        number = "1" + data.draw(st.sampled_from("3456789")) + f"{rng.randrange(10**9):09d}"
        prefix = data.draw(st.sampled_from(["", "+86", "+86 ", "0086", "00 86-", "＋８６"]))
        typed, where = spelled(number, data)
        assert validators.mobile(prefix + typed) == number
        typed, where = prefix + typed, [len(prefix) + w for w in where]
        middle = where[3:7]
    before = data.draw(AROUND) + data.draw(BOUNDARY)
    text = before + typed + data.draw(BOUNDARY) + data.draw(AROUND)
    masked = mask_personal_numbers(text)
    assert len(masked) == len(text)
    assert all(masked[len(before) + w] == "*" for w in middle), (text, masked)
    assert number not in "".join(masked.split()).replace("-", "")


# --- the unlock mailbox --------------------------------------------------------------------
COMPANY_NAMES = st.builds(lambda a, b: f"临沂{a}{b}有限公司",
                          st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5),
                                  min_size=1, max_size=8),
                          st.sampled_from(["建设", "科技", "（山东）工程", "(临沂)商贸", ""]))
PREFIXES = st.lists(st.sampled_from(["Re:", "RE: ", "Fw:", "FWD：", "回复：", "转发: ", "答复:"]),
                    max_size=3).map("".join)
UNLOCK_WORDS = st.sampled_from(["CA解锁", "ca解锁", "【CA解锁】", "CA 解 锁", "(CA解锁)",
                                "ＣＡ解锁"])
JOINS = st.sampled_from(["+", "＋", " + ", "-", "—", "：", "_", " ", "、", ""])


@runs(500)
@given(prefixes=PREFIXES, unlock=UNLOCK_WORDS, join=JOINS, company=COMPANY_NAMES)
def test_unlock_subjects_name_their_company(prefixes: str, unlock: str, join: str,
                                            company: str) -> None:
    assert unlock_company(f"{prefixes}{unlock}{join}{company}") == validators.company_name(
        company)


@runs(800)
@given(subject=st.one_of(st.text(max_size=80),
                         st.builds(str.__add__, UNLOCK_WORDS, st.text(max_size=40))))
def test_any_subject_is_an_unlock_request_or_not_without_crashing(subject: str) -> None:
    company = unlock_company(subject)
    assert company is None or company == "" or validators.company_name(company) == company


ENCODED_WORD = st.builds(
    lambda charset, kind, payload: f"=?{charset}?{kind}?{payload}?=",
    st.sampled_from(["utf-8", "gbk", "gb2312", "big5", "x-unknown", "utf-7", ""]),
    st.sampled_from(["B", "Q", "b", "x"]),
    st.text(st.sampled_from("ABCDabcd0123456789+/=_%?"), max_size=20))


@runs(400)
@given(header=st.lists(st.one_of(ENCODED_WORD, st.text(max_size=20)), max_size=4).map(" ".join))
def test_any_header_decodes_to_text(header: str) -> None:
    assert isinstance(decode_words(header), str)


@runs(300)
@given(raw=st.one_of(
    st.binary(max_size=2000),
    st.lists(st.sampled_from([
        b"Subject: =?gbk?B?Q0G94sv4?=\r\n", b"From: a@b.test\r\n", b"Message-ID: <x@y>\r\n",
        b'Content-Type: multipart/mixed; boundary="b"\r\n', b"--b\r\n", b"--b--\r\n",
        b"Content-Type: image/jpeg; name*0*=gbk''%D5%C5; name*1*=%C8%FD\r\n",
        b'Content-Disposition: attachment; filename="=?utf-8?B?5byg?="\r\n',
        b"Content-Transfer-Encoding: base64\r\n",
        b"Content-Transfer-Encoding: quoted-printable\r\n",
        b"\r\n", b"/9j/4AAQSkZJRg==\r\n", b"=E5=BC=A0=\r\n", b"\xff\xfe\x80garbage\r\n",
        b'Content-Type: text/html; charset="x-unknown"\r\n', b"<p>&#0;&#x110000;</p>\r\n",
    ]), max_size=30).map(b"".join)))
def test_any_bytes_read_as_a_mail_without_crashing(raw: bytes) -> None:
    mail = read_mail(raw)
    assert mail.message_id
    assert all(isinstance(f.data, bytes) for f in mail.files)


FILE_NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
                     min_size=1, max_size=30).filter(lambda s: s.strip() == s)


@runs(150)
@given(names=st.lists(FILE_NAMES, min_size=1, max_size=3),
       contents=st.lists(st.binary(min_size=1, max_size=300), min_size=3, max_size=3),
       subject=st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
                       max_size=40))
def test_attachments_come_out_as_they_went_in(names: list[str], contents: list[bytes],
                                              subject: str) -> None:
    """A mail as a standard client writes it (RFC 2047/2231 as needed): every attachment's
    name and bytes, and the subject, read back exactly."""
    message = EmailMessage()
    message["From"], message["To"] = "a@client.test", "unlock@example.test"
    message["Subject"] = subject
    message.set_content("统一社会信用代码见附件")
    for name, data in zip(names, contents, strict=False):
        message.add_attachment(data, maintype="image", subtype="jpeg", filename=name)
    mail = read_mail(message.as_bytes(policy=SMTP))
    assert [(f.filename, f.data) for f in mail.files] == list(
        zip(names, contents, strict=False))
    assert mail.subject == subject.strip() or " ".join(mail.subject.split()) == " ".join(
        subject.split())


# --- scans: arbitrary bytes behind real image headers ---------------------------------------
MAGIC = [b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", b"BM", b"GIF89a", b"GIF87a", b"\x89PNG\r\n\x1a\n",
         b"%PDF-1.4\n", b"II*\x00", b"RIFF\x00\x00\x00\x00WEBP", b""]


@runs(500)
@given(magic=st.sampled_from(MAGIC), body=st.binary(max_size=600))
def test_any_bytes_as_a_scan_are_refused_with_a_reason(magic: bytes, body: bytes) -> None:
    try:
        info = inspect_scan(magic + body, ScanRules(min_short_side=1, min_long_side=1))
    except InvalidScan as error:
        refusal = error
    else:
        assert info.format in CHAT_FORMATS  # what the chat takes (PNG, HEIC kept as JPEG)
        return
    assert not isinstance(refusal, UnreadableScan)  # a rule refused it, not the catch-all
    assert_clear(str(refusal))


# --- the key agent's job verification --------------------------------------------------------
BOT, AGENT, STRANGER = BotKey.generate(), AgentKeys.generate(), AgentKeys.generate()
COMPANY, OTHER_COMPANY = fake_uscc(random.Random(1)), fake_uscc(random.Random(2))
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
B64 = st.binary(max_size=100).map(lambda b: base64.urlsafe_b64encode(b).decode().rstrip("="))


def verify(job: dict, *, keys: AgentKeys = AGENT, now: float | None = None):
    return verify_job(job, bot_public=BOT.public(), agent="1", company=COMPANY, keys=keys,
                      now=now)


@runs(200)
@given(job=st.dictionaries(st.sampled_from(["id", "kind", "company", "token_serial",
                                            "expires_at", "nonce", "so_pin", "user_pin", "data",
                                            "signature"]) | st.text(max_size=8),
                           JSON | B64, max_size=10))
def test_a_job_not_signed_by_the_paired_bot_is_refused(job: dict) -> None:
    with pytest.raises(Refused) as refused:
        verify(job)
    assert refused.value.code == "bad_signature"


def a_job(kind: str, **changes) -> dict:
    options = {"agent": "1", "kind": kind, "company": COMPANY, "token_serial": "SN-1",
               "agent_sealing": AGENT.public()["sealing"], "lifetime_seconds": 600,
               "so_pin": "12345678" if kind in ("reset_pin", "personalise") else None,
               "user_pin": "1234" if kind == "personalise" else None,
               "data": {"certificate": "PEM"} if kind == "write_certificate" else None,
               **changes}
    return BOT.job(**options)


@runs(200)
@given(kind=st.sampled_from(KINDS), data=st.data())
def test_any_change_to_a_signed_job_is_refused(kind: str, data: st.DataObject) -> None:
    job = a_job(kind)
    verify(copy.deepcopy(job))  # as sent, it is good
    key = data.draw(st.sampled_from(sorted(job)) | st.text(min_size=1, max_size=8))
    action = data.draw(st.sampled_from(["replace", "delete"]))
    if action == "delete" and key in job:
        del job[key]
    else:
        new = data.draw(JSON | B64)
        if job.get(key) == new:
            return
        job[key] = new
    with pytest.raises(Refused) as refused:
        verify(job)
    assert refused.value.code == "bad_signature"


@runs(200)
@given(kind=st.sampled_from(KINDS), company=st.sampled_from([COMPANY, OTHER_COMPANY]),
       lifetime=st.floats(-3600, -0.001) | st.floats(1, 3600), foreign=st.booleans(),
       pin=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1,
                   max_size=16))
def test_signed_jobs_are_taken_or_refused_for_their_reason(kind: str, company: str,
                                                           lifetime: float, foreign: bool,
                                                           pin: str) -> None:
    now = time.time()
    job = a_job(kind, company=company, lifetime_seconds=lifetime, now=now,
                so_pin=pin if kind in ("reset_pin", "personalise") else None)
    expected = ("wrong_company" if company != COMPANY else "expired" if lifetime <= 0
                else "bad_seal" if foreign and kind in ("reset_pin", "personalise") else None)
    if expected is None:
        verified = verify(job, keys=STRANGER if foreign else AGENT, now=now)
        assert (verified.kind, verified.company) == (kind, COMPANY)
        assert verified.so_pin == (pin if kind in ("reset_pin", "personalise") else None)
        return
    with pytest.raises(Refused) as refused:
        verify(job, keys=STRANGER if foreign else AGENT, now=now)
    assert refused.value.code == expected
