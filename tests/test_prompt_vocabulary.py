"""A text prompt with words the editor never saw in training is named to the user: the mini editor's text
tower has no pretrained language model, so such words carry no edit (zombie's "ghoul" prompt, README).
Checked on the shipped editor, a saved pipeline, an active adapter's style and ``pe3d edit``."""

from __future__ import annotations

import warnings

import pytest
from PIL import Image

from pe3d.adapters import adapter_parameter_names, save_adapter
from pe3d.geometry import label_from_yaw_pitch
from pe3d.pipeline import EditPipeline
from pe3d.prompt_vocabulary import UnseenPromptWordsWarning, prompt_words, training_words, unseen_words
from pe3d.recipes.edit import edit_photo
from pe3d.styles.discovery import load_named_style
from pe3d.turntable import to_uint8
from pe3d.world import WorldSplit, render_identities, sample_identity

GHOUL = "make the person look like a ghoul"
"""The zombie style's first test prompt: "ghoul" is in no training prompt of the shipped editor's styles."""
DISTILLED = ["bronze_statue", "pencil_sketch", "zombie", "blue_hair", "pop_art", "marble_statue"]


@pytest.fixture(scope="module")
def shipped() -> EditPipeline:
    return EditPipeline.from_pretrained()


def test_words_and_what_is_unseen():
    assert prompt_words("Turn him into a Zombie, please!") == ["turn", "him", "into", "a", "zombie", "please"]
    assert unseen_words("a ghoul, a GHOUL and a zombie", frozenset({"zombie"})) == ["ghoul"]
    assert training_words(["no_such_style_anywhere"]) is None  # unknown vocabulary: nothing is reported
    assert {"zombie", "undead"} <= training_words(["zombie"])


def test_shipped_editor_names_the_word_it_never_saw(shipped):
    assert shipped.trained_styles == DISTILLED  # read from the editor file's header
    assert shipped.unseen_prompt_words(GHOUL) == ["ghoul"]
    for style in DISTILLED:
        for prompt in load_named_style(style).prompts.train:
            assert shipped.unseen_prompt_words(prompt) == [], prompt
    assert shipped.unseen_prompt_words("turn the person into a golden statue") == ["golden"]


def test_pretrained_text_encoder_or_unknown_styles_report_nothing(shipped, monkeypatch):
    monkeypatch.setattr(shipped.editor.text_encoder.cfg, "pretrained", "openai")
    assert shipped.unseen_prompt_words(GHOUL) == []
    monkeypatch.undo()
    assert EditPipeline(shipped.editor).unseen_prompt_words(GHOUL) == []  # built from a bare editor: styles unknown


def test_saved_pipeline_and_adapter_style_count(shipped, tmp_path):
    editor = shipped.editor
    adapter = save_adapter(tmp_path / "golden.safetensors", editor, adapter_parameter_names(editor, editor.adaptation_parameters()),
                           "golden_statue", shipped.base_hash)
    reloaded = EditPipeline.from_pretrained(shipped.save_pretrained(tmp_path / "pipe"))
    assert reloaded.trained_styles == DISTILLED
    reloaded.set_adapter(reloaded.load_adapter(adapter))
    assert reloaded.unseen_prompt_words("turn the person into a golden statue") == []  # golden_statue's training words
    assert reloaded.unseen_prompt_words(GHOUL) == ["ghoul"]


def test_pe3d_edit_warns_about_unseen_words(tmp_path):
    split = WorldSplit()
    render = render_identities([sample_identity(split.seed, split.heldout_indices(1)[0])], label_from_yaw_pitch([0.0], [0.0]), 64)
    Image.fromarray(to_uint8(render.rgb[0])).save(tmp_path / "head.png")
    with pytest.warns(UnseenPromptWordsWarning, match="'ghoul' never appeared in this editor's training prompts"):
        edit_photo(tmp_path / "head.png", tmp_path / "ghoul", prompt=GHOUL, views=2, align=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnseenPromptWordsWarning)
        edit_photo(tmp_path / "head.png", tmp_path / "zombie", prompt="turn the person into a zombie", views=2, align=False)
    assert (tmp_path / "zombie" / "edited.png").is_file()


def test_cli_prints_pe3d_warnings_as_one_line():
    from pe3d.cli import _format_warning

    message = UnseenPromptWordsWarning("prompt 'x': 'ghoul' never appeared")
    assert _format_warning("edit", warnings.formatwarning, message, UnseenPromptWordsWarning, "edit.py", 7) == \
        "pe3d edit: warning: prompt 'x': 'ghoul' never appeared\n"
    other = _format_warning("edit", warnings.formatwarning, UserWarning("from a library"), UserWarning, "lib.py", 3)
    assert other.startswith("lib.py:3: UserWarning: from a library")  # other packages' warnings keep Python's format


def test_styles_command_lists_training_prompts(capsys):
    from pe3d.cli import main

    assert main(["styles", "--prompts"]) == 0
    out = capsys.readouterr().out
    assert "zombie" in out and "make him look undead" in out  # a training prompt, listed under its style
    assert "make the person look like a ghoul" not in out  # test prompts are not
    assert main(["styles"]) == 0
    assert "make him look undead" not in capsys.readouterr().out


def test_a_tower_with_wordnet_vectors_says_how_it_reads_an_unseen_word(tmp_path):
    """With token vectors (pe3d.models.lexicon) an unseen word is read as the nearest training word,
    and the warning and the web note say which; without them nothing is claimed."""
    import torch

    from pe3d.models.lexicon import save_token_vectors
    from pe3d.models.prompt_base import PromptEncoderConfig
    from pe3d.models.prompt_text import ClipTextPromptEncoder, _tokenizer
    from pe3d.prompt_vocabulary import nearest_known_words, unseen_words_note, warn_unseen_words

    vocabulary = _tokenizer("ViT-B-32").encoder
    words = {"ghoul": [1.0, 0.1, 0.0, 0.0], "zombie": [1.0, 0.0, 0.0, 0.0], "marble": [0.0, 1.0, 0.0, 0.0],
             "stone": [0.1, 1.0, 0.0, 0.0], "the": [1.0, 0.0, 0.0, 0.0]}
    ids = torch.tensor([vocabulary[f"{w}</w>"] for w in words])
    path = save_token_vectors(tmp_path / "t.safetensors", ids, torch.tensor(list(words.values())), {})
    tiny = {"width": 4, "layers": 1, "heads": 1, "context_length": 16, "embed_dim": 4}
    lexical = ClipTextPromptEncoder(PromptEncoderConfig(kind="text", out_dim=4, tiny=tiny, token_vectors=str(path)))
    known = {"zombie", "marble", "the", "undead"}
    readings = nearest_known_words(lexical, ["ghoul", "stone", "qwzx"], known)
    assert readings == {"ghoul": "zombie", "stone": "marble"}  # "the" is a function word; "qwzx" has no row
    plain = ClipTextPromptEncoder(PromptEncoderConfig(kind="text", out_dim=4, tiny=tiny))
    assert nearest_known_words(plain, ["ghoul"], known) == {}
    assert "read through WordNet ('ghoul' as 'zombie')" in unseen_words_note(["ghoul"], readings)
    assert "weak or unrelated" in unseen_words_note(["ghoul", "qwzx"], readings)  # not every word has a reading
    with pytest.warns(UnseenPromptWordsWarning, match="reads it through WordNet word vectors \\('ghoul' near 'zombie'\\)"):
        warn_unseen_words(GHOUL, ["ghoul"], readings)


def test_the_shipped_editor_claims_no_reading_its_table_does_not_have(shipped):
    """The editor file records whether its text tower was built with token vectors."""
    expected = shipped.editor.text_encoder.cfg.token_vectors is not None
    readings = shipped.unseen_word_readings(shipped.unseen_prompt_words(GHOUL))
    assert bool(readings) == expected
