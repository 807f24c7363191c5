import pytest
import yaml

from lmforge.config import Config, all_keys
from lmforge.config_files import load_preset, preset_names, read_yaml
from lmforge.errors import LmforgeError


def test_every_preset_loads_and_validates():
    assert {"default", "tiny", "shakespeare-char-cpu"} <= set(preset_names())
    for name in preset_names():
        assert isinstance(Config.from_preset(name), Config)


def test_dotted_override_converts_to_the_field_type():
    cfg = Config().updated({"train.max_steps": "2_000", "train.lr": "3e-4", "model.bias": "true", "data.path": "none"})
    assert (cfg.train.max_steps, cfg.train.lr, cfg.model.bias, cfg.data.path) == (2000, 3e-4, True, None)


def test_yaml_values_and_dotted_strings_take_one_path():
    """A value from a YAML file and the same value typed on the command line give the same config."""
    from_yaml = Config.from_dict({"train": {"max_steps": 2000, "lr": 3e-4, "compile": True}, "data": {"path": None}})
    from_flags = Config.from_layers(("command line", {"train.max_steps": "2000", "train.lr": "3e-4",
                                                      "train.compile": "true", "data.path": "null"}))
    assert from_yaml == from_flags


def test_a_validated_config_is_frozen_and_updated_is_a_new_one():
    cfg = Config()
    with pytest.raises(ValueError, match="frozen"):
        cfg.train.max_steps = 5
    longer = cfg.updated({"train": {"max_steps": 5}})
    assert (cfg.train.max_steps, longer.train.max_steps) == (1000, 5)


@pytest.mark.parametrize("key, suggestion", [("train.max_step", "train.max_steps"), ("modle.n_layer", "model.n_layer")])
def test_unknown_key_suggests_the_nearest(key, suggestion):
    with pytest.raises(LmforgeError, match=f"did you mean '{suggestion}'"):
        Config().updated({key: "1"})


def test_unknown_section_in_yaml_is_named():
    with pytest.raises(LmforgeError, match="unknown config section 'trian'.*'train'"):
        Config.from_dict({"trian": {"lr": 1}})


def test_a_bad_value_in_a_file_names_the_file_and_the_key():
    with pytest.raises(LmforgeError, match=r"^my.yaml: unknown config key 'train.max_step' \(did you mean"):
        Config.from_dict({"train": {"max_step": 1}}, source="my.yaml")
    with pytest.raises(LmforgeError, match="^my.yaml: --train.lr must be less than 10, not 50$"):
        Config.from_dict({"train": {"lr": 50}}, source="my.yaml")


def test_a_config_file_that_is_a_folder_is_named_a_folder(tmp_path):
    with pytest.raises(LmforgeError, match="is a folder; pass --config with the path to a YAML file"):
        read_yaml(tmp_path)


def test_wrong_type_is_rejected():
    with pytest.raises(LmforgeError, match="^--train.max_steps must be a valid integer, not 'lots'$"):
        Config().updated({"train.max_steps": "lots"})


def test_the_models_vocabulary_is_not_a_setting():
    """Old runs' config.yaml hold model.vocab_size: ignored there; on the command line, the key to use is named."""
    assert Config.from_dict({"model": {"vocab_size": 65, "n_layer": 2}}).model.n_layer == 2
    with pytest.raises(LmforgeError, match="--model.vocab_size is no longer a setting.*--data.vocab_size"):
        Config().updated({"model.vocab_size": "65"})


def test_unknown_preset_suggests_the_nearest():
    with pytest.raises(LmforgeError, match="did you mean 'shakespeare-char-cpu'"):
        load_preset("shakespeare-char-cp")


@pytest.mark.parametrize(
    "key, value, flag",
    [("model.n_head", 3, "--model.n_embd"), ("train.lr", -1, "--train.lr"), ("train.batch_size", 0, "--train.batch_size"),
     ("model.block_size", 10**9, "--model.block_size"), ("train.min_lr", 5, "--train.min_lr"),
     ("model.family", "lstm", "--model.rnn_cell"), ("train.device", "tpu", "--train.device"),
     ("data.separator", "", "--separator"), ("train.lr", "nan", "--train.lr must be a finite number")],
)
def test_absurd_values_name_the_flag(key, value, flag):
    with pytest.raises(LmforgeError, match=flag):
        Config().updated({key: value})


def test_save_writes_every_value_and_round_trips(tmp_path):
    cfg = Config.from_preset("shakespeare-char-cpu")
    cfg.save(tmp_path / "config.yaml")
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert sorted(f"{s}.{k}" for s, keys in saved.items() for k in keys) == sorted(all_keys())
    assert Config.from_file(tmp_path / "config.yaml") == cfg
