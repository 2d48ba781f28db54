"""Print the Markdown tables of docs/benchmarks.md from benchmarks/results/quality.json."""

import json
import sys
from pathlib import Path

path = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/quality.json")
d = json.loads(path.read_text())
print("| Table 1 row | noise | noisy | classical (NL-means, calibrated) | ours | supervised |"
      " ours - supervised | ours - classical |")
print("|---|---|---|---|---|---|---|---|")
for r in d["natural"]:
    p = ", ".join(f"{k}={v:g}" for k, v in r["noise"]["params"].items() if k != "kernel")
    if "kernel" in r["noise"]["params"]:
        p += ", A = Eq. 30"
    print(f"| {r['row']} | {r['noise']['name']} ({p}) | {r['psnr_noisy']:.2f} / "
          f"{r['ssim_noisy']:.3f} | {r['psnr_classical']:.2f} / {r['ssim_classical']:.3f} | "
          f"**{r['psnr_ours']:.2f}** / {r['ssim_ours']:.3f} | {r['psnr_supervised']:.2f} / "
          f"{r['ssim_supervised']:.3f} | {r['psnr_ours'] - r['psnr_supervised']:+.2f} | "
          f"{r['psnr_ours'] - r['psnr_classical']:+.2f} |")
if "fmd" in d:
    f = d["fmd"]
    print()
    print("| method | PSNR (dB) | SSIM |")
    print("|---|---|---|")
    for k, label in (("noisy", "noisy frame"), ("ours", "ours (poisson-gaussian)"),
                     ("noise2noise", "Noise2Noise (frame pairs)"),
                     ("supervised", "supervised (50-frame average as target)")):
        print(f"| {label} | {f['psnr_' + k]:.2f} | {f['ssim_' + k]:.3f} |")
    print()
    print("noise model:", json.dumps(f["noise_model"]), "photon transfer:",
          json.dumps(f["photon_transfer"]))
for r in d["natural"]:
    if "precision" in r:
        q = r["precision"]
        print(f"\nprecision (row {r['row']}): fp32 {q['fp32_psnr']:.3f} dB in "
              f"{q['fp32_seconds']:.2f} s, bf16 {q['bf16_psnr']:.3f} dB in "
              f"{q['bf16_seconds']:.2f} s")
print(f"\ntotal {d.get('total_seconds', float('nan')) / 60:.1f} min, {d['date']}, "
      f"{d['machine']}")
