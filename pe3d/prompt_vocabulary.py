"""Words of a text prompt that an editor never saw in training.

An editor whose text encoder has no pretrained weights (the embedded mini editor's tiny text tower)
knows no language beyond the prompts it was distilled on: a paraphrase built from those words is
followed, a word it never saw ("make the person look like a ghoul" for the zombie style) carries no
meaning, and the edit follows the prompt's other words only (README, "Quality of the shipped
models": 4.0 dB below the teacher for that prompt). This module finds such words, so
:class:`~pe3d.pipeline.EditPipeline` (``pe3d edit``, the web page) can say so.

The known words are those of the *training* prompts of the styles the editor was distilled on (the
``styles`` its file records), as their style folders hold them now, plus those of the active
adapter's style; a few function words ("a", "the", "like", ...) are never reported. An editor whose
tower was built with WordNet token vectors (``prompt_encoder.text.token_vectors``,
:mod:`pe3d.models.lexicon`) reads an unseen word through its vector: :func:`nearest_known_words` says
as which training word, and the warning names it.
"""

from __future__ import annotations

import functools
import re
import warnings
from typing import Iterable, Mapping, Optional, Sequence

FUNCTION_WORDS = frozenset(
    "a an the of to in on into onto as like with and or but for from by at this that these those it its "
    "is are be been his her him their them they he she my me your you our we".split()
)
"""Words never reported: they carry no edit in any style."""

_WORD = re.compile(r"[a-z]+")
_WORD_ANY_CASE = re.compile(r"[A-Za-z]+")


class UnseenPromptWordsWarning(UserWarning):
    """A text prompt holds words the editor never saw in its training prompts (see :func:`warn_unseen_words`)."""


class PromptReadingWarning(UserWarning):
    """The editor reads a text prompt otherwise than written: words in no training prompt that begin with a
    training word are read through it (:func:`read_compounds`; see :func:`warn_prompt_reading`)."""


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


MIN_STEM_LETTERS = 4
"""The shortest known word :func:`compound_reading` reads an unseen word through ("pop" is too short:
"popular" is no pop art)."""
MIN_REST_LETTERS = 3
"""What is left after the known stem is kept as a word of its own from this length ("sketchbook" ->
"sketch book"); a shorter rest is an inflection and dropped ("zombies" -> "zombie")."""


def compound_reading(word: str, known: frozenset[str]) -> Optional[str]:
    """How an editor without language reads an unseen ``word`` that *begins* with a known word: that word
    (the longest of at least :data:`MIN_STEM_LETTERS` letters) and, as a word of its own, the rest when it has
    at least :data:`MIN_REST_LETTERS` letters ("sketchbook" -> "sketch book", "zombies" -> "zombie",
    "bronzed" -> "bronze"). ``None`` when ``word`` is known, a function word, or begins with no known word."""
    word = word.lower()
    if word in known or word in FUNCTION_WORDS:
        return None
    stems = [k for k in known if len(k) >= MIN_STEM_LETTERS and len(k) < len(word) and word.startswith(k)
             and k not in FUNCTION_WORDS]
    if not stems:
        return None
    stem = max(stems, key=len)
    rest = word[len(stem):]
    return f"{stem} {rest}" if len(rest) >= MIN_REST_LETTERS else stem


def read_compounds(text: str, known: frozenset[str]) -> str:
    """``text`` with every unseen word that begins with a known word replaced by its
    :func:`compound_reading` (the rest of the text as it was). The mini text tower gives a word no training
    prompt used a random, never-trained token row, so "a sketchbook portrait" lost the pencil edit that "a
    sketch book portrait" keeps; an editor built by :func:`~pe3d.models.editor.load_editor` reads its prompts
    this way at inference (``EditorCore.known_prompt_words``)."""

    def replace(match: re.Match) -> str:
        reading = compound_reading(match.group(0), known)
        return match.group(0) if reading is None else reading

    return _WORD_ANY_CASE.sub(replace, text)


def unseen_words(text: str, known: frozenset[str]) -> list[str]:
    """Words of ``text`` neither in ``known`` nor function words, each once, in prompt order."""
    out: list[str] = []
    for word in prompt_words(text):
        if word not in known and word not in FUNCTION_WORDS and word not in out:
            out.append(word)
    return out


def nearest_known_words(encoder, words: Sequence[str], known: Iterable[str]) -> dict[str, str]:
    """How a text tower with WordNet token vectors (``token_vectors``, :mod:`pe3d.models.lexicon`) reads
    unseen ``words``: each word that is one whole-word token with a WordNet row -> the ``known`` word
    (one whole-word token, not a function word) whose token row is nearest (cosine). Empty for a tower
    without token vectors or when the vector file cannot be read."""
    if encoder is None or getattr(encoder.cfg, "token_vectors", None) is None or not words:
        return {}
    lexical = _lexical_token_ids(encoder.cfg.token_vectors)
    if not lexical:
        return {}
    vocabulary = encoder.tokenizer.encoder
    table = encoder.backbone.token_embedding.weight.detach()

    def row(word: str) -> Optional[int]:
        token = vocabulary.get(f"{word}</w>")
        return token if token is not None and token in lexical else None

    candidates = sorted({w for w in known if w not in FUNCTION_WORDS and row(w) is not None})
    if not candidates:
        return {}
    rows = table[[row(w) for w in candidates]]
    rows = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-8)
    readings: dict[str, str] = {}
    for word in words:
        token = row(word)
        if token is None:
            continue
        query = table[token] / table[token].norm().clamp_min(1e-8)
        readings[word] = candidates[int((rows @ query).argmax())]
    return readings


@functools.lru_cache(maxsize=4)
def _lexical_token_ids(token_vectors: str) -> frozenset[int]:
    """The token ids a token-vector file gives rows (empty when it cannot be read); read once per file."""
    from pe3d.errors import UserInputError
    from pe3d.models.lexicon import load_token_vectors, resolve_token_vectors

    try:
        return frozenset(load_token_vectors(resolve_token_vectors(token_vectors))[0].tolist())
    except (UserInputError, OSError):
        return frozenset()


def unseen_words_note(words: Sequence[str], readings: Mapping[str, str] | None = None) -> str:
    """A one-line note naming ``words`` for a status line (``""`` when empty); ``readings`` (unseen word ->
    the nearest training word, :func:`nearest_known_words`) says how the editor reads them."""
    if not words:
        return ""
    readings = readings or {}
    if all(w in readings for w in words):
        read = ", ".join(f"{w!r} as {readings[w]!r}" for w in words)
        return f"never trained on {', '.join(repr(w) for w in words)}: read through WordNet ({read}); the edit may be weaker"
    return f"never trained on {', '.join(repr(w) for w in words)}: the edit may be weak or unrelated (use a style's training wording)"


def prompt_reading_note(prompt: str, read: str) -> str:
    """A one-line note that ``prompt`` is read as ``read`` (``""`` when they are the same)."""
    return "" if read == prompt else f"read as {read!r}"


def warn_prompt_reading(prompt: str, read: str) -> None:
    """Emit a :class:`PromptReadingWarning` when the editor reads ``prompt`` as ``read`` (nothing when equal)."""
    if read != prompt:
        warnings.warn(
            f"prompt {prompt!r} is read as {read!r}: a word in no training prompt that begins with a training word is "
            "read through that word (`pe3d styles --prompts` lists the training prompts).",
            PromptReadingWarning, stacklevel=3)


def warn_unseen_words(prompt: str, words: Sequence[str], readings: Mapping[str, str] | None = None) -> None:
    """Emit an :class:`UnseenPromptWordsWarning` naming ``words`` of ``prompt`` (nothing when empty);
    ``readings`` as in :func:`unseen_words_note`."""
    if not words:
        return
    readings = readings or {}
    listed = ", ".join(repr(w) for w in words)
    if all(w in readings for w in words):
        read = ", ".join(f"{w!r} near {readings[w]!r}" for w in words)
        message = (
            f"prompt {prompt!r}: {listed} never appeared in this editor's training prompts; its text encoder reads "
            f"{'it' if len(words) == 1 else 'them'} through WordNet word vectors ({read}), so the edit follows that "
            "reading and may be weaker than with a training word (`pe3d styles --prompts` lists them)."
        )
    else:
        meaning = "what it means" if len(words) == 1 else "what they mean"
        message = (
            f"prompt {prompt!r}: {listed} never appeared in this editor's training prompts, and its text encoder has no "
            f"pretrained language model, so it cannot know {meaning}: the edit follows the prompt's other words only and "
            "may be weak or unrelated. Use the wording "
            "of a style's training prompts (`pe3d styles --prompts` lists them; `pe3d edit --style NAME` uses the first), or an "
            "editor with a pretrained text encoder."
        )
    warnings.warn(message, UnseenPromptWordsWarning, stacklevel=3)
