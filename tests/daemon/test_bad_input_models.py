"""A damaged exercise model of the owner's at daemon start (issue 17 rule: a bad file never
silences a working device): the real exercise loader and the real shipped model."""

from __future__ import annotations

from pathlib import Path

from device.daemon.model_holder import ModelHolder
from device.daemon.pipelines import load_exercise_model, shipped_exercise_model


async def test_a_damaged_owners_exercise_model_at_start_leaves_the_shipped_one_active(tmp_path: Path) -> None:
    owner = tmp_path / "models" / "exercise.model"
    owner.parent.mkdir(parents=True)
    shipped = shipped_exercise_model()
    owner.write_bytes(shipped.read_bytes()[:3000])  # a copy cut short
    holder = ModelHolder(owner, load_exercise_model, kind="exercise", fallback=shipped_exercise_model)
    assert await holder.check(force=True) == "failed"  # the owner's file is said to be broken ...
    assert holder.current is not None and holder.shipped  # ... and exercises are still recognised
    assert "not loaded" in holder.info["last_error"] and "\n" not in holder.info["last_error"]
    assert "bench_press" in holder.labels
    assert await holder.check() is None  # not tried again and again
    # the owner's file mended: it is loaded
    owner.write_bytes(shipped.read_bytes())
    assert await holder.check() is None and await holder.check() == "loaded"
    assert not holder.shipped and not holder.failed

