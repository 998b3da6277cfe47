"""The form engine: one conversation over a ``Form``, as pure state transitions.

The state is plain JSON so the caller can persist it after every step; a restart loses nothing.
Answers are kept until replaced: ``上一步`` and ``修改 N`` re-ask a field and show what it held.
A form may start with remembered answers (``defaults``: what the company's last order held, or a
suggestion such as the centre's city): each is offered with its question and taken with one reply
(「1」, or the option's own number for a choice, or 「沿用」); any other answer replaces it.
"""

import re
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from bot.domain.fees import Fees, quote
from bot.domain.fields import Field, FieldKind, numbered
from bot.domain.forms import FORMS, Form
from bot.domain.json_values import copied
from bot.domain.lifecycle import OrderType
from bot.domain.scans import ScanInfo
from bot.domain.text import normalise
from bot.domain.validators import InvalidAnswer

BACK = {"上一步", "上一项", "返回"}
CANCEL = {"取消", "放弃"}
HELP = {"帮助", "?", "help"}
RESUME = {"继续"}
SUBMIT = {"确认提交", "提交", "确认"}
YES = {"是", "是的", "确定", "确认", "放弃", "y", "yes"}
KEEP = "沿用"  # takes the offered answer, on any field that offers one
_EDIT = re.compile(r"修改\s*(\d+)")
COMMANDS_HINT = "（可回复「上一步」「帮助」「取消」）"


class Mode(StrEnum):
    FILLING = "filling"
    SUMMARY = "summary"
    CONFIRM_CANCEL = "confirm_cancel"


@dataclass
class FlowState:
    form: str
    values: dict[str, str] = field(default_factory=dict)
    scans: dict[str, dict[str, Any]] = field(default_factory=dict)
    position: str | None = None  # the field being asked; None at the summary
    mode: Mode = Mode.FILLING
    before_cancel: Mode = Mode.FILLING
    editing: bool = False  # changing one field from the summary
    paused: bool = False  # idle for long: wait for 继续 before taking answers
    order_number: str | None = None  # revising this rejected order rather than a new one
    previous: dict[str, str] = field(default_factory=dict)  # shown answers of revised fields
    defaults: dict[str, str] = field(default_factory=dict)  # offered answers, by field (full)
    suggested: list[str] = field(default_factory=list)  # defaults that are no earlier answer

    def to_json(self) -> dict[str, Any]:
        return {name: copied(getattr(self, name)) for name in _STATE_FIELDS}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "FlowState":
        state = cls(**data)
        state.mode = Mode(state.mode)
        state.before_cancel = Mode(state.before_cancel)
        return state


_STATE_FIELDS = tuple(f.name for f in fields(FlowState))


@dataclass
class Outcome:
    replies: list[str]
    finished: bool = False  # every field answered and confirmed: the caller files it
    cancelled: bool = False
    refused: bool = False  # the text was no valid answer: the same field is asked again


class FormFlow:
    """Drives one ``FlowState`` through its form. Methods mutate the state and say what to send.
    Given the centre's ``fees``, the summary of an order's form says what it will cost."""

    def __init__(self, state: FlowState, fees: Fees | None = None) -> None:
        self.state = state
        self.form: Form = FORMS[state.form]
        self.fees = fees

    # --- starting -------------------------------------------------------------------------
    @classmethod
    def start(cls, form: Form, presets: dict[str, str] | None = None,
              fees: Fees | None = None, *, defaults: dict[str, str] | None = None,
              suggested: dict[str, str] | None = None) -> tuple["FormFlow", Outcome]:
        """``presets`` answer fields outright (a preset field must have one; an asked field given
        one is shown in the summary, not asked). ``defaults`` (answers remembered from an earlier
        order) and ``suggested`` (e.g. the centre's city) are offered when their field is asked;
        a default wins over a suggestion. ``fees`` price the summary."""
        offers = {**(suggested or {}), **(defaults or {})}
        asked = {f.key for f in form.fields if not f.preset}
        flow = cls(FlowState(form=form.key, values=dict(presets or {}),
                             defaults={k: v for k, v in offers.items() if k in asked},
                             suggested=sorted(k for k in (suggested or {})
                                              if k in asked and k not in (defaults or {}))),
                   fees)
        missing = [f.key for f in form.fields if f.preset and f.key not in flow.state.values]
        if missing:
            raise ValueError(f"presets missing for {form.key}: {missing}")
        flow._advance_from(None)
        return flow, Outcome([f"开始办理【{form.title}】。{COMMANDS_HINT}", flow.prompt()])

    @classmethod
    def revise(cls, form: Form, order_number: str, values: dict[str, str],
               scans: dict[str, ScanInfo], redo: list[Field],
               reason: str, fees: Fees | None = None) -> tuple["FormFlow", Outcome]:
        """Correct a rejected order: ask again only ``redo``; with none named, go to the summary
        so the applicant picks with 修改 N."""
        state = FlowState(form=form.key, values=dict(values),
                          scans={k: asdict(v) for k, v in scans.items()}, order_number=order_number)
        flow = cls(state, fees)
        for f in redo:
            if f.kind is FieldKind.SCAN:
                state.previous[f.key] = "已上传" if state.scans.pop(f.key, None) else ""
            elif f.key in state.values:
                state.previous[f.key] = f.shown(state.values.pop(f.key))
        state.editing = True
        flow._advance_from(None)
        head = f"修改订单 {order_number}。驳回理由：{reason}"
        if redo:
            head += f"\n需要重新提供：{'、'.join(f.title for f in redo)}，其余内容保持不变。"
        else:
            head += "\n请回复「修改 序号」修改相应的项目，改好后回复「确认提交」重新提交。"
        return flow, Outcome([head, flow.prompt()])

    # --- what the state means --------------------------------------------------------------
    def asked_fields(self) -> list[Field]:
        """The fields this applicant answers, in order, given the answers so far."""
        values = self.state.values
        return [f for f in self.form.fields if not f.preset and f.applies(values)]

    def is_answered(self, f: Field) -> bool:
        return f.key in (self.state.scans if f.kind is FieldKind.SCAN else self.state.values)

    @property
    def current(self) -> Field | None:
        return self.form.field(self.state.position) if self.state.position else None

    @property
    def expects_scan(self) -> bool:
        current = self.current
        return (self.state.mode is Mode.FILLING and not self.state.paused
                and current is not None and current.kind is FieldKind.SCAN)

    def progress(self) -> tuple[int, int]:
        asked = self.asked_fields()
        return sum(self.is_answered(f) for f in asked), len(asked)

    def result(self) -> tuple[dict[str, str], dict[str, ScanInfo]]:
        """The answers that apply (a field made moot by a later change is dropped)."""
        keys = {f.key for f in self.form.fields if f.preset or f.applies(self.state.values)}
        values = {k: v for k, v in self.state.values.items() if k in keys}
        scans = {k: ScanInfo(**v) for k, v in self.state.scans.items() if k in keys}
        return values, scans

    # --- prompts --------------------------------------------------------------------------
    def prompt(self) -> str:
        if self.state.mode is Mode.SUMMARY or self.current is None:
            return self.summary()
        f = self.current
        asked = self.asked_fields()
        step = f"（第 {asked.index(f) + 1}/{len(asked)} 项）" if f in asked else ""
        if f.kind is FieldKind.SCAN:
            lines = [f"请发送【{f.title}】的图片{step}", f.hint]
        elif f.kind is FieldKind.CHOICE:
            lines = [f"请选择【{f.label}】{step}", numbered(f.choices), "回复序号或文字即可。"]
            if f.hint:
                lines.insert(1, f.hint)
        else:
            lines = [f"请输入【{f.label}】{step}"] + ([f.hint] if f.hint else [])
        previous = self._previous_answer(f)
        if previous:
            lines.append(f"（原填写：{previous}，请重新回复）")
        elif (offered := self._offered(f)) is not None:
            lines.append(self._offer_line(f, offered))
        return "\n".join(line for line in lines if line)

    def _offered(self, f: Field) -> str | None:
        """The remembered answer offered for ``f``, while it is unanswered."""
        if f.kind is FieldKind.SCAN or f.key in self.state.values:
            return None
        return self.state.defaults.get(f.key)

    def _take_word(self, f: Field, offered: str) -> str:
        """The reply that takes the offer: 1, unless 1 means something else here (a choice's
        first option, a count); then the option's own number, or 沿用."""
        if f.kind is FieldKind.CHOICE and offered in f.choices:
            return str(f.choices.index(offered) + 1)
        try:
            f.check("1")
        except InvalidAnswer:
            return "1"
        return KEEP

    def _offer_line(self, f: Field, offered: str) -> str:
        word = self._take_word(f, offered)
        reply = f"回复 {word} " if word != KEEP else f"回复「{KEEP}」"
        if f.key in self.state.suggested:
            return f"建议：{f.shown(offered)}（{reply}选择）"
        return f"沿用上次：{f.shown(offered)}（{reply}沿用）"

    def _previous_answer(self, f: Field) -> str:
        if f.kind is FieldKind.SCAN:
            return "已上传" if f.key in self.state.scans else self.state.previous.get(f.key, "")
        value = self.state.values.get(f.key)
        return f.shown(value) if value else self.state.previous.get(f.key, "")

    def summary(self) -> str:
        values = self.state.values
        action = f"修改订单 {self.state.order_number}" if self.state.order_number else ""
        lines = [f"请核对【{self.form.title}】信息：" + (f"（{action}）" if action else "")]
        lines += [f"{f.label}：{f.shown(values[f.key])}" for f in self.form.fields if f.preset]
        for i, f in enumerate(self.asked_fields(), 1):
            if f.kind is FieldKind.SCAN:
                scan = self.state.scans.get(f.key)
                shown = ScanInfo(**scan).describe() if scan else "未上传"
            else:
                shown = f.shown(values[f.key]) if f.key in values else "未填写"
            lines.append(f"{i}. {f.title}：{shown}")
        order_type = self.form.order_type
        if self.fees is not None and order_type not in (None, OrderType.BINDING):
            lines.append(quote(order_type, values, self.fees).line)
        submit = "重新提交" if self.state.order_number else "提交"
        lines.append(f"回复「确认提交」{submit}；回复「修改 序号」修改某一项，例如「修改 3」；"
                     "回复「取消」放弃。")
        return "\n".join(lines)

    def help(self) -> str:
        f = self.current
        if self.state.mode is Mode.SUMMARY or f is None:
            return ("现在是最后的核对步骤。回复「确认提交」提交申请；回复「修改 序号」修改某一项；"
                    "回复「上一步」回到最后一项；回复「取消」放弃。")
        detail = f.help or f.hint or f"请填写{f.label}。"
        how = "直接发送图片即可。" if f.kind is FieldKind.SCAN else "直接回复即可。"
        if (offered := self._offered(f)) is not None:
            how = f"{self._offer_line(f, offered)}；也可以直接回复新的内容。"
        return f"【{f.title}】{detail}\n{how}回复「上一步」返回上一项，回复「取消」放弃本次办理。"

    def reminder(self) -> str:
        done, total = self.progress()
        return (f"您有一份未完成的【{self.form.title}】（已填写 {done}/{total} 项）。"
                "回复「继续」接着填写，回复「取消」放弃。")

    # --- input ----------------------------------------------------------------------------
    def pause(self) -> None:
        self.state.paused = True

    def handle_text(self, text: str) -> Outcome:
        answer = normalise(text)
        word = answer.lower()
        state = self.state
        if state.mode is Mode.CONFIRM_CANCEL:
            if word in YES:
                number = state.order_number
                if number:
                    return Outcome([f"已放弃修改。订单 {number} 仍为已驳回状态，"
                                    f"随时可以回复「修改 {number}」重新修改。"], cancelled=True)
                return Outcome([f"已放弃本次【{self.form.title}】，填写的内容和上传的图片已删除。"],
                               cancelled=True)
            state.mode = state.before_cancel
            return Outcome(["好的，继续填写。", self.prompt()])
        if word in CANCEL:
            state.before_cancel, state.mode, state.paused = state.mode, Mode.CONFIRM_CANCEL, False
            what = (f"对订单 {state.order_number} 的修改" if state.order_number
                    else f"本次【{self.form.title}】")
            return Outcome([f"确定要放弃{what}吗？已填写的内容将被删除。"
                            "回复「是」放弃，回复其他内容继续填写。"])
        if state.paused:
            if word in RESUME:
                state.paused = False
                return Outcome(["欢迎回来，我们接着填写。", self.prompt()])
            return Outcome([self.reminder()])
        if word in HELP:
            return Outcome([self.help()])
        if word in RESUME:
            return Outcome([self.prompt()])
        if word in BACK:
            return self._back()
        if state.mode is Mode.SUMMARY:
            return self._at_summary(answer)
        f = self.current
        assert f is not None
        if state.editing and (edit := self._edit(answer)) is not None:
            return edit  # 修改 N while re-asking after the summary: another field instead
        if f.kind is FieldKind.SCAN:
            return Outcome([f"这一步需要发送【{f.title}】的图片，请直接发送图片。"
                            "如需帮助请回复「帮助」。"])
        offered = self._offered(f)
        if offered is not None and word in {self._take_word(f, offered), KEEP}:
            answer = offered
        elif word == KEEP:
            return Outcome([f"【{f.label}】没有可以沿用的内容，请直接回复。\n{self.prompt()}"])
        try:
            value = f.check(answer)
        except InvalidAnswer as error:
            if answer == offered:  # remembered, but no longer valid: not offered again
                state.defaults.pop(f.key, None)
            return Outcome([f"{error}\n{self.prompt()}"], refused=True)
        state.values[f.key] = value
        return self._after_answer(f)

    def handle_scan(self, scan: ScanInfo) -> Outcome:
        f = self.current
        if not self.expects_scan or f is None:
            return Outcome(["现在不需要图片。" + self.prompt()])
        self.state.scans[f.key] = asdict(scan)
        return self._after_answer(f, f"已收到【{f.title}】（{scan.describe()}）。")

    def recall(self) -> str:
        """The form again after a command answered while it is open: its question, unless it
        waits for 继续 (paused) or for 是 (cancelling)."""
        if self.state.paused or self.state.mode is Mode.CONFIRM_CANCEL:
            return self.reminder()
        done, total = self.progress()
        return (f"您有一份未完成的【{self.form.title}】（已填写 {done}/{total} 项），"
                f"接着回复即可：\n{self.prompt()}")

    def reopen(self, key: str, message: str) -> Outcome:
        """Ask one field again because a check beyond the form failed (e.g. a name mismatch)."""
        self.state.values.pop(key, None)
        self.state.scans.pop(key, None)
        self.state.position, self.state.mode, self.state.editing = key, Mode.FILLING, True
        return Outcome([f"{message}\n{self.prompt()}"])

    # --- moving ---------------------------------------------------------------------------
    def _after_answer(self, f: Field, receipt: str = "") -> Outcome:
        self._advance_from(None if self.state.editing else f)
        if self.state.mode is Mode.SUMMARY and not self.form.confirm:
            return Outcome([receipt] if receipt else [], finished=True)
        return Outcome([r for r in (receipt, self.prompt()) if r])

    def _advance_from(self, answered: Field | None) -> None:
        """Ask the field after ``answered``; when editing (or starting), the first unanswered."""
        asked = self.asked_fields()
        if answered is not None and answered in asked:
            following = asked[asked.index(answered) + 1:]
        else:
            following = [f for f in asked if not self.is_answered(f)]
        if not following and answered is not None:
            following = [f for f in asked if not self.is_answered(f)]
        if following:
            self.state.position, self.state.mode = following[0].key, Mode.FILLING
        else:
            self.state.position, self.state.mode, self.state.editing = None, Mode.SUMMARY, False

    def _back(self) -> Outcome:
        asked = self.asked_fields()
        f = self.current
        if self.state.mode is Mode.SUMMARY or f is None:
            target = asked[-1]
        elif f in asked and asked.index(f) > 0:
            target = asked[asked.index(f) - 1]
        else:
            return Outcome(["已经是第一项了。", self.prompt()])
        self.state.position, self.state.mode = target.key, Mode.FILLING
        return Outcome([self.prompt()])

    def _at_summary(self, answer: str) -> Outcome:
        if answer in SUBMIT:
            missing = [f.title for f in self.asked_fields() if not self.is_answered(f)]
            if missing:  # cannot happen through the engine; guards a hand-edited state
                self._advance_from(None)
                return Outcome([f"还有未填写的项目：{'、'.join(missing)}。", self.prompt()])
            return Outcome([], finished=True)
        return self._edit(answer) or Outcome([
            "请回复「确认提交」提交申请，或回复「修改 序号」修改某一项，例如「修改 3」。"])

    def _edit(self, answer: str) -> Outcome | None:
        """「修改 N」: ask field N (numbered as in the summary); None when it is not that."""
        match = _EDIT.fullmatch(answer)
        if match is None:
            return None
        asked = self.asked_fields()
        if not 1 <= int(match.group(1)) <= len(asked):
            return Outcome([f"没有第 {match.group(1)} 项，请回复 1–{len(asked)} 之间的序号，"
                            "例如「修改 3」。"])
        target = asked[int(match.group(1)) - 1]
        self.state.position, self.state.mode, self.state.editing = target.key, Mode.FILLING, True
        return Outcome([self.prompt()])
