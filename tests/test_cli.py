import json
import subprocess
import sys

from scoredenoise.cli import main
from scoredenoise.noise import list_noise_models


def test_noise_models_lists_every_model_with_units(capsys):
    assert main(["noise-models"]) == 0
    out = capsys.readouterr().out
    for name in list_noise_models():
        assert f"\n{name}  (" in "\n" + out
    assert "--param gain=  default 1.0; data units per photo-electron; > 0" in out
    assert "Table 1 row 13" in out


def test_noise_models_json_is_the_registry_metadata(capsys):
    assert main(["noise-models", "--json"]) == 0
    infos = json.loads(capsys.readouterr().out)
    assert [i["name"] for i in infos] == list_noise_models()
    pg = next(i for i in infos if i["name"] == "poisson-gaussian")
    assert [p["name"] for p in pg["parameters"]] == ["gain", "offset", "read_noise"]


def test_unknown_model_is_a_clean_error(capsys):
    assert main(["noise-models", "nope"]) == 2
    assert "unknown noise model 'nope'" in capsys.readouterr().err


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "scoredenoise", "noise-models", "gamma"],
                         capture_output=True, text=True, check=True).stdout
    assert "Eq. (9)" in out
