"""Chat commands as data: each declares its words, its help line, its handler and who may run it
and when. A router (``Dialogue``, ``ReviewDesk``) looks a message up here and checks the flags;
the menu, both 帮助 texts, the plugins' usage and the docs are derived from (or tested against)
the tables. Adding a command is one ``Command`` entry and its handler."""

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

from bot.domain.order_numbers import looks_like_order_number
from bot.domain.text import normalise

H = TypeVar("H")


class FormOpen(Enum):
    """What a command does while the sender has a form open."""

    TO_FORM = "to_form"  # not a command then: the text is the form's input
    ANSWER = "answer"  # answered, and the open form is recalled
    PAUSE = "pause"  # the form is paused (it waits for 继续 or 取消)


@dataclass(frozen=True)
class Command(Generic[H]):
    words: tuple[str, ...]  # the first is the one shown; the others are aliases
    usage: str  # how it is sent: the help line and the 用法：… of usage errors
    help: str  # what it does
    handler: H
    # instead of the bare words: the whole message matches, group 1 is the argument; ``argument``
    # then must accept it (returning its canonical form) or the message is no command
    pattern: re.Pattern[str] | None = None
    argument: Callable[[str], str | None] | None = None
    binding: bool = True  # the sender must have bound a company
    verified: bool = False  # ... and that binding must be verified (see ``is_verified``)
    pki: bool = False  # needs the certificate service (bot.toml [pki])
    email: bool = False  # only in the menu when mail is sent (bot.toml [email]): 邮箱
    private: bool = False  # refused in a group
    shared: bool = False  # a technician's that applicants send too: theirs go to the Dialogue
    # with ``shared``: the technician's takes an argument; the bare word is the applicant's command
    # for a technician bound to a company (挂失 alone starts the loss form, 挂失 序列号 理由 holds)
    argument_required: bool = False
    form_open: FormOpen = FormOpen.TO_FORM
    menu: bool = True  # listed in the menu and 帮助 (False: kept out, e.g. a follow-up step)
    pending_only: bool = False  # listed only while the binding awaits verification (申请核验)

    @property
    def word(self) -> str:
        return self.words[0]

    def argument_of(self, text: str) -> str | None:
        """The argument when ``text`` (normalised) is this command, else None."""
        if text in self.words:
            return ""
        match = self.pattern.fullmatch(text) if self.pattern else None
        if match is None:
            return None
        return self.argument(match.group(1)) if self.argument else match.group(1)


class CommandTable(Generic[H]):
    """The commands of one audience, in menu order."""

    def __init__(self, commands: Iterable[Command[H]]) -> None:
        self.commands = tuple(commands)
        words = [w for c in self.commands for w in c.words]
        duplicates = {w for w in words if words.count(w) > 1}
        if duplicates:
            raise ValueError(f"command words declared twice: {sorted(duplicates)}")
        self._by_word = {w: c for c in self.commands for w in c.words}
        self._patterned = tuple(c for c in self.commands if c.pattern)
        # ``match`` looks words up before it tries patterns: no word may be another's argument
        taken = sorted(w for w, c in self._by_word.items()
                       if any(o is not c and o.argument_of(w) is not None for o in self._patterned))
        if taken:
            raise ValueError(f"command words that another command's pattern takes: {taken}")

    def __iter__(self) -> Iterator[Command[H]]:
        return iter(self.commands)

    def visible(self, *, pki: bool = True, verified: bool = True,
                email: bool = True) -> list[Command[H]]:
        """What the menu lists: for a pending binding (``verified`` False) only what it may do,
        with the commands that lead to verification; nothing about mail when none is sent."""
        return [c for c in self.commands if c.menu and (pki or not c.pki)
                and (email or not c.email)
                and (not c.pending_only if verified else not c.verified)]

    def match(self, text: str) -> tuple[Command[H], str] | None:
        """The command the whole message is (a word, or a pattern), with its argument."""
        text = normalise(text)
        if (command := self._by_word.get(text)) is not None:  # most are a bare word
            return command, ""
        for command in self._patterned:
            if (argument := command.argument_of(text)) is not None:
                return command, argument
        return None

    def first_word(self, text: str) -> Command[H] | None:
        """The command the message starts with (see ``split``)."""
        found = self.split(text)
        return found[0] if found else None

    def split(self, text: str) -> tuple[Command[H], str] | None:
        """The command the message starts with, and the rest: its first word followed by a
        space or nothing, or glued to an order number (「查看XB-261125-7KQ3」, as people type)."""
        text = normalise(text)
        word, *rest = text.split(maxsplit=1) or [""]
        if word in self._by_word:
            return self._by_word[word], rest[0] if rest else ""
        for known in sorted(self._by_word, key=len, reverse=True):  # 解锁状态 before 解锁
            if word.startswith(known) and looks_like_order_number(word[len(known):]):
                return self._by_word[known], text[len(known):]
        return None

    def __getitem__(self, word: str) -> Command[H]:
        return self._by_word[word]
