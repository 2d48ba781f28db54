"""TrainConfig: the training settings written once (train, time_per_step, the CLI, the
widget and the model file use it)."""

import numpy as np
import pytest
import torch

import scoredenoise as sd
from scoredenoise.cli import main


def _frames():
    return np.random.default_rng(0).poisson(40, (2, 48, 48)).astype(np.float32)


SMALL = dict(preset="small", steps=3, patch_size=32, batch_size=2, seed=0)


def _same_weights(a, b):
    sa, sb = a.network.state_dict(), b.network.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_config_trains_exactly_as_its_keywords_and_the_model_repeats_it(tmp_path):
    y = _frames()
    by_keywords = sd.train(y, axes="SYX", **SMALL)
    cfg = sd.TrainConfig(**SMALL)
    by_config = sd.train(y, axes="SYX", config=cfg)
    assert _same_weights(by_keywords, by_config)
    # keywords change single fields of a config
    assert sd.train(y, axes="SYX", config=cfg.replace(steps=1), steps=3).meta["steps_done"] == 3
    # the model file records the settings as given: training again repeats the run
    path = by_config.save(tmp_path / "m.sdmodel")
    again = sd.load_model(path).train_config
    assert again == cfg and again.sigma_a is None  # None stays "the data's default"
    assert _same_weights(sd.train(y, axes="SYX", config=again), by_config)
    # beside the resolved values the file has always recorded
    rec = by_config.meta["training"]
    assert rec["patch_size"] == 32 and rec["lr"] == 1e-3 and rec["dims"] == 2
    assert sd.TrainConfig.from_dict(rec).lr == 1e-3  # older files: the resolved settings


def test_bad_settings_are_refused_with_the_setting_and_the_fix():
    with pytest.raises(TypeError, match="unknown training setting.*stepz; the settings are "
                                        "objective, dims"):
        sd.train(_frames(), stepz=3)
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        sd.TrainConfig(steps=0)
    with pytest.raises(ValueError, match="unknown preset 'huge'; choose one of"):
        sd.TrainConfig(preset="huge")
    with pytest.raises(ValueError, match="dims must be 2 or 3, got 4"):
        sd.TrainConfig(dims=4)
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\), got 1.5"):
        sd.TrainConfig(val_fraction=1.5)
    with pytest.raises(ValueError, match="sigma_a must be two values > 0"):
        sd.TrainConfig(sigma_a=(0.1, -1))
    with pytest.raises(ValueError, match="extra_noise must be 'auto' or >= 0"):
        sd.TrainConfig(extra_noise=-1.0)
    cfg = sd.TrainConfig(sigma_a=[0.01, 0.2], patch_size=[32, 48])
    assert cfg.sigma_a == (0.01, 0.2) and cfg.patch_size == (32, 48)  # hashable, frozen
    assert cfg.to_dict()["sigma_a"] == [0.01, 0.2]
    assert sd.TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_time_per_step_takes_the_same_config():
    cfg = sd.TrainConfig(preset="small", patch_size=16, batch_size=1)
    assert sd.time_per_step(config=cfg, repeats=1) > 0
    with pytest.raises(TypeError, match="unknown training setting"):
        sd.time_per_step(config=cfg, presett="small")


def test_the_cli_builds_the_config_the_model_records(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "a.tif", _frames().astype(np.uint16))
    out = tmp_path / "m.sdmodel"
    assert main(["train", str(tmp_path / "a.tif"), "-o", str(out), "--preset", "small",
                 "--steps", "2", "--patch-size", "32", "--batch-size", "2", "--seed", "3",
                 "--ema", "0.9", "-q"]) == 0
    cfg = sd.load_model(out).train_config
    assert (cfg.preset, cfg.steps, cfg.patch_size, cfg.batch_size, cfg.seed, cfg.ema) == \
        ("small", 2, 32, 2, 3, 0.9)
