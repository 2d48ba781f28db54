import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_noise_model_reference_is_current(tmp_path):
    """docs/noise-models.md's reference is what the registry says (regenerate if this fails)."""
    doc = (ROOT / "docs" / "noise-models.md").read_text()
    copy = tmp_path / "docs" / "noise-models.md"
    copy.parent.mkdir()
    copy.write_text(doc)
    script = (ROOT / "scripts" / "gen_noise_docs.py").read_text()
    fake = tmp_path / "scripts" / "gen_noise_docs.py"
    fake.parent.mkdir()
    fake.write_text(script)
    subprocess.run([sys.executable, str(fake)], check=True)
    assert copy.read_text() == doc, "run: python scripts/gen_noise_docs.py"


def test_noise_estimation_table_matches_the_registry():
    from scoredenoise.noise import get_noise_model, list_noise_models

    text = (ROOT / "docs" / "noise-estimation.md").read_text()
    for name in list_noise_models():
        nm = get_noise_model(name)
        row = next(line for line in text.splitlines() if line.startswith(f"| `{name}` |"))
        assert row.split("|")[2].strip().startswith(", ".join(nm.estimable)), name
