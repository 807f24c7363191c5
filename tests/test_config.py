import pytest
import yaml

from lmforge.config import Config, all_keys, load_preset, preset_names
from lmforge.errors import LmforgeError


def test_every_preset_loads_and_validates():
    assert {"default", "tiny", "shakespeare-char-cpu"} <= set(preset_names())
    for name in preset_names():
        Config.from_preset(name).validate()


def test_dotted_override_converts_to_the_field_type():
    cfg = Config()
    cfg.set("train.max_steps", "2_000")
    cfg.set("train.lr", "3e-4")
    cfg.set("model.bias", "true")
    cfg.set("data.path", "none")
    assert (cfg.train.max_steps, cfg.train.lr, cfg.model.bias, cfg.data.path) == (2000, 3e-4, True, None)


@pytest.mark.parametrize("key, suggestion", [("train.max_step", "train.max_steps"), ("modle.n_layer", "model.n_layer")])
def test_unknown_key_suggests_the_nearest(key, suggestion):
    with pytest.raises(LmforgeError, match=f"did you mean '{suggestion}'"):
        Config().set(key, "1")


def test_unknown_section_in_yaml_is_named():
    with pytest.raises(LmforgeError, match="unknown config section 'trian'.*'train'"):
        Config.from_dict({"trian": {"lr": 1}})


def test_wrong_type_is_rejected():
    with pytest.raises(LmforgeError, match="train.max_steps expects int"):
        Config().set("train.max_steps", "lots")


def test_unknown_preset_suggests_the_nearest():
    with pytest.raises(LmforgeError, match="did you mean 'shakespeare-char-cpu'"):
        load_preset("shakespeare-char-cp")


@pytest.mark.parametrize(
    "key, value, flag",
    [("model.n_head", 3, "--model.n_embd"), ("train.lr", -1, "--train.lr"), ("train.batch_size", 0, "--train.batch_size"),
     ("model.block_size", 10**9, "--model.block_size"), ("train.min_lr", 5, "--train.min_lr")],
)
def test_absurd_values_name_the_flag(key, value, flag):
    cfg = Config()
    cfg.set(key, value)
    with pytest.raises(LmforgeError, match=flag):
        cfg.validate()


def test_save_writes_every_value_and_round_trips(tmp_path):
    cfg = Config.from_preset("shakespeare-char-cpu")
    cfg.save(tmp_path / "config.yaml")
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert sorted(f"{s}.{k}" for s, keys in saved.items() for k in keys) == sorted(all_keys())
    assert Config.from_file(tmp_path / "config.yaml") == cfg
