import subprocess
import sys


def test_core_import_pulls_no_gui():
    code = ("import sys, scoredenoise, scoredenoise.cli, scoredenoise.noise; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui')]; "
            "print(bad); sys.exit(bool(bad))")
    subprocess.run([sys.executable, "-c", code], check=True)
