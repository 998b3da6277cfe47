"""Every place that lists commands lists exactly the commands of the tables: the applicant's menu
(帮助 outside a form), the technician's 帮助, docs/ and bot.toml's [staff] comment."""

import re
import tomllib
from pathlib import Path

import pytest

from bot.services.applications.dialogue import APPLICANT_COMMANDS, menu
from bot.services.commands import Command, CommandTable
from bot.services.review.desk import TECHNICIAN_COMMANDS, technician_help

ROOT = Path(__file__).resolve().parents[2]


def listed(text: str) -> list[str]:
    """The usages on the ``· usage — help`` lines of a menu or 帮助 (``a / b`` lists two)."""
    return [usage for line in text.splitlines() if line.startswith("· ")
            for usage in line[2:].split(" — ")[0].split(" / ")]


@pytest.mark.parametrize("pki", [True, False])
def test_the_menu_lists_exactly_the_visible_applicant_commands(pki: bool) -> None:
    shown = listed(menu("临沂测试建设有限公司", certificates=pki))
    assert shown == [c.usage for c in APPLICANT_COMMANDS.visible(pki=pki)]
    assert ("续期" in shown) is pki
    hidden = {w for c in APPLICANT_COMMANDS if not c.menu for w in c.words}
    assert hidden.isdisjoint(shown)


def test_the_menu_offers_mail_only_when_mail_is_sent() -> None:
    assert "邮箱 地址" in listed(menu("临沂测试建设有限公司", email=True))
    without = listed(menu("临沂测试建设有限公司", email=False))
    assert "邮箱 地址" not in without
    assert without == [c.usage for c in APPLICANT_COMMANDS.visible(pki=False, email=False)]


@pytest.mark.parametrize("pki", [True, False])
def test_the_technician_help_lists_exactly_the_technician_commands(pki: bool) -> None:
    shown = listed(technician_help(certificates=pki))
    assert shown == [c.usage for c in TECHNICIAN_COMMANDS if pki or not c.pki]
    assert ("吊销 证书序列号 理由（如：密钥泄露、单位变更、停止使用）" in shown) is pki


def documented(doc: str) -> set[str]:
    """The command words in the first column of a doc's command table."""
    words: set[str] = set()
    for line in (ROOT / "docs" / doc).read_text(encoding="utf-8").splitlines():
        first = line.split("|")[1] if line.startswith("| `") else ""
        words |= {span.split()[0] for span in re.findall(r"`([^`]+)`", first)}
    return words


def test_docs_review_lists_exactly_the_technician_commands() -> None:
    assert documented("review.md") == {c.word for c in TECHNICIAN_COMMANDS}


def test_docs_conversation_lists_exactly_the_applicant_commands() -> None:
    words = documented("conversation.md")
    assert {c.word for c in APPLICANT_COMMANDS} <= words  # each command, hidden ones too
    assert words <= {w for c in APPLICANT_COMMANDS for w in c.words}  # and nothing else


def test_bot_toml_names_every_technician_command() -> None:
    text = (ROOT / "bot.toml").read_text(encoding="utf-8")
    tomllib.loads(text)  # still valid
    staff = text[text.index("[staff]"):text.index("technicians =")]
    comment = " ".join(line.lstrip("# ") for line in staff.splitlines()[1:])
    named = re.search(r"the commands (.+?) \(", comment)
    assert named is not None
    words = re.split(r", | and ", named.group(1))
    assert words == [c.word for c in TECHNICIAN_COMMANDS]


def test_a_word_belongs_to_one_command() -> None:
    async def nothing() -> None: ...

    with pytest.raises(ValueError, match="续期"):
        CommandTable([Command(("续期",), "续期", "", nothing),
                      Command(("延期", "续期"), "延期", "", nothing)])


def test_a_pattern_command_matches_only_an_argument_it_accepts() -> None:
    revise = APPLICANT_COMMANDS["修改"]
    assert APPLICANT_COMMANDS.match("修改 xb2611257kq3") == (revise, "XB-261125-7KQ3")
    assert APPLICANT_COMMANDS.match("修改 3") is None  # the summary's 修改 N
    assert APPLICANT_COMMANDS.match("修改 ABCDEFGHIJK") is None
    assert APPLICANT_COMMANDS.match("证书解锁") == (APPLICANT_COMMANDS["解锁"], "")
    # typed without the space before an order number: still the command
    assert TECHNICIAN_COMMANDS.first_word("通过XB-261125-7KQ3") is TECHNICIAN_COMMANDS["通过"]
    assert TECHNICIAN_COMMANDS.split("查看xb2611257kq3") == (TECHNICIAN_COMMANDS["查看"],
                                                             "xb2611257kq3")
    assert TECHNICIAN_COMMANDS.split("解锁状态JS-261125-7KQ3")[0] is TECHNICIAN_COMMANDS["解锁状态"]
    # ... but a word merely starting like one is not (the applicant's 证书解锁, 订单号 …)
    for text in ("证书解锁", "订单号", "通过了吗", "完成ABC"):
        assert TECHNICIAN_COMMANDS.first_word(text) is None, text
    assert TECHNICIAN_COMMANDS.first_word("发货 XB-261125-7KQ3 顺丰 SF1") is (
        TECHNICIAN_COMMANDS["发货"])


def test_a_word_another_commands_pattern_would_take_is_refused_at_declaration() -> None:
    query = Command(("查询",), "查询 订单号", "查看订单", None,
                    pattern=re.compile(r"查询\s*(\S+)"))
    progress = Command(("查询进度",), "查询进度", "查看进度", None)
    with pytest.raises(ValueError, match="查询进度"):
        CommandTable([query, progress])
    assert CommandTable([query]).match("查询 XB-1") == (query, "XB-1")
