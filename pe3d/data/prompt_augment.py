"""Text-prompt augmentation for training ``E_p`` to follow prompts it never saw.

A style's training prompts are a handful of sentences; an encoder trained on exactly those
strings learns them as opaque keys and maps a paraphrase ("sculpt the head in bronze") to an
unrelated embedding. Dropping words and slipping in unknown ones while training teaches it to
rest on the words that carry the edit ("bronze") and to ignore the rest, which is what a
paraphrase keeps.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import torch


@dataclass
class PromptAugmentConfig:
    """How text prompts are perturbed at training time (all off by default).

    Attributes:
        probability: share of text prompts that are augmented at all.
        word_dropout: each word of an augmented prompt is dropped with this probability
            (at least one word is always kept).
        unknown_words: up to this many random letter strings (words the tokenizer splits into
            unfamiliar pieces) are inserted at random places of an augmented prompt.
    """

    probability: float = 0.0
    word_dropout: float = 0.3
    unknown_words: int = 2

    def __post_init__(self) -> None:
        for name in ("probability", "word_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"prompt_augment.{name} must be in [0, 1], got {value}")
        if self.unknown_words < 0:
            raise ValueError(f"prompt_augment.unknown_words must be >= 0, got {self.unknown_words}")


def _random_word(generator: torch.Generator) -> str:
    length = int(torch.randint(3, 10, (1,), generator=generator))
    letters = torch.randint(len(string.ascii_lowercase), (length,), generator=generator).tolist()
    return "".join(string.ascii_lowercase[i] for i in letters)


def augment_prompt(text: str, cfg: PromptAugmentConfig, generator: torch.Generator | None = None) -> str:
    """``text`` with words dropped and unknown words inserted as ``cfg`` says (or unchanged)."""
    generator = generator if generator is not None else torch.default_generator
    if cfg.probability <= 0 or float(torch.rand((), generator=generator)) >= cfg.probability:
        return text
    words = text.split()
    if not words:
        return text
    keep = (torch.rand(len(words), generator=generator) >= cfg.word_dropout).tolist()
    if not any(keep):
        keep[int(torch.randint(len(words), (1,), generator=generator))] = True
    words = [word for word, kept in zip(words, keep) if kept]
    for _ in range(int(torch.randint(cfg.unknown_words + 1, (1,), generator=generator))):
        words.insert(int(torch.randint(len(words) + 1, (1,), generator=generator)), _random_word(generator))
    return " ".join(words)
