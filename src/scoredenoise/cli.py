"""Command line: ``scoredenoise noise-models``, ``train``, ``denoise``."""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__
from .noise import get_noise_model, list_noise_models


def _cmd_noise_models(args) -> int:
    names = [args.name] if args.name else list_noise_models()
    if args.name:
        get_noise_model(args.name)  # clear error for unknown names
    infos = [type(get_noise_model(n)).describe() for n in names]
    if args.json:
        print(json.dumps(infos, indent=2))
        return 0
    for info in infos:
        row = f"Table 1 row {info['table1_row']}" if info["table1_row"] else "camera model"
        print(f"{info['name']}  ({row})")
        print(f"  {info['summary']}")
        print(f"  model:   {info['formula']}")
        print(f"  support: {info['support']}")
        print(f"  solver:  {info['solver']}")
        print(f"  no root: {info['no_root']}")
        for p in info["parameters"]:
            default = p["default"] if p["kind"] != "kernel" else "paper 3x3 (Eq. 30)"
            print(f"  --param {p['name']}=  default {default}; {p['unit']}; {p['range']}; "
                  f"{p['description']}")
        print()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scoredenoise",
        description="Self-supervised score-function denoising (Xie et al. 2023).")
    parser.add_argument("--version", action="version", version=f"scoredenoise {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("noise-models", help="list the registered noise models",
                       description="List the noise models: name, parameters with units, "
                                   "defaults and ranges, formula and solver.")
    p.add_argument("name", nargs="?", help="show only this model")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_noise_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"scoredenoise: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
