"""Text-prompt augmentation for training ``E_p`` to follow prompts it never saw.

A style's training prompts are a handful of sentences; an encoder trained on exactly those
strings learns them as opaque keys and maps a paraphrase ("sculpt the head in bronze") to an
unrelated embedding. Dropping words and slipping in unknown ones while training teaches it to
rest on the words that carry the edit ("bronze") and to ignore the rest, which is what a
paraphrase keeps. A *word bag* goes further: the prompt becomes a few words drawn from all of the
style's training prompts, so every word a style uses ("graphite", "drawing", "sketch") is seen
carrying the edit on its own, not only next to the style's most frequent word, and the words
every style shares ("make", "the", "person") are seen to carry nothing. A *no-edit prompt*
makes that explicit: a bag of only such shared words (and unknown ones) is paired with the
unedited input as its target, so a prompt with no word the editor knows ("make the person look
like a ghoul") leaves the portrait as it is instead of applying some other style's edit.

Unknown words are random letter strings by default, which the CLIP tokenizer splits into short
pieces. A real word no training prompt uses ("rough", "illustration", "redo") is one whole-word
token with a row of its own that training never showed, and an editor taught to ignore letter
pieces can still be thrown by it ("make this a rough pencil study" loses the pencil edit). With
``unknown_word_source: vocabulary`` the inserted words are drawn from the tokenizer's whole-word
vocabulary instead (:func:`vocabulary_words`, minus every word of the training prompts), so the
editor learns to ignore *any* word it does not know.

Word dropout and word bags can leave a prompt with no word that tells its style from the others
("make the person look like a", "the it"). Trained towards the style's edit, such prompts teach the
editor that a prompt naming no style means *some* style, the one most pairs hold (with zombie's pairs
repeated 6x, "make the person smile" became a zombie). With ``no_edit_without_style_word`` such an
augmented prompt keeps its words but is paired with the unedited input instead (:func:`style_words`
says which words tell a style apart), so a prompt that names no style leaves the portrait as it is.
"""

from __future__ import annotations

import functools
import re
import string
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch

from pe3d.prompt_vocabulary import prompt_words, shared_by_half, telling_words


@dataclass
class PromptAugmentConfig:
    """How text prompts are perturbed at training time (all off by default).

    Attributes:
        probability: share of text prompts that are augmented at all.
        word_dropout: each word of an augmented prompt is dropped with this probability
            (at least one word is always kept).
        unknown_words: up to this many random letter strings (words the tokenizer splits into
            unfamiliar pieces) are inserted at random places of an augmented prompt.
        word_bag: share of augmented prompts replaced by a bag of ``1..word_bag_size`` words drawn
            (in random order) from all the training prompts of the pair's style; needs the style's
            prompt list (:class:`~pe3d.data.pairs.PairDataset` passes it), else word dropout is used.
        word_bag_size: the most words in a bag.
        word_bag_distinct: draw bag words from the *distinct* words of the style's prompts (each word
            as likely as any other) instead of from every occurrence (a style's main word, used by
            most of its prompts, then fills most bags); with it a rare carrier ("stone", "graphite")
            is seen carrying the edit alone as often as the main word ("marble", "pencil").
        no_edit: share of text pairs (augmented or not) turned into *no-edit* pairs: the prompt is
            a bag of ``1..word_bag_size`` words that at least half of the styles' training prompts
            use (:func:`shared_words`), plus unknown words, and the target is the input itself.
            Needs pairs of at least two styles (:class:`~pe3d.data.datamodule.PairDataModule`
            finds the shared words); ignored otherwise.
        unknown_word_source: what the inserted unknown words are: ``"letters"`` (random letter
            strings) or ``"vocabulary"`` (real words of the CLIP tokenizer's vocabulary that no
            training prompt of the pair sets uses; :func:`vocabulary_words`).
        no_edit_without_style_word: an augmented text prompt left with none of its style's own words
            (:func:`style_words`: words fewer than half of the styles' training prompts use) becomes a
            no-edit pair, the same prompt with the input as its target. Needs pairs of at least two
            styles (:class:`~pe3d.data.datamodule.PairDataModule` finds the words); ignored otherwise.
    """

    probability: float = 0.0
    word_dropout: float = 0.3
    unknown_words: int = 2
    word_bag: float = 0.0
    word_bag_size: int = 4
    word_bag_distinct: bool = False
    no_edit: float = 0.0
    unknown_word_source: str = "letters"
    no_edit_without_style_word: bool = False

    def __post_init__(self) -> None:
        for name in ("probability", "word_dropout", "word_bag", "no_edit"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"prompt_augment.{name} must be in [0, 1], got {value}")
        if self.unknown_words < 0:
            raise ValueError(f"prompt_augment.unknown_words must be >= 0, got {self.unknown_words}")
        if self.word_bag_size < 1:
            raise ValueError(f"prompt_augment.word_bag_size must be >= 1, got {self.word_bag_size}")
        if self.unknown_word_source not in UNKNOWN_WORD_SOURCES:
            raise ValueError(f"prompt_augment.unknown_word_source must be one of {list(UNKNOWN_WORD_SOURCES)}, "
                             f"got {self.unknown_word_source!r}")


UNKNOWN_WORD_SOURCES = ("letters", "vocabulary")
"""Values of :attr:`PromptAugmentConfig.unknown_word_source`."""

_VOCABULARY_WORD = re.compile(r"^([a-z]{3,12})</w>$")


@functools.lru_cache(maxsize=1)
def _tokenizer_words() -> tuple[str, ...]:
    """Whole-word tokens of open_clip's CLIP BPE vocabulary: 3-12 lower-case letters, sorted."""
    from open_clip.tokenizer import SimpleTokenizer

    return tuple(sorted(m.group(1) for token in SimpleTokenizer().encoder if (m := _VOCABULARY_WORD.match(token))))


def vocabulary_words(exclude: Iterable[str]) -> list[str]:
    """Words of the CLIP tokenizer's vocabulary that are single whole-word tokens (3-12 letters),
    sorted, minus ``exclude`` (compared lower-case): the pool of ``unknown_word_source: vocabulary``."""
    excluded = {word.lower() for word in exclude}
    return [word for word in _tokenizer_words() if word not in excluded]


def _random_word(generator: torch.Generator, vocabulary: Sequence[str] = ()) -> str:
    if vocabulary:
        return vocabulary[int(torch.randint(len(vocabulary), (1,), generator=generator))]
    length = int(torch.randint(3, 10, (1,), generator=generator))
    letters = torch.randint(len(string.ascii_lowercase), (length,), generator=generator).tolist()
    return "".join(string.ascii_lowercase[i] for i in letters)


def word_bag(pool: Sequence[str], size: int, generator: torch.Generator, distinct: bool = False) -> list[str]:
    """``1..size`` words drawn without replacement from all the words of ``pool``'s prompts, shuffled;
    with ``distinct`` from the distinct words (first-use order), so no word is drawn twice."""
    words = [word for prompt in pool for word in prompt.split()]
    if distinct:
        words = list(dict.fromkeys(words))
    count = min(len(words), int(torch.randint(1, size + 1, (1,), generator=generator)))
    return [words[i] for i in torch.randperm(len(words), generator=generator)[:count].tolist()]


def shared_words(prompts_per_style: Sequence[Sequence[str]]) -> list[str]:
    """Words used by the training prompts of at least half of the styles (and of two), sorted
    (:func:`~pe3d.prompt_vocabulary.shared_by_half` of the prompts' space-separated words): words that say
    nothing about which edit is meant ("make", "the", "person")."""
    if len(prompts_per_style) < 2:
        return []
    return sorted(shared_by_half({i: {w for p in prompts for w in p.split()} for i, prompts in enumerate(prompts_per_style)}))


def style_words(prompts_per_style: Sequence[Sequence[str]]) -> list[frozenset[str]]:
    """Per style, the words of its training prompts that can tell it from other styles
    (:func:`~pe3d.prompt_vocabulary.telling_words`: neither a function word ("the", "into") nor one that half of
    the styles use ("make", "person")). A word two styles of six share ("statue" of bronze and marble) counts for
    both. Empty sets for fewer than two styles (nothing to tell apart)."""
    if len(prompts_per_style) < 2:
        return [frozenset() for _ in prompts_per_style]
    by_style = {i: frozenset(w for p in prompts for w in prompt_words(p)) for i, prompts in enumerate(prompts_per_style)}
    telling = telling_words(by_style)
    return [words & telling for words in by_style.values()]


def names_style(text: str, words: frozenset[str]) -> bool:
    """Whether ``text`` holds one of ``words`` (a style's :func:`style_words`)."""
    return any(word in words for word in prompt_words(text))


def no_edit_prompt(words: Sequence[str], cfg: PromptAugmentConfig, generator: torch.Generator | None = None,
                   vocabulary: Sequence[str] = ()) -> str:
    """A prompt that asks for no particular edit: ``1..cfg.word_bag_size`` of ``words`` (the styles'
    shared words) in random order with ``0..cfg.unknown_words`` unknown words inserted (drawn from
    ``vocabulary`` when it is given, else random letter strings)."""
    generator = generator if generator is not None else torch.default_generator
    return " ".join(_insert_unknown(word_bag(words, cfg.word_bag_size, generator), cfg, generator, vocabulary))


def augment_prompt(text: str, cfg: PromptAugmentConfig, generator: torch.Generator | None = None,
                   pool: Sequence[str] = (), vocabulary: Sequence[str] = ()) -> str:
    """``text`` with words dropped and unknown words inserted as ``cfg`` says (or unchanged).

    ``pool``: the style's training prompts; with ``cfg.word_bag`` an augmented prompt may become
    a bag of their words instead (:func:`word_bag`). Unknown words are inserted either way: drawn
    from ``vocabulary`` when it is given (:func:`vocabulary_words`), else random letter strings.
    """
    generator = generator if generator is not None else torch.default_generator
    if cfg.probability <= 0 or float(torch.rand((), generator=generator)) >= cfg.probability:
        return text
    words = text.split()
    if not words:
        return text
    if pool and cfg.word_bag > 0 and float(torch.rand((), generator=generator)) < cfg.word_bag:
        words = word_bag(pool, cfg.word_bag_size, generator, cfg.word_bag_distinct)
        return " ".join(_insert_unknown(words, cfg, generator, vocabulary))
    keep = (torch.rand(len(words), generator=generator) >= cfg.word_dropout).tolist()
    if not any(keep):
        keep[int(torch.randint(len(words), (1,), generator=generator))] = True
    words = [word for word, kept in zip(words, keep) if kept]
    return " ".join(_insert_unknown(words, cfg, generator, vocabulary))


def _insert_unknown(words: list[str], cfg: PromptAugmentConfig, generator: torch.Generator,
                    vocabulary: Sequence[str] = ()) -> list[str]:
    """``words`` with ``0..cfg.unknown_words`` unknown words (from ``vocabulary``, else random letter
    strings) inserted at random places."""
    words = list(words)
    for _ in range(int(torch.randint(cfg.unknown_words + 1, (1,), generator=generator))):
        words.insert(int(torch.randint(len(words) + 1, (1,), generator=generator)), _random_word(generator, vocabulary))
    return words
