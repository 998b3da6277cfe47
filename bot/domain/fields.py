"""Form fields declared as data: the label as SPEC.md spells it, the validator, the choices."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from bot.domain import validators
from bot.domain.validators import Validator


class FieldKind(StrEnum):
    TEXT = "text"
    CHOICE = "choice"
    SCAN = "scan"


def _always(_values: Mapping[str, str]) -> bool:
    return True


@dataclass(frozen=True)
class Field:
    key: str
    label: str  # exactly as SPEC.md spells it; shown in 【】
    kind: FieldKind = FieldKind.TEXT
    validate: Validator | None = None
    choices: tuple[str, ...] = ()
    hint: str = ""  # shown with the question
    help: str = ""  # shown when the applicant asks for 帮助
    mask: Callable[[str], str] | None = None  # for personal numbers
    applies: Callable[[Mapping[str, str]], bool] = _always
    preset: bool = False  # filled from the company profile or the command, never asked
    slot: str = ""  # 附件一 … for scans
    paper: str = ""  # a scan of a paper form the centre provides (bot/documents), sent by 模板
    prefill: bool = False  # ... and sent filled in from the answers when this scan is asked

    @property
    def title(self) -> str:
        return f"{self.slot} {self.label}" if self.slot else self.label

    def check(self, answer: str) -> str:
        """Validate a typed answer; raises validators.InvalidAnswer."""
        if self.validate is not None:
            return self.validate(answer)
        if self.kind is FieldKind.CHOICE:
            return validators.choice(self.choices)(answer)
        return validators.text(1, 200, self.label)(answer)

    def shown(self, value: str) -> str:
        """The value as shown in summaries and lists: personal numbers masked."""
        return self.mask(value) if self.mask else value


def numbered(choices: tuple[str, ...]) -> str:
    return "\n".join(f"{i}. {option}" for i, option in enumerate(choices, 1))
