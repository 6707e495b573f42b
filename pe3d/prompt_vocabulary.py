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

At inference an editor reads its prompts through a :class:`PromptVocabulary`: an unseen word that begins
with a known one is read through it (:func:`compound_reading`: "sketchbook" as "sketch book"), and a prompt
that holds no word of any one style ("make the person look like a ghoul") has its unseen word nearest a
style's name in WordNet read as that name word (:func:`lexical_reading`: "ghoul" as "zombie").
"""

from __future__ import annotations

import functools
import re
import warnings
from dataclasses import dataclass
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


class NoStyleNamedWarning(UserWarning):
    """A text prompt names none of the styles the editor was trained on, so the portrait is returned unedited
    (see :meth:`PromptVocabulary.names_no_style`)."""


def prompt_words(text: str) -> list[str]:
    """The lower-case words (runs of letters) of ``text``, in order."""
    return _WORD.findall(text.lower())


def training_words_by_style(styles: Iterable[str]) -> Optional[dict[str, frozenset[str]]]:
    """Style -> the words of its training prompts, each style found as ``pe3d`` finds styles; ``None`` when a
    style cannot be found or loaded (then what the editor knows is unknown, and nothing is reported)."""
    from pe3d.errors import UserInputError
    from pe3d.styles.discovery import load_named_style

    by_style: dict[str, frozenset[str]] = {}
    for name in styles:
        try:
            spec = load_named_style(name)
        except (UserInputError, OSError, ValueError):
            return None
        by_style[name] = frozenset(word for prompt in spec.prompts.train for word in prompt_words(prompt))
    return by_style


def training_words(styles: Iterable[str]) -> Optional[frozenset[str]]:
    """The words of the training prompts of ``styles`` (:func:`training_words_by_style`, all styles together);
    ``None`` when a style cannot be found or loaded."""
    by_style = training_words_by_style(styles)
    return None if by_style is None else frozenset().union(*by_style.values())


def training_vocabulary(styles: Iterable[str]) -> Optional["PromptVocabulary"]:
    """The :class:`PromptVocabulary` of ``styles``' training prompts; ``None`` when a style cannot be read."""
    by_style = training_words_by_style(styles)
    return None if by_style is None else PromptVocabulary(by_style)


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
    this way at inference (``EditorCore.prompt_vocabulary``)."""

    def replace(match: re.Match) -> str:
        reading = compound_reading(match.group(0), known)
        return match.group(0) if reading is None else reading

    return _WORD_ANY_CASE.sub(replace, text)


LEXICON = "shipped:lexicon_mini"
"""The WordNet token-vector file (:mod:`pe3d.models.lexicon`) unseen words are read through by default."""
MIN_LEXICAL_COSINE = 0.5
"""The least cosine (WordNet token vectors, :mod:`pe3d.models.lexicon`) at which :func:`lexical_reading` reads an
unseen word as a style word."""


def distinctive_words(words_by_style: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """Word -> style for the words of exactly one style's training prompts (function words never): the words
    that carry a style ("zombie", "graphite", "warhol"), not those every style's prompts share ("turn", "face")."""
    owners: dict[str, set[str]] = {}
    for style, words in words_by_style.items():
        for word in words:
            if word not in FUNCTION_WORDS:
                owners.setdefault(word, set()).add(style)
    return {word: next(iter(styles)) for word, styles in owners.items() if len(styles) == 1}


class WordNetNeighbours:
    """Cosine neighbours of single words in a WordNet token-vector file (:mod:`pe3d.models.lexicon`): each
    word that is one whole-word token of the CLIP tokenizer and has a row in the file has a unit vector."""

    def __init__(self, token_vectors: str = LEXICON, arch: str = "ViT-B-32") -> None:
        from pe3d.models.lexicon import load_token_vectors, resolve_token_vectors
        from pe3d.models.prompt_text import _tokenizer

        token_ids, vectors = load_token_vectors(resolve_token_vectors(token_vectors))
        self.source = token_vectors
        self._row = {int(token): i for i, token in enumerate(token_ids.tolist())}
        self._unit = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-8)
        self._vocabulary = _tokenizer(arch).encoder

    def vector(self, word: str):
        """The unit vector of ``word`` (lower-case), or ``None`` when it is no single token with a row."""
        row = self._row.get(self._vocabulary.get(f"{word.lower()}</w>", -1))
        return None if row is None else self._unit[row]

    def nearest(self, word: str, candidates: Iterable[str]) -> Optional[tuple[str, float]]:
        """The candidate whose vector is nearest ``word``'s and the cosine; ``None`` when either side has none."""
        query = self.vector(word)
        scored = [(w, v) for w in sorted(set(candidates)) if (v := self.vector(w)) is not None]
        if query is None or not scored:
            return None
        cosines = [float(v @ query) for _, v in scored]
        best = max(range(len(scored)), key=cosines.__getitem__)
        return scored[best][0], cosines[best]


@functools.lru_cache(maxsize=4)
def wordnet_neighbours(token_vectors: str = LEXICON) -> Optional[WordNetNeighbours]:
    """:class:`WordNetNeighbours` for a token-vector file, read once; ``None`` when it cannot be read (then
    nothing is read lexically)."""
    from pe3d.errors import UserInputError

    try:
        return WordNetNeighbours(token_vectors)
    except (UserInputError, OSError, NotImplementedError):
        return None


def shared_by_half(words_by_style: Mapping[str, Iterable[str]]) -> frozenset[str]:
    """The words that the training prompts of at least half of the styles use, and of at least two
    (``max(2, ⌈n/2⌉)`` of ``n``): words that say nothing about which edit is meant ("make", "person")."""
    counts: dict[str, int] = {}
    for words in words_by_style.values():
        for word in set(words):
            counts[word] = counts.get(word, 0) + 1
    need = max(2, -(-len(words_by_style) // 2))
    return frozenset(word for word, count in counts.items() if count >= need)


def telling_words(words_by_style: Mapping[str, Iterable[str]]) -> frozenset[str]:
    """The words that can tell a style from the others: neither a function word nor one of :func:`shared_by_half`;
    "zombie", "graphite", also "statue" (bronze's and marble's of six styles), but not "make", "person" or
    "portrait", which most styles' prompts share. With one style, all of its words but the function words."""
    every = frozenset().union(*map(frozenset, words_by_style.values())) if words_by_style else frozenset()
    return every - shared_by_half(words_by_style) - FUNCTION_WORDS


def style_name_words(words_by_style: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """Word -> style for the words of a style's *name* ("blue_hair" -> "blue", "hair") that are
    :func:`distinctive_words` of that style: the words that carry it most surely ("greek" is marble's word too, but
    "a greek sculpture" is not followed as marble; "marble" always is)."""
    distinct = distinctive_words(words_by_style)
    return {word: style for style in words_by_style for word in re.split(r"[_\-\s]+", style.lower())
            if distinct.get(word) == style}


def lexical_reading(text: str, known: frozenset[str], style_words: Mapping[str, str], name_words: Mapping[str, str],
                    neighbours: Optional[WordNetNeighbours], min_cosine: float = MIN_LEXICAL_COSINE,
                    read_first_word: bool = False) -> Optional[tuple[str, str]]:
    """``(unseen word, name word)`` when a prompt names no style: ``text`` holds no word of ``style_words``
    (:func:`distinctive_words`), so an editor without language would make no edit of any style, and one of its
    unseen words is at least ``min_cosine`` from a word of ``name_words`` (:func:`style_name_words`) in WordNet;
    the nearest pair wins ("make the person look like a ghoul" -> ("ghoul", "zombie")). The first word of a prompt
    of several words is its instruction ("render the portrait as a roman sculpture"), not what to become, and is
    read only with ``read_first_word``. ``None`` otherwise: a prompt that names a style is left as written and its
    unseen words stay ignored."""
    words = prompt_words(text)
    if neighbours is None or not name_words or any(word in style_words for word in words):
        return None
    instruction = words[0] if len(words) > 1 and not read_first_word else None
    best: Optional[tuple[float, str, str]] = None
    for word in unseen_words(text, known):
        if word == instruction:
            continue
        found = neighbours.nearest(word, name_words)
        if found is not None and found[1] >= min_cosine and (best is None or found[1] > best[0]):
            best = (found[1], word, found[0])
    return None if best is None else (best[1], best[2])


def read_lexically(text: str, reading: Optional[tuple[str, str]]) -> str:
    """``text`` with every occurrence of the unseen word of ``reading`` (:func:`lexical_reading`) replaced by its
    name word (``text`` itself for ``None``)."""
    if reading is None:
        return text
    word, name_word = reading
    return re.sub(rf"(?<![A-Za-z]){re.escape(word)}(?![A-Za-z])", name_word, text, flags=re.IGNORECASE)


@dataclass(frozen=True, eq=False)
class PromptVocabulary:
    """What an editor whose text encoder has no pretrained language knows of words, and how it reads a prompt
    at inference (:meth:`read`): the words of the training prompts of each style it was distilled on (and of
    an applied adapter's style), and a WordNet token-vector file (``lexicon``; ``None``: no lexical reading)."""

    by_style: Mapping[str, frozenset[str]]
    lexicon: Optional[str] = LEXICON

    @functools.cached_property
    def words(self) -> frozenset[str]:
        """Every known word (all styles' training prompts)."""
        return frozenset().union(*self.by_style.values())

    @functools.cached_property
    def style_words(self) -> dict[str, str]:
        """Word -> style for the words only one style's training prompts use (:func:`distinctive_words`)."""
        return distinctive_words(self.by_style)

    @functools.cached_property
    def name_words(self) -> dict[str, str]:
        """Word -> style for the words of the styles' names that carry them (:func:`style_name_words`)."""
        return style_name_words(self.by_style)

    @functools.cached_property
    def telling_words(self) -> frozenset[str]:
        """The words that can tell a style from the others (:func:`telling_words`)."""
        return telling_words(self.by_style)

    def names_no_style(self, text: str) -> bool:
        """Whether ``text``, as the editor reads it (:meth:`read`), holds none of :attr:`telling_words`: a prompt
        such as "make the person smile" or "keep the face as it is", which the editor's text tower, knowing only
        its training prompts' words, cannot relate to any edit."""
        return not any(word in self.telling_words for word in prompt_words(self.read(text)))

    def with_style(self, name: str, words: Iterable[str]) -> "PromptVocabulary":
        """This vocabulary with the training words of one more style (an applied adapter's)."""
        return PromptVocabulary({**self.by_style, name: frozenset(self.by_style.get(name, frozenset()) | set(words))},
                                self.lexicon)

    def lexical_reading(self, text: str) -> Optional[tuple[str, str]]:
        """:func:`lexical_reading` of ``text`` (read through compounds first) with this vocabulary."""
        return self._lexical_reading_of(read_compounds(text, self.words))

    def read(self, text: str) -> str:
        """``text`` as the editor reads it: compounds split (:func:`read_compounds`), then, when the prompt names no
        style, its unseen word nearest a style name read as that name (:func:`lexical_reading`)."""
        compound = read_compounds(text, self.words)
        return read_lexically(compound, self._lexical_reading_of(compound))

    def _lexical_reading_of(self, compound: str) -> Optional[tuple[str, str]]:
        """:func:`lexical_reading` of a text already read through compounds."""
        neighbours = wordnet_neighbours(self.lexicon) if self.lexicon else None
        return lexical_reading(compound, self.words, self.style_words, self.name_words, neighbours)


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


def _lexical_sentence(words: Sequence[str], lexical: Optional[tuple[str, str]]) -> str:
    """What a :func:`lexical_reading` adds to a note on unseen ``words`` (``""`` when there is none)."""
    if lexical is None or lexical[0] not in words:
        return ""
    word, name = lexical
    others = [w for w in words if w != word]
    rest = f"; {', '.join(repr(w) for w in others)} ignored" if others else ""
    return f"the prompt names no style, so {word!r} is read as {name!r}, the style name nearest it in WordNet{rest}"


def unseen_words_note(words: Sequence[str], readings: Mapping[str, str] | None = None,
                      lexical: Optional[tuple[str, str]] = None) -> str:
    """A one-line note naming ``words`` for a status line (``""`` when empty); ``readings`` (unseen word ->
    the nearest training word, :func:`nearest_known_words`) or ``lexical`` (the prompt's
    :func:`lexical_reading`) says how the editor reads them."""
    if not words:
        return ""
    readings = readings or {}
    listed = ", ".join(repr(w) for w in words)
    if all(w in readings for w in words):
        read = ", ".join(f"{w!r} as {readings[w]!r}" for w in words)
        return f"never trained on {listed}: read through WordNet ({read}); the edit may be weaker"
    if sentence := _lexical_sentence(words, lexical):
        return f"never trained on {listed}: {sentence}; the edit may be weaker"
    return f"never trained on {listed}: the edit may be weak or unrelated (use a style's training wording)"


def prompt_reading_note(prompt: str, read: str) -> str:
    """A one-line note that ``prompt`` is read as ``read`` (``""`` when they are the same)."""
    return "" if read == prompt else f"read as {read!r}"


def warn_prompt_reading(prompt: str, read: str) -> None:
    """Emit a :class:`PromptReadingWarning` when the editor reads ``prompt`` as ``read`` (nothing when equal)."""
    if read != prompt:
        warnings.warn(
            f"prompt {prompt!r} is read as {read!r}: a word in no training prompt that begins with a training word is "
            "read through that word, and in a prompt that holds no word of any one style the unseen word nearest a "
            "style's name in WordNet is read as that name (`pe3d styles --prompts` lists the training prompts).",
            PromptReadingWarning, stacklevel=3)


def warn_no_style_named(prompt: str, styles: Sequence[str]) -> None:
    """Emit a :class:`NoStyleNamedWarning`: ``prompt`` names none of ``styles``, so the portrait is returned unedited."""
    warnings.warn(
        f"prompt {prompt!r} names no style this editor was trained on ({', '.join(styles)}): the portrait is "
        "returned unedited (the prior's reconstruction) rather than given an edit the prompt did not ask for; "
        "use a style's wording (`pe3d styles --prompts`) or train a style of your own (`pe3d fit adapt`).",
        NoStyleNamedWarning, stacklevel=3)


def warn_unseen_words(prompt: str, words: Sequence[str], readings: Mapping[str, str] | None = None,
                      lexical: Optional[tuple[str, str]] = None) -> None:
    """Emit an :class:`UnseenPromptWordsWarning` naming ``words`` of ``prompt`` (nothing when empty);
    ``readings`` and ``lexical`` as in :func:`unseen_words_note`."""
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
    elif sentence := _lexical_sentence(words, lexical):
        message = (
            f"prompt {prompt!r}: {listed} never appeared in this editor's training prompts; {sentence}. The edit "
            "follows that reading and may be weaker or other than meant: use the wording of a style's training "
            "prompts (`pe3d styles --prompts` lists them) to be sure."
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
