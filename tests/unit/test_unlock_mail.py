"""Reading unlock mails: subjects, senders, attachments, machines — over
tests/support/mail_corpus.py."""

import email
import email.policy

import pytest

from bot.domain.unlock_mail import assign_materials, read_mail, unlock_company
from bot.samples import fake_uscc
from tests.support import mail_corpus as corpus

USCC = fake_uscc()
NAME = corpus.COMPANY


@pytest.mark.parametrize("subject", [
    f"CA解锁+{NAME}", f"CA解锁＋{NAME}", f"CA解锁 + {NAME}", f"CA 解锁-{NAME}",
    f"CA解锁{NAME}", f"ca解锁+{NAME}", f"Re: CA解锁+{NAME}", f"回复：CA解锁+{NAME}",
    f"Fw: 转发: CA解锁—{NAME}", f"RE: Fwd: 【CA解锁】{NAME}", f"  CA解锁：{NAME}。",
])
def test_unlock_subject_variants_name_the_company(subject: str) -> None:
    assert unlock_company(subject) == NAME


def test_brackets_in_the_company_name_become_full_width() -> None:
    assert unlock_company("CA解锁+临沂某某(集团)有限公司") == "临沂某某（集团）有限公司"


@pytest.mark.parametrize("subject", ["咨询发票", "UKEY 解锁怎么办", "CA证书续期+某公司"])
def test_other_subjects_are_not_unlock_requests(subject: str) -> None:
    assert unlock_company(subject) is None


def test_unlock_subject_without_a_company() -> None:
    assert unlock_company("CA解锁") == ""


@pytest.mark.parametrize(("make", "sender", "names"), [
    (corpus.qq_mail, "zhangsan@qq.test",
     ["CA数字证书密码重置申请表.jpg", "营业执照.jpg", "经办人身份证.jpg"]),
    (corpus.foxmail, "lisi@foxmail.test",
     ["密码重置申请表.jpg", "营业执照副本.jpg", "身份证复印件.jpg"]),
    (corpus.outlook, "wangwu@outlook.test", ["申请表.bmp", "执照.jpg", "身份证.jpg"]),
    (corpus.phone, "zhaoliu@phone.test", ["IMG_0001.JPG", "IMG_0002.JPG", "IMG_0003.JPG"]),
    (corpus.forwarded, "admin@company.test", ["重置申请表.pdf", "scan0.jpg", "scan1.jpg"]),
    (corpus.gb18030, "gb@client.test", ["0.jpg", "1.jpg", "2.jpg"]),
])
def test_client_styles_decode_company_uscc_sender_and_file_names(make, sender, names) -> None:
    mail = read_mail(make(USCC), [corpus.MAILBOX])
    assert mail.company == NAME  # 喆镕 survive GB2312-labelled GBK and GB18030
    assert mail.uscc == USCC
    assert mail.sender == sender
    assert [f.filename for f in mail.files] == names
    assert mail.automatic is None


def test_a_gbk_character_split_across_rfc2231_continuations() -> None:
    raw = corpus.foxmail(USCC)
    assert b"filename*0*=gbk''" in raw
    # the stdlib's modern policy decodes the pieces one by one into garbage …
    modern = email.message_from_bytes(raw, policy=email.policy.default)
    broken = [p.get_filename() for p in modern.walk() if p.get_filename()]
    assert "营业执照副本.jpg" not in broken
    # … the reader joins the bytes first
    assert "营业执照副本.jpg" in [f.filename for f in read_mail(raw).files]


def test_phone_inline_images_and_raw_utf8_headers() -> None:
    mail = read_mail(corpus.phone(USCC))
    assert all(f.inline for f in mail.files)
    assert mail.sender_name == "赵六"
    assert "发自我的iPhone" in mail.body


def test_threading_keeps_the_chain() -> None:
    mail = read_mail(corpus.forwarded(USCC))
    assert mail.references == "<orig@company.test> <fw-1@company.test>"


def test_a_mail_without_message_id_gets_a_stable_one() -> None:
    raw = corpus.no_message_id(USCC)
    assert read_mail(raw).message_id == read_mail(raw).message_id
    assert read_mail(raw).message_id.endswith("@no-message-id.invalid>")


@pytest.mark.parametrize(("make", "reason"), [
    (corpus.bounce, "退信"), (corpus.auto_reply, "自动回复"), (corpus.mailing_list, "邮件列表"),
])
def test_machines_are_recognised(make, reason: str) -> None:
    assert read_mail(make(), [corpus.MAILBOX]).automatic == reason


def test_our_own_mailbox_is_recognised() -> None:
    raw = corpus.qq_mail(USCC).replace(b"zhangsan@qq.test", corpus.MAILBOX.encode())
    assert read_mail(raw, [corpus.MAILBOX]).automatic == "来自本邮箱自身"


def test_no_attachments_and_not_unlock() -> None:
    bare = read_mail(corpus.no_attachments())
    assert bare.company == NAME
    assert bare.files == []
    assert bare.uscc is None
    assert read_mail(corpus.not_unlock()).company is None


def test_materials_by_name_then_in_order() -> None:
    assert assign_materials(["营业执照.jpg", "身份证.jpg", "重置申请表.jpg"]) == {
        "scan_licence": 0, "scan_id_card": 1, "scan_reset_form": 2}
    assert assign_materials(["IMG_1.JPG", "IMG_2.JPG", "IMG_3.JPG"]) == {
        "scan_reset_form": 0, "scan_licence": 1, "scan_id_card": 2}
    assert assign_materials(["身份证.jpg", "IMG_1.JPG"]) == {"scan_id_card": 0,
                                                           "scan_reset_form": 1}
