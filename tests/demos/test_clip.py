"""The CLIP demo sizes its schedule to the training budget from a measured step time."""

from pathlib import Path

import pytest

from omnifuse.demos import clip
from omnifuse.train.config import recipe_from_dict


def test_budget_buys_steps_at_the_measured_speed(monkeypatch, tmp_path):
    monkeypatch.setattr(clip, "measure_speed", lambda recipe: (0.5, 5.0))
    schedule = clip.plan_schedule(tmp_path / "data", tmp_path, budget_s=100, steps=None)
    # 5 validations of 5 s leave 75 s: 150 steps of 0.5 s
    assert (schedule.steps, schedule.eval_points, schedule.step_seconds) == (150, 5, 0.5)
    assert "0.50 s per training step" in schedule.describe() and "150 steps" in schedule.describe()
    monkeypatch.setattr(clip, "measure_speed", lambda recipe: (0.5, 20.0))  # slow validation: fewer points
    schedule = clip.plan_schedule(tmp_path, tmp_path, 100, None)
    assert (schedule.eval_points, schedule.steps) == (2, 120)
    monkeypatch.setattr(clip, "measure_speed", lambda recipe: (60.0, 1.0))
    assert clip.plan_schedule(tmp_path, tmp_path, 100, None).steps == clip.MIN_STEPS
    assert clip.plan_schedule(tmp_path, tmp_path, 100, steps=7).steps == 7  # --steps wins, nothing measured
    with pytest.raises(ValueError, match="--budget must be a positive"):
        clip.plan_schedule(tmp_path, tmp_path, 0, None)


def test_recipe_has_several_evaluation_points():
    recipe = recipe_from_dict(clip.demo_recipe_dict(Path("d"), Path("o"), 600))
    assert recipe.train.max_steps // recipe.train.eval_every == clip.EVAL_POINTS
    assert recipe.train.warmup_steps <= 60


@pytest.mark.slow
def test_speed_is_measured_on_the_real_training_step(tmp_path):
    """The probe runs the demo's own data, model, Trainer step and validation (tiny world)."""
    from omnifuse.data.synth import SynthConfig, generate

    generate(SynthConfig(n=200, seed=0, minimal_pairs=True), tmp_path / "data", progress=False)
    recipe = recipe_from_dict(clip.demo_recipe_dict(tmp_path / "data", tmp_path / "probe", 100))
    step_s, eval_s = clip.measure_speed(recipe, steps=1, warmup=0)
    assert step_s > 0 and eval_s > 0
