"""Regenerate the model reference in docs/noise-models.md from the registry metadata.

Usage: python scripts/gen_noise_docs.py   (rewrites the part between the markers)
"""

from pathlib import Path

from scoredenoise.noise import get_noise_model, list_noise_models

BEGIN, END = "<!-- BEGIN GENERATED MODELS -->", "<!-- END GENERATED MODELS -->"


def render() -> str:
    out = []
    for name in list_noise_models():
        info = type(get_noise_model(name)).describe()
        row = f"Table 1 row {info['table1_row']}" if info["table1_row"] else "beyond Table 1"
        out += [f"### `{name}` ({row})", "", info["summary"][0].upper() + info["summary"][1:]
                + ".", "", f"- model: `{info['formula']}`", f"- support of y: {info['support']}",
                f"- solver: {info['solver']}", f"- no admissible root: {info['no_root']}",
                f"- reference: {info['reference']}", "",
                "| parameter | default | unit | range | meaning |", "|---|---|---|---|---|"]
        for p in info["parameters"]:
            default = "Eq. 30 kernel" if p["kind"] == "kernel" else f"{p['default']:g}"
            out.append(f"| `{p['name']}` | {default} | {p['unit']} | {p['range']} | "
                       f"{p['description']} |")
        out.append("")
    return "\n".join(out)


def main():
    path = Path(__file__).resolve().parents[1] / "docs" / "noise-models.md"
    text = path.read_text()
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    path.write_text(head + BEGIN + "\n" + render() + END + tail)


if __name__ == "__main__":
    main()
