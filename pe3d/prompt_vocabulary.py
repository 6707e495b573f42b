"""Words of a text prompt that an editor never saw in training.

An editor whose text encoder has no pretrained weights (the embedded mini editor's tiny text tower)
knows no language beyond the prompts it was distilled on: a paraphrase built from those words is
followed, a word it never saw ("make the person look like a ghoul" for the zombie style) carries no
meaning, and the edit follows the prompt's other words only (README, "Quality of the shipped
models": 4.6 dB below the teacher for that prompt). This module finds such words, so
:class:`~pe3d.pipeline.EditPipeline` (``pe3d edit``, the web page) can say so.

The known words are those of the *training* prompts of the styles the editor was distilled on (the
``styles`` its file records), as their style folders hold them now, plus those of the active
adapter's style; a few function words ("a", "the", "like", ...) are never reported.
"""

from __future__ import annotations

import re
import warnings
from typing import Iterable, Optional, Sequence

FUNCTION_WORDS = frozenset(
    "a an the of to in on into onto as like with and or but for from by at this that these those it its "
    "is are be been his her him their them they he she my me your you our we".split()
)
"""Words never reported: they carry no edit in any style."""

_WORD = re.compile(r"[a-z]+")


class UnseenPromptWordsWarning(UserWarning):
    """A text prompt holds words the editor never saw in its training prompts (see :func:`warn_unseen_words`)."""


def prompt_words(text: str) -> list[str]:
    """The lower-case words (runs of letters) of ``text``, in order."""
    return _WORD.findall(text.lower())


def training_words(styles: Iterable[str]) -> Optional[frozenset[str]]:
    """The words of the training prompts of ``styles``, found as ``pe3d`` finds styles; ``None`` when a
    style cannot be found or loaded (then what the editor knows is unknown, and nothing is reported)."""
    from pe3d.errors import UserInputError
    from pe3d.styles.discovery import load_named_style

    words: set[str] = set()
    for name in styles:
        try:
            spec = load_named_style(name)
        except (UserInputError, OSError, ValueError):
            return None
        for prompt in spec.prompts.train:
            words.update(prompt_words(prompt))
    return frozenset(words)


def unseen_words(text: str, known: frozenset[str]) -> list[str]:
    """Words of ``text`` neither in ``known`` nor function words, each once, in prompt order."""
    out: list[str] = []
    for word in prompt_words(text):
        if word not in known and word not in FUNCTION_WORDS and word not in out:
            out.append(word)
    return out


def unseen_words_note(words: Sequence[str]) -> str:
    """A one-line note naming ``words`` for a status line (``""`` when empty)."""
    if not words:
        return ""
    return f"never trained on {', '.join(repr(w) for w in words)}: the edit may be weak or unrelated (use a style's training wording)"


def warn_unseen_words(prompt: str, words: Sequence[str]) -> None:
    """Emit an :class:`UnseenPromptWordsWarning` naming ``words`` of ``prompt`` (nothing when empty)."""
    if not words:
        return
    listed = ", ".join(repr(w) for w in words)
    meaning = "what it means" if len(words) == 1 else "what they mean"
    warnings.warn(
        f"prompt {prompt!r}: {listed} never appeared in this editor's training prompts, and its text encoder has no "
        f"pretrained language model, so it cannot know {meaning}: the edit follows the prompt's other words only and "
        "may be weak or unrelated. Use the wording "
        "of a style's training prompts (`pe3d styles --prompts` lists them; `pe3d edit --style NAME` uses the first), or an "
        "editor with a pretrained text encoder.",
        UnseenPromptWordsWarning,
        stacklevel=3,
    )
