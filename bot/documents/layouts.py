"""What each paper form holds, as data: a title, bordered tables of labelled cells, paragraphs
with blanks, a seal and signature area with the date, and the notes on filling it in.

A cell or a ``{key}`` in a paragraph names a form answer (the keys of bot/domain/forms.py), so a
form rendered with answers comes back filled in; rendered without, those places are left blank
to be written by hand. A centre that prints its own forms points ``[forms]`` at its PDFs instead.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    label: str
    key: str = ""  # a form answer printed here when known; blank to write in otherwise
    text: str = ""  # printed as it stands (boxes to tick, a fixed reason)


@dataclass(frozen=True)
class Row:
    cells: tuple[Cell, ...]  # one cell spans the width, two share it
    lines: int = 1  # the height, in lines of writing


@dataclass(frozen=True)
class Section:
    """A shaded heading over its rows, in the form's one bordered table."""

    title: str
    rows: tuple[Row, ...] = ()
    text: str = ""  # a paragraph under the heading; ``{key}`` is an answer or a blank


@dataclass(frozen=True)
class PaperForm:
    key: str  # the name the scans refer to (Field.paper)
    slug: str  # its download name: /forms/<slug>.pdf
    title: str
    sections: tuple[Section, ...]
    signatures: tuple[str, ...]  # the boxes of the seal and signature area
    notes: tuple[str, ...] = ()  # 填表说明

    @property
    def keys(self) -> set[str]:
        """The answers this form can carry."""
        return {cell.key for s in self.sections for row in s.rows for cell in row.cells
                if cell.key}


# ticked by hand; parentheses print in every font (a □ does not)
GAP = "\u00a0" * 3  # room to tick: spaces a paragraph keeps
TICK_KIND = f"新办（{GAP}）{GAP}补办（{GAP}）"
TICK_YEARS = f"1年（{GAP}）{GAP}2年（{GAP}）{GAP}3年（{GAP}）"

SEAL_COLLECTION = PaperForm(
    key="seal_collection",
    slug="seal-collection",
    title="CA数字证书信息印章采集表",
    sections=(
        Section("一、单位信息", (
            Row((Cell("单位名称", "company_name"),)),
            Row((Cell("统一社会信用代码", "org_id"),)),
            Row((Cell("单位地址", "company_address"),)),
            Row((Cell("法定代表人", "legal_rep"), Cell("单位电话", "company_phone"))),
        )),
        Section("二、经办人信息", (
            Row((Cell("经办人姓名", "handler_name"), Cell("手机号", "mobile"))),
            Row((Cell("经办人身份证号", "handler_id_number"),)),
        )),
        Section("三、办理信息", (
            Row((Cell("证书类型", text="机构证书"), Cell("办理类型", text=TICK_KIND))),
            Row((Cell("证书年限", text=TICK_YEARS), Cell("办理UKEY数量", text="＿＿＿个"))),
        )),
        Section("四、印章及签字采集（请在框内加盖清晰、完整的印章，签字请用黑色签字笔）"),
    ),
    signatures=("单位公章", "法定代表人签字", "经办人签字"),
    notes=(
        "请如实、完整填写，字迹工整，不得涂改。",
        "印章须清晰、完整地盖在框内，不得压线；签字须由本人亲笔书写。",
        "填好并盖章签字后扫描或拍照，作为「附件一 信息印章采集表」发送给本服务。",
    ),
)

AUTHORISATION = PaperForm(
    key="authorisation",
    slug="authorisation",
    title="单位授权书及诚信承诺书",
    sections=(
        Section("单位授权书", (
            Row((Cell("被授权人（经办人）", "handler_name"), Cell("手机号", "mobile"))),
            Row((Cell("经办人身份证号", "handler_id_number"),)),
            Row((Cell("授权期限", text="自＿＿＿年＿＿月＿＿日　至　＿＿＿年＿＿月＿＿日"),)),
        ), text=(
            "{company_name}（统一社会信用代码：{org_id}）兹授权下列人员为我单位经办人，代表我单位"
            "办理CA数字证书的新办、补办、续期、解锁、挂失及解挂等业务。经办人在办理上述业务中签署的"
            "文件和处理的有关事务，我单位均予以承认，并承担相应的法律责任。")),
        Section("诚信承诺书", text=(
            "本单位郑重承诺：一、所提交的营业执照、授权书、身份证件等全部资料真实、准确、完整，"
            "如有虚假，愿承担由此产生的一切法律责任；二、妥善保管CA数字证书（UKEY）及其密码，"
            "不出借、不转让，不用于任何违法违规活动；三、因本单位保管或使用不当造成的损失，由本单位"
            "自行承担；四、单位名称、法定代表人等信息变更时，及时办理证书变更。")),
    ),
    signatures=("单位公章", "法定代表人签字", "经办人签字"),
    notes=(
        "须由法定代表人亲笔签字并加盖单位公章，复印件无效。",
        "填好并盖章签字后扫描或拍照，作为「附件三 单位授权书及诚信承诺书」发送给本服务；"
        "首次绑定单位时也用它证明您是本单位的经办人。",
    ),
)

PIN_RESET = PaperForm(
    key="pin_reset",
    slug="pin-reset",
    title="CA数字证书密码重置申请表",
    sections=(
        Section("申请事由", (
            Row((Cell("申请事由", text="因CA锁密码忘记，申请CA数字证书密码重置。"),)),
        )),
        Section("单位信息", (
            Row((Cell("单位名称", "company_name"),)),
            Row((Cell("统一社会信用代码", "uscc"),)),
            Row((Cell("单位地址", "company_address"),)),
            Row((Cell("法定代表人姓名", "legal_rep"), Cell("单位电话", "company_phone"))),
        )),
        Section("授权委托", (
            Row((Cell("经办人姓名", "handler_name"), Cell("手机号", "mobile"))),
            Row((Cell("身份证号", "handler_id_number"),)),
        ), text="兹委托下列经办人代表本单位办理CA数字证书密码重置，由此产生的责任由本单位承担。"),
    ),
    signatures=("单位公章", "经办人签字"),
    notes=(
        "须加盖单位公章并由经办人签字、注明日期。",
        "与加盖公章的营业执照复印件、经办人身份证复印件一起，在「解锁」中作为附件一至附件三发送。",
    ),
)

PAPER_FORMS = {form.key: form for form in (SEAL_COLLECTION, AUTHORISATION, PIN_RESET)}
