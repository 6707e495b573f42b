"""Every override of the editing recipes takes effect or is refused naming its key.

``fit adapt`` fills unset values from the style's ``adapt`` section; what the user gives (also
``system.optim.*`` and a zero time limit) must survive that merge.
"""

import pytest

from pe3d.config import ConfigError, load_structured
from pe3d.recipes.editing import AdaptFitConfig, DistillFitConfig, adapt_settings, fit_adapt, fit_distill
from pe3d.styles.spec import AdaptSpec

STYLE = AdaptSpec(num_pairs=10, max_steps=400, lr=3e-3, batch_size=4, max_minutes=2.0)


def _settings(*overrides: str, num_pairs: int = 10):
    cfg = load_structured(AdaptFitConfig, [], ["style=golden_statue", *overrides])
    return adapt_settings(cfg, STYLE, num_pairs)


def test_unset_values_come_from_the_style():
    trainer, system, data = _settings()
    assert (trainer.max_steps, trainer.max_minutes) == (400, 2.0)
    assert trainer.gradient_clip_norm == 0.3  # AdaptSpec's default
    assert system.optim.lr == 3e-3 and system.optim.warmup_steps == 0
    assert (data.batch_size, data.limit) == (4, 10)
    assert _settings(num_pairs=2)[2].batch_size == 2  # the style's batch never exceeds the pairs
    assert system.loss.depth_source == "edited" and system.loss.triplane_3d == 0.1 and system.loss.depth_3d == 1.0
    recolour = adapt_settings(load_structured(AdaptFitConfig, [], ["style=golden_statue"]), AdaptSpec(depth_source="input", depth_weight=10.0), 10)[1]
    assert (recolour.loss.depth_source, recolour.loss.depth_3d) == ("input", 10.0)


def test_every_given_value_wins_over_the_style():
    trainer, system, data = _settings("trainer.max_steps=7", "trainer.max_minutes=0", "system.optim.weight_decay=0.25",
                                      "system.optim.warmup_steps=3", "system.optim.betas=[0.5,0.75]",
                                      "system.optim.min_lr_ratio=0.5", "data.batch_size=3")
    assert (trainer.max_steps, trainer.max_minutes) == (7, 0.0)  # 0 minutes = no time limit, not "the style's 2"
    assert (system.optim.weight_decay, system.optim.warmup_steps, tuple(system.optim.betas)) == (0.25, 3, (0.5, 0.75))
    assert system.optim.min_lr_ratio == 0.5 and system.optim.lr == 3e-3
    assert data.batch_size == 3
    assert _settings("lr=0.02")[1].optim.lr == 0.02
    assert _settings("system.optim.lr=0.01")[1].optim.lr == 0.01
    assert _settings("trainer.max_minutes=0.5")[0].max_minutes == 0.5
    assert _settings("system.loss.depth_source=input")[1].loss.depth_source == "input"
    assert _settings("system.loss.triplane_3d=1.0")[1].loss.triplane_3d == 1.0
    assert _settings("system.loss.depth_3d=0")[1].loss.depth_3d == 0.0  # 0 switches the term off, not "the style's"
    assert _settings("trainer.gradient_clip_norm=0")[0].gradient_clip_norm == 0.0  # no clipping, not "the style's"
    assert _settings("trainer.gradient_clip_norm=2.5")[0].gradient_clip_norm == 2.5


@pytest.mark.parametrize("overrides, key", [
    (["lr=0.02", "system.optim.lr=0.01"], r"lr=0\.02 and system\.optim\.lr=0\.01"),
    (["trainer.max_steps=0"], r"trainer\.max_steps=0"),
    (["trainer.max_minutes=-2"], r"trainer\.max_minutes=-2"),
    (["data.batch_size=11"], r"data\.batch_size=11"),
    (["num_pairs=0"], r"num_pairs=0"),
    (["lr=-1"], r"lr=-1"),
    (["system.loss.depth_source=shape"], r"system\.loss\.depth_source='shape'"),
    (["system.loss.depth_3d=-2"], r"system\.loss\.depth_3d=-2"),
    (["trainer.gradient_clip_norm=-0.5"], r"trainer\.gradient_clip_norm=-0\.5"),
])
def test_values_that_cannot_be_used_are_refused_by_key(overrides, key):
    cfg = load_structured(AdaptFitConfig, [], ["style=golden_statue", *overrides])
    with pytest.raises(ConfigError, match=key):
        adapt_settings(cfg, STYLE, cfg.num_pairs if cfg.num_pairs is not None else STYLE.num_pairs)


@pytest.mark.parametrize("override, key", [
    ("system.num_views=0", r"system\.num_views=0"),
    ("system.view_bank=-2", r"system\.view_bank=-2"),
    ("system.view_bank=1", r"system\.view_bank=1: .* at least system\.num_views=2"),
    ("data.mirror=1.5", r"data\.mirror=1\.5"),
])
@pytest.mark.parametrize("schema", [AdaptFitConfig, DistillFitConfig])
def test_system_and_data_values_are_checked_when_loaded(schema, override, key):
    with pytest.raises(ConfigError, match=key):
        load_structured(schema, [], [override])
    assert load_structured(schema, [], ["system.view_bank=16", "data.mirror=0.5"]).system.view_bank == 16


@pytest.mark.parametrize("schema, fit, overrides, key", [
    (AdaptFitConfig, fit_adapt, ["style=golden_statue", "data.dirs=[/elsewhere]"], r"data\.dirs"),
    (AdaptFitConfig, fit_adapt, ["style=golden_statue", "data.limit=3"], r"data\.limit=3.*num_pairs=3"),
    (DistillFitConfig, fit_distill, ["data.dirs=[/elsewhere]"], r"data\.dirs"),
])
def test_keys_the_recipe_fills_in_are_refused(schema, fit, overrides, key, tmp_path):
    cfg = load_structured(schema, [], [f"out={tmp_path / 'run'}", f"pairs_dir={tmp_path / 'pairs'}", *overrides])
    with pytest.raises(ConfigError, match=key):
        fit(cfg)
    assert not (tmp_path / "pairs").exists()  # refused before any work


def test_the_gradient_clip_reaches_the_trainer(tmp_path):
    """``trainer.gradient_clip_norm`` becomes Lightning's norm clipping; a negative value left unresolved is refused."""
    from pe3d.systems.runner import TrainerConfig, build_trainer

    trainer = build_trainer(TrainerConfig(gradient_clip_norm=0.3, logger="none", progress=False), tmp_path)
    assert (trainer.gradient_clip_val, trainer.gradient_clip_algorithm) == (0.3, "norm")
    assert build_trainer(TrainerConfig(logger="none", progress=False), tmp_path).gradient_clip_val is None
    with pytest.raises(ConfigError, match=r"trainer\.gradient_clip_norm=-1"):
        build_trainer(TrainerConfig(gradient_clip_norm=-1, logger="none", progress=False), tmp_path)
