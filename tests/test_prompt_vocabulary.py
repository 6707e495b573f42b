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
        edit_photo(tmp_path / "head.png", tmp_path / "ghoul", prompt=GHOUL, views=2, align=False, refine_steps=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnseenPromptWordsWarning)
        edit_photo(tmp_path / "head.png", tmp_path / "zombie", prompt="turn the person into a zombie", views=2, align=False,
                   refine_steps=0)
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


# --- compound reading: an unseen word that begins with a known word is read through it --------------

SKETCHBOOK = "a sketchbook portrait of the person"
"""A pencil_sketch test prompt whose only style word, "sketchbook", is in no training prompt."""


def test_compound_reading_rules():
    from pe3d.prompt_vocabulary import compound_reading, read_compounds

    known = frozenset({"sketch", "sketched", "zombie", "bronze", "pop", "make", "the"})
    assert compound_reading("sketchbook", known) == "sketch book"  # the rest kept as a word of its own
    assert compound_reading("zombies", known) == "zombie"  # a short rest is an inflection: dropped
    assert compound_reading("bronzed", known) == "bronze"
    assert compound_reading("sketchedly", known) == "sketched"  # the longest known stem wins
    assert compound_reading("popular", known) is None  # "pop" is shorter than MIN_STEM_LETTERS
    assert compound_reading("sketch", known) is None and compound_reading("ghoul", known) is None
    assert compound_reading("without", known | {"with"}) is None  # function words are no stems
    assert read_compounds("A Sketchbook, two zombies and a ghoul!", known) == "A sketch book, two zombie and a ghoul!"


def test_shipped_editor_reads_compounds_at_inference_only(shipped):
    import torch

    from pe3d.models.editor import Prompts, load_editor
    from pe3d.weights import shipped_path

    editor = load_editor(shipped_path("editor_mini")).eval()
    assert editor.prompt_vocabulary.words == training_words(DISTILLED)  # from the file's recorded styles
    assert editor.read_prompt(SKETCHBOOK) == "a sketch book portrait of the person"
    with torch.no_grad():
        read = editor.encode_prompts(Prompts(texts=[SKETCHBOOK]))[0]
        split = editor.encode_prompts(Prompts(texts=["a sketch book portrait of the person"]))[0]
        editor.train()
        as_written = editor.encode_prompts(Prompts(texts=[SKETCHBOOK]))[0]
    assert torch.equal(read, split) and not torch.allclose(read, as_written)
    assert shipped.unseen_prompt_words(SKETCHBOOK) == []  # read through "sketch": not reported


def test_pipeline_says_how_it_reads_a_prompt(shipped):
    import torch

    from pe3d.prompt_vocabulary import PromptReadingWarning

    image = torch.full((1, 3, 64, 64), 0.5)
    with pytest.warns(PromptReadingWarning, match="read as 'a sketch book portrait of the person'"):
        shipped.edit_triplane(image, prompt=SKETCHBOOK)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PromptReadingWarning)
        shipped.edit_triplane(image, prompt="turn the portrait into a pencil sketch")


def _read_written_and_train_scores(style: str, prompt: str) -> tuple[float, float, float]:
    """The shipped editor on 4 held-out identities at the input view, PSNR against ``style``'s filter: ``prompt``
    as the editor reads it, as written (``prompt_vocabulary = None``), and the style's first training prompt."""
    import torch

    from pe3d.evaluation import WorldEvalConfig, build_world_eval_set, model_inputs, render_views
    from pe3d.evaluation.world import edit_with_prompt, filter_targets, style_filter_name
    from pe3d.metrics.ground_truth import psnr
    from pe3d.models.editor import load_editor
    from pe3d.weights import shipped_path

    editor = load_editor(shipped_path("editor_mini")).eval()
    data = build_world_eval_set(WorldEvalConfig(identities=4, styles=[], novel_yaws_deg=[], novel_pitches_deg=[]))
    views = filter_targets(data.truth, style_filter_name(load_named_style(style))).views
    inputs = model_inputs(data, editor.cfg.prior.encoder.image_size)

    def score(text: str) -> float:
        with torch.no_grad():
            render = render_views(editor.render, edit_with_prompt(editor, inputs, text), views, ["input"], data.resolution)
        return float(psnr(render["input"].image.clamp(0, 1), views["input"].image).mean())

    train = score(load_named_style(style).prompts.train[0])
    read = score(prompt)
    editor.prompt_vocabulary = None  # prompts read as written
    return read, score(prompt), train


def test_compound_reading_restores_the_sketchbook_edit():
    """Read as "sketch book" the sketchbook prompt gains more than 1.5 dB over the prompt read as written and
    comes within 1.5 dB of the style's first training prompt (:func:`_read_written_and_train_scores`)."""
    read, as_written, train = _read_written_and_train_scores("pencil_sketch", SKETCHBOOK)
    assert read > as_written + 1.5, (read, as_written)  # measured: 17.80 against 15.96 before the zombie stage
    # measured: 1.31 below the training prompt (17.07 against 18.38) with the editor after its zombie stage,
    # 0.61 before it (docs/results/quality/zombie_stage.md: the stage costs this paraphrase 0.8 dB)
    assert read > train - 1.5, (read, train)


def test_an_applied_adapter_adds_its_style_words(shipped, tmp_path):
    from pe3d.adapters import load_adapter_into
    from pe3d.models.editor import load_editor
    from pe3d.weights import shipped_path

    editor = load_editor(shipped_path("editor_mini")).eval()
    path = save_adapter(tmp_path / "golden.safetensors", editor, adapter_parameter_names(editor, editor.adaptation_parameters()),
                        "golden_statue", shipped.base_hash)
    assert "golden" not in editor.prompt_vocabulary.words
    load_adapter_into(editor, path)
    assert training_words(["golden_statue"]) <= editor.prompt_vocabulary.words
    assert training_words(DISTILLED) <= editor.prompt_vocabulary.words
    assert editor.prompt_vocabulary.name_words["golden"] == "golden_statue"  # a prompt may now be read as it


def test_an_editor_in_training_reads_prompts_as_written():
    from pe3d.losses import EditLossConfig, ImageLossConfig
    from pe3d.models.editor import load_editor
    from pe3d.models.prior import load_prior
    from pe3d.systems.editing import DistillSystem, EditSystemConfig
    from pe3d.weights import shipped_path

    editor = load_editor(shipped_path("editor_mini")).eval()
    assert editor.prompt_vocabulary is not None  # the exported editor reads compounds
    cfg = EditSystemConfig(loss=EditLossConfig(image_3d=ImageLossConfig(perceptual="none")))
    DistillSystem(editor, load_prior(shipped_path("prior_mini")), cfg)
    assert editor.prompt_vocabulary is None and editor.eval().read_prompt(SKETCHBOOK) == SKETCHBOOK
    assert editor.read_prompt(GHOUL) == GHOUL


# --- lexical reading: a prompt that names no style has its unseen word nearest a style name read as it ------


def _tiny_neighbours(tmp_path, words):
    """:class:`WordNetNeighbours` over a token-vector file holding ``words`` (word -> vector)."""
    import torch

    from pe3d.models.lexicon import save_token_vectors
    from pe3d.models.prompt_text import _tokenizer
    from pe3d.prompt_vocabulary import WordNetNeighbours

    vocabulary = _tokenizer("ViT-B-32").encoder
    ids = torch.tensor([vocabulary[f"{w}</w>"] for w in words])
    path = save_token_vectors(tmp_path / "t.safetensors", ids, torch.tensor(list(words.values())), {})
    return WordNetNeighbours(str(path))


def test_style_words_and_name_words():
    from pe3d.prompt_vocabulary import distinctive_words, style_name_words

    by_style = {"zombie": {"turn", "the", "zombie", "undead", "skin"}, "blue_hair": {"turn", "blue", "hair", "skin"},
                "marble_statue": {"marble", "statue", "greek"}, "bronze_statue": {"bronze", "statue", "cast"}}
    assert distinctive_words(by_style) == {"zombie": "zombie", "undead": "zombie", "blue": "blue_hair", "hair": "blue_hair",
                                           "marble": "marble_statue", "greek": "marble_statue", "bronze": "bronze_statue",
                                           "cast": "bronze_statue"}  # "turn", "skin", "statue" are shared; "the" a function word
    assert style_name_words(by_style) == {"zombie": "zombie", "blue": "blue_hair", "hair": "blue_hair",
                                          "marble": "marble_statue", "bronze": "bronze_statue"}  # "statue": two styles


def test_lexical_reading_rules(tmp_path):
    from pe3d.prompt_vocabulary import lexical_reading, read_lexically

    neighbours = _tiny_neighbours(tmp_path, {"ghoul": [1.0, 0.2, 0.0], "zombie": [1.0, 0.0, 0.0], "marble": [0.0, 1.0, 0.0],
                                             "granite": [0.1, 1.0, 0.0], "happy": [0.3, 0.3, 1.0]})
    known = frozenset({"make", "the", "person", "look", "like", "zombie", "undead", "marble", "greek"})
    style_words = {"zombie": "zombie", "undead": "zombie", "marble": "marble_statue", "greek": "marble_statue"}
    names = {"zombie": "zombie", "marble": "marble_statue"}
    assert lexical_reading(GHOUL, known, style_words, names, neighbours) == ("ghoul", "zombie")
    assert lexical_reading("a granite ghoul", known, style_words, names, neighbours) == ("granite", "marble")  # nearest pair
    assert lexical_reading("a greek ghoul", known, style_words, names, neighbours) is None  # names a style: as written
    assert lexical_reading("make the person look happy", known, style_words, names, neighbours) is None  # cosine 0.29 < 0.5
    assert lexical_reading("a qwzx", known, style_words, names, neighbours) is None  # no row
    assert lexical_reading(GHOUL, known, style_words, names, None) is None  # no vectors: nothing read
    assert read_lexically("A Ghoul, ghoulish ghoul", ("ghoul", "zombie")) == "A zombie, ghoulish zombie"  # whole words only
    assert read_lexically(GHOUL, None) == GHOUL


def test_shipped_editor_reads_a_prompt_that_names_no_style_through_wordnet(shipped):
    from pe3d.models.editor import load_editor
    from pe3d.weights import shipped_path

    editor = load_editor(shipped_path("editor_mini")).eval()
    assert editor.read_prompt(GHOUL) == "make the person look like a zombie"
    assert editor.read_prompt("give him sapphire tresses") == "give him blue tresses"
    for style in DISTILLED:  # a prompt that names a style is read as written (or through its compounds)
        for prompt in load_named_style(style).prompts.train:
            assert editor.read_prompt(prompt) == prompt, prompt
    apocalypse = "give the portrait a zombie apocalypse look"  # names zombie: "apocalypse" stays unread
    assert editor.read_prompt(apocalypse) == apocalypse
    assert shipped.lexical_reading(GHOUL) == ("ghoul", "zombie")
    assert shipped.lexical_reading("turn the person into a zombie") is None


def test_pipeline_says_how_it_reads_a_prompt_that_names_no_style(shipped):
    import torch

    from pe3d.prompt_vocabulary import PromptReadingWarning, unseen_words_note

    image = torch.full((1, 3, 64, 64), 0.5)
    with pytest.warns(UnseenPromptWordsWarning, match="'ghoul' is read as 'zombie', the style name nearest it in WordNet"):
        with pytest.warns(PromptReadingWarning, match="read as 'make the person look like a zombie'"):
            shipped.edit_triplane(image, prompt=GHOUL)
    note = unseen_words_note(["decaying", "corpse"], {}, ("corpse", "zombie"))
    assert "'corpse' is read as 'zombie'" in note and "'decaying' ignored" in note


def test_lexical_reading_restores_the_ghoul_edit():
    """Read as "zombie" the ghoul prompt gains more than 0.5 dB over the prompt read as written and comes within
    0.5 dB of zombie's first training prompt (:func:`_read_written_and_train_scores`). Since the editor's zombie
    stage a prompt whose words say no style leans to zombie even as written (measured: 23.24 read against 22.55
    as written; before the stage the reading gained more than 1.5 dB)."""
    read, as_written, train = _read_written_and_train_scores("zombie", GHOUL)
    assert read > as_written + 0.5, (read, as_written)
    assert read > train - 0.5, (read, train)


# --- a prompt that names no style: the portrait is returned unedited ------------------------------------------


def test_telling_words_and_prompts_that_name_no_style():
    from pe3d.prompt_vocabulary import PromptVocabulary, telling_words

    by_style = {"zombie": frozenset({"make", "the", "person", "zombie", "statue"}),
                "blue_hair": frozenset({"make", "the", "person", "blue", "hair"}),
                "bronze_statue": frozenset({"make", "person", "bronze", "statue"}),
                "marble_statue": frozenset({"make", "marble", "statue", "person"})}
    # "make", "person": every style; "statue": half of four; "the": a function word
    assert telling_words(by_style) == {"zombie", "blue", "hair", "bronze", "marble"}
    assert telling_words({"zombie": frozenset({"the", "zombie", "skin"})}) == {"zombie", "skin"}  # one style: all its words
    vocabulary = PromptVocabulary(by_style, lexicon=None)
    assert vocabulary.names_no_style("make the person smile") and vocabulary.names_no_style("Make the person!")
    assert not vocabulary.names_no_style("make the person a ZOMBIE") and not vocabulary.names_no_style("blue")


def test_a_prompt_that_names_no_style_returns_the_portrait_unedited(shipped):
    """The shipped editor made "make the person smile" into a zombie (21.5 dB against zombie's target,
    tools/no_style_prompts.py); the pipeline returns such an item unedited, with a warning, and edits the others."""
    import torch

    from pe3d.prompt_vocabulary import NoStyleNamedWarning

    smile, zombie = "make the person smile", "turn the person into a zombie"
    assert shipped.names_no_style(smile) and shipped.names_no_style("keep the face as it is")
    assert not shipped.names_no_style(zombie) and not shipped.names_no_style(GHOUL)  # the ghoul is read as "zombie"
    assert not shipped.names_no_style(SKETCHBOOK) and not shipped.names_no_style("render the portrait as a roman sculpture")
    for style in DISTILLED:  # every prompt of the styles names one: the benchmarks' prompts are never returned unedited
        prompts = load_named_style(style).prompts
        assert not [p for p in (*prompts.train, *prompts.test) if shipped.names_no_style(p)], style
    image = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with pytest.warns(NoStyleNamedWarning, match="'make the person smile' names no style this editor was trained on"):
        planes = shipped.edit_triplane(image, prompt=[smile, zombie])
    unedited = shipped.unedited_triplane(shipped._prepare_image(image))
    assert torch.allclose(planes[0], unedited[0], atol=1e-3)
    assert (planes[1] - unedited[1]).abs().mean() > 0.01  # the zombie item is edited
    shipped.unedited_without_style = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", NoStyleNamedWarning)  # off: no warning, the editor's own output
            raw = shipped.edit_triplane(image, prompt=[smile, zombie])
        assert not shipped.names_no_style(smile)
    finally:
        shipped.unedited_without_style = True
    assert (raw[0] - unedited[0]).abs().mean() > 0.01 and torch.allclose(raw[1], planes[1])
    # with a reference image the prompt is not judged by its words
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoStyleNamedWarning)
        referenced = shipped.edit_triplane(image, prompt=[smile, smile], prompt_image=image)
    assert (referenced[0] - unedited[0]).abs().mean() > 0.01
