"""The forms of cadesk: company binding and its verification request, the certificate order, the
unlock request and the loss report (SPEC.md §0, §1, §3 and §4). A renewal needs no form: it
reads the UKEY."""

from collections.abc import Mapping
from dataclasses import dataclass

from bot.domain import validators
from bot.domain.certificates import normalise_serial
from bot.domain.fields import Field, FieldKind
from bot.domain.lifecycle import OrderType
from bot.domain.masking import mask_id_number, mask_mobile, mask_name
from bot.domain.validators import InvalidAnswer


@dataclass(frozen=True)
class Form:
    key: str
    title: str  # 【证书新办】
    fields: tuple[Field, ...]
    confirm: bool = True  # show a summary and ask 确认提交 before finishing
    order_type: OrderType | None = None  # the order it files; None: not an order (binding)

    def presets(self, company_name: str, uscc: str, **extra: str) -> dict[str, str]:
        """Values every preset field of this form takes from the company profile."""
        known = {"cert_type": "机构证书", "company_name": company_name,
                 "org_id_type": "统一社会信用代码", "org_id": uscc, "uscc": uscc, **extra}
        return {f.key: known[f.key] for f in self.fields if f.preset}

    def field(self, key: str) -> Field:
        for field in self.fields:
            if field.key == key:
                return field
        raise KeyError(key)


PLEDGE = (
    "注册协议：本单位对在平台上传的全部资料的真实性、准确性和完整性负责，"
    "如有不实，自行承担由此产生的一切后果。"
)


def _agree(answer: str) -> str:
    value = validators.choice(("同意", "不同意"))(answer)
    if value != "同意":
        raise InvalidAnswer("须同意注册协议才能绑定单位。如不同意，可回复「取消」结束。")
    return value


# 申报人 and 联系电话, as the centre's 网员注册 asks: shown (masked) to whoever vouches
_DECLARANT = (
    Field("declarant", "申报人", validate=validators.person_name, mask=mask_name,
          hint="您本人的姓名。", help="申报人即正在使用本账号办理业务的人，请填写本人姓名。"),
    Field("declarant_mobile", "联系电话", validate=validators.mobile, mask=mask_mobile,
          hint="您本人的手机号。", help="申报人本人的手机号，核验时可能据此与您联系。"),
)

# Binding: the three questions of the centre's registration and who is asking. What follows
# depends on the company (bot/services/applications/binding.py): a company with verified
# handlers is asked to vouch for the account; otherwise the account sends BINDING_REQUEST.
BINDING = Form(
    key="binding",
    title="绑定单位",
    confirm=False,
    fields=(
        Field("uscc", "统一社会信用代码", validate=validators.uscc_code,
              hint="营业执照上的 18 位代码。",
              help="统一社会信用代码印在营业执照左上方，共 18 位，由数字和大写字母组成。"),
        Field("company_name", "单位名称", validate=validators.company_name,
              hint="与营业执照上的名称完全一致。",
              help="请输入营业执照上的单位全称，包括括号内的内容，例如「某某建设工程有限公司」。"),
        Field("pledge", "注册协议", kind=FieldKind.CHOICE, choices=("同意", "不同意"),
              validate=_agree, hint=PLEDGE,
              help="绑定单位前须同意注册协议：" + PLEDGE),
        *_DECLARANT,
    ),
)


# A pending account asks again (「申请核验」): who is asking, then as after BINDING.
BINDING_CONTACT = Form(key="binding_contact", title="申请核验", confirm=False, fields=_DECLARANT)

USER_TYPES = (
    "施工单位", "项目管理", "招标代理", "监理单位", "勘察单位", "设计单位", "建设单位", "供应商",
    "采购单位", "拍卖代理", "采购代理", "土地竞买人", "金融机构", "产权竞买人", "咨询企业",
    "非金融机构",
)

SCAN_RULE = "须为清晰的扫描件，格式 jpg/jpeg/bmp/gif（手机照片、截图 png/heic 也可以），不得修图。"
SHANDONG_CITIES = (
    "济南", "青岛", "淄博", "枣庄", "东营", "烟台", "潍坊", "济宁",
    "泰安", "威海", "日照", "临沂", "德州", "聊城", "滨州", "菏泽",
)


def _posted(values: Mapping[str, str]) -> bool:
    # counted until 自取 is chosen, so the step count shrinks rather than grows
    return values.get("self_pickup", "邮寄") == "邮寄"


TEMPLATE_HINT = "发送「模板」可获取空白表格。"


def _scan(key: str, slot: str, label: str, shows: str, paper: str = "",
          prefill: bool = False) -> Field:
    """A scan to send; ``paper`` names the centre's printed form it shows (bot/documents)."""
    template = TEMPLATE_HINT if paper else ""
    return Field(key, label, kind=FieldKind.SCAN, slot=slot, hint=f"要求：{shows}{template}",
                 help=f"{slot}【{label}】要求：{shows}{SCAN_RULE}请拍照或扫描后以图片发送。"
                 + template, paper=paper, prefill=prefill)


CERTIFICATE = Form(
    key="certificate",
    title="证书新办/补办",
    order_type=OrderType.CERTIFICATE,
    fields=(
        Field("cert_type", "证书类型", kind=FieldKind.CHOICE, choices=("机构证书",), preset=True),
        Field("years", "证书年限", kind=FieldKind.CHOICE, choices=("1年", "2年", "3年"),
              help="证书有效期，到期前可以续期。"),
        Field("region", "项目所属地区", kind=FieldKind.CHOICE, choices=SHANDONG_CITIES,
              help="投标项目所在的地级市。"),
        Field("ukey_count", "办理Ukey数量", validate=validators.integer_between(1, 20, "个"),
              hint="请输入数字，例如 1。", help="需要办理的 UKEY（CA锁）个数，一般为 1 个。"),
        Field("apply_kind", "办理类型", kind=FieldKind.CHOICE, choices=("新办", "补办"),
              preset=True),
        Field("company_name", "公司名称", preset=True),
        Field("org_id_type", "机构证件类型", kind=FieldKind.CHOICE,
              choices=("统一社会信用代码",), preset=True),
        Field("org_id", "机构证件号", preset=True),
        Field("handler_name", "经办人姓名", validate=validators.person_name,
              help="来办理业务的经办人，须与身份证复印件一致。"),
        Field("handler_id_number", "经办人身份证号", validate=validators.id_number,
              mask=mask_id_number, hint="18 位，最后一位可能是 X。",
              help="经办人的居民身份证号，共 18 位，最后一位可能是字母 X。"),
        Field("mobile", "手机号", validate=validators.mobile, mask=mask_mobile,
              hint="收件人手机号，须能接通并知晓本订单。",
              help="用于接收审核、发货等通知的手机号，须能接通且机主知晓本订单。"),
        Field("self_pickup", "是否自取", kind=FieldKind.CHOICE, choices=("自取", "邮寄"),
              help="自取：经办人携带身份证原件和单位授权书到服务大厅领取；邮寄：快递寄送。"),
        Field("city", "地级市", validate=validators.text(2, 40, "地级市"), applies=_posted,
              hint="省/市/区，例如：山东省临沂市兰山区。", help="收件地址所在的省、市、区。"),
        Field("address", "邮寄地址", validate=validators.text(5, 120, "邮寄地址"),
              applies=_posted, hint="街道、门牌号及单位名称。",
              help="详细收件地址：街道、门牌号、楼层及单位名称。"),
        _scan("scan_form", "附件一", "信息印章采集表",
              "打印的采集表，按表头要求加盖单位公章并签字。", paper="seal_collection"),
        _scan("scan_id_card", "附件二", "经办人身份证复印件",
              "经办人身份证正反面复印在同一张 A4 纸上，加盖单位公章。"),
        _scan("scan_authorisation", "附件三", "单位授权书及诚信承诺书",
              "单位授权书及诚信承诺书，加盖公章并由法定代表人签字。", paper="authorisation"),
        _scan("scan_licence", "附件四", "机构营业执照",
              "新版三证合一营业执照复印件，加盖公章。"),
    ),
)

UNLOCK = Form(
    key="unlock",
    title="证书解锁",
    order_type=OrderType.UNLOCK,
    fields=(
        Field("company_name", "单位名称", preset=True),
        Field("uscc", "统一社会信用代码", preset=True),
        Field("company_address", "单位地址", validate=validators.text(5, 120, "单位地址"),
              hint="营业执照上的住所或实际办公地址。"),
        Field("legal_rep", "法定代表人姓名", validate=validators.person_name,
              help="营业执照上的法定代表人。"),
        Field("company_phone", "单位电话", validate=validators.phone,
              hint="座机请带区号，例如 0539-8123456；也可以填手机号。"),
        Field("handler_name", "经办人姓名", validate=validators.person_name,
              help="授权委托的经办人，须与身份证复印件一致。"),
        Field("mobile", "经办人手机号", validate=validators.mobile, mask=mask_mobile,
              hint="解锁结果会通知到这个号码的机主，请确保能接通。"),
        Field("handler_id_number", "经办人身份证号", validate=validators.id_number,
              mask=mask_id_number, hint="18 位，最后一位可能是 X。"),
        _scan("scan_reset_form", "附件一", "CA数字证书密码重置申请表",
              "填写完整的申请表（申请事由：因CA锁密码忘记，申请CA数字证书密码重置），"
              "加盖单位公章，经办人签字并注明日期。", paper="pin_reset", prefill=True),
        _scan("scan_licence", "附件二", "营业执照复印件", "营业执照复印件，加盖公章。"),
        _scan("scan_id_card", "附件三", "经办人身份证复印件",
              "经办人身份证正反面复印件，加盖公章。"),
    ),
)

# The first account of a company (or of one nobody has verified yet): a technician checks the
# letter of authorisation naming this 经办人 and the licence. 申报人 and 联系电话 come filled in.
BINDING_REQUEST = Form(
    key="binding_request",
    title="单位绑定核验",
    order_type=OrderType.BINDING,
    fields=(
        Field("uscc", "统一社会信用代码", preset=True),
        Field("company_name", "单位名称", preset=True),
        *_DECLARANT,
        Field("user_type", "用户类型", kind=FieldKind.CHOICE, choices=USER_TYPES,
              help="单位在交易平台注册时的用户类型，与网员注册时选择的一致。"),
        Field("handler_id_number", "经办人身份证号", validate=validators.id_number,
              mask=mask_id_number, hint="18 位，最后一位可能是 X；须与授权书上的经办人一致。",
              help="单位授权书上写明的经办人（即您本人）的居民身份证号，共 18 位。"),
        _scan("scan_authorisation", "附件一", "单位授权书",
              "授权书写明由您（经办人）代表本单位办理 CA 数字证书业务，加盖单位公章。",
              paper="authorisation"),
        _scan("scan_licence", "附件二", "营业执照", "营业执照复印件，加盖单位公章。"),
    ),
)


def _cert_serial(answer: str) -> str:
    serial = normalise_serial(answer)
    if not 1 <= len(serial) <= 40 or any(c not in "0123456789abcdef" for c in serial):
        raise InvalidAnswer("证书序列号由数字 0–9 和字母 a–f 组成（十六进制），"
                            "发送「我的证书」可以查看本单位证书的序列号。")
    return serial


LOSS = Form(
    key="loss",
    title="证书挂失/解挂",
    order_type=OrderType.LOSS,
    fields=(
        Field("cert_type", "证书类型", kind=FieldKind.CHOICE, choices=("机构证书",), preset=True),
        Field("apply_kind", "办理类型", kind=FieldKind.CHOICE, choices=("挂失", "解挂"),
              preset=True),
        Field("ukey_serial", "USBKEY卡号", validate=validators.text(4, 64, "USBKEY卡号"),
              hint="UKEY 背面或证书客户端里的卡号；发送「我的证书」可以查看。",
              help="USBKEY卡号即 UKEY 的序列号，印在 UKEY 上，也可在「我的证书」里查看。"),
        Field("cert_serial", "证书序列号", validate=_cert_serial,
              hint="十六进制数字；发送「我的证书」可以查看。",
              help="要挂失或解挂的证书的序列号（十六进制），发送「我的证书」可以查看。"),
        Field("company_name", "机构名称", preset=True),
        Field("org_id_type", "机构证件类型", kind=FieldKind.CHOICE,
              choices=("统一社会信用代码",), preset=True),
        Field("org_id", "机构证件号", preset=True),
        Field("handler_name", "经办人姓名", validate=validators.person_name),
        Field("handler_id_number", "经办人身份证号", validate=validators.id_number,
              mask=mask_id_number, hint="18 位，最后一位可能是 X。"),
        Field("mobile", "手机号", validate=validators.mobile, mask=mask_mobile,
              hint="接收挂失相关通知的手机号。"),
    ),
)

# 续期 asks nothing: its values are read off the UKEY (bot/services/certificate_jobs.py). The
# form names them, so the order reads like every other in 查询 / 查看 and a rejection can be
# answered with 修改 (which then just resubmits: nothing here can be typed in).
RENEWAL = Form(
    key="renewal",
    title="证书续期",
    order_type=OrderType.RENEWAL,
    fields=(
        Field("project", "项目", preset=True),
        Field("company_name", "公司名称", preset=True),
        Field("uscc", "统一社会信用代码", preset=True),
        Field("cert_info", "证书信息", preset=True),
        Field("expires", "当前截止日期", preset=True),
        Field("token_serial", "USBKEY卡号", preset=True),
        Field("cert_serial", "证书序列号", preset=True),
    ),
)

INVOICE_TYPES = ("普通发票", "专用发票")
SPECIAL_INVOICE = INVOICE_TYPES[1]


def _invoice_type(answer: str) -> str:
    """普通/专用, as people say it: 2, 专票, 增值税专用发票, 普票 …"""
    try:
        return validators.choice(INVOICE_TYPES)(answer)
    except InvalidAnswer:
        kinds = [kind for kind, word in zip(INVOICE_TYPES, "普专", strict=True) if word in answer]
        if len(kinds) == 1:
            return kinds[0]
        raise


def _special(values: Mapping[str, str]) -> bool:
    # counted until 普通发票 is chosen, so the step count shrinks rather than grows
    return values.get("invoice_type", SPECIAL_INVOICE) == SPECIAL_INVOICE


# 开票 订单号: what the company wants on its invoice. The 抬头 and 税号 of a company's invoice
# are its registered name and USCC, so they come from the company profile (shown in the
# summary, never re-typed); a 专用发票 also needs the bank account and the address and phone.
INVOICE = Form(
    key="invoice",
    title="开具发票",
    fields=(
        Field("order_number", "订单号", preset=True),
        Field("invoice_title", "发票抬头", preset=True),
        Field("tax_id", "纳税人识别号", preset=True),
        Field("invoice_type", "发票类型", kind=FieldKind.CHOICE, choices=INVOICE_TYPES,
              validate=_invoice_type,
              help="普通发票：增值税普通发票（电子），用于报销入账；专用发票：增值税专用发票，"
                   "一般纳税人可抵扣进项税，须另填开户银行及账号、地址和电话。"),
        Field("bank_account", "开户银行及账号", validate=validators.text(8, 100, "开户银行及账号"),
              applies=_special, hint="例如：中国银行临沂兰山支行 2370 1234 5678 9012",
              help="本单位基本存款账户的开户银行名称和账号，与税务登记的一致。"),
        Field("address_phone", "地址、电话", validate=validators.text(8, 120, "地址、电话"),
              applies=_special, hint="税务登记的单位地址和电话，例如：临沂市兰山区某路 1 号 "
              "0539-8123456",
              help="专用发票上的「地址、电话」：本单位在税务机关登记的地址和电话。"),
        Field("invoice_email", "接收电子发票的邮箱", validate=validators.email_address,
              hint="开好的电子发票（PDF）会发到这个邮箱，也会在这里通知您。",
              help="用于接收电子发票的电子邮箱，例如财务人员的邮箱。"),
    ),
)

FORMS = {form.key: form for form in (BINDING, BINDING_CONTACT, BINDING_REQUEST, CERTIFICATE,
                                     UNLOCK, LOSS, RENEWAL, INVOICE)}
_FORM_OF_TYPE = {form.order_type: form for form in FORMS.values() if form.order_type}


def form_for(order_type: OrderType) -> Form:
    return _FORM_OF_TYPE[order_type]
