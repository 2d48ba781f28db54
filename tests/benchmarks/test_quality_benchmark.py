import json

from ._scripts import load_benchmark


def test_quality_benchmark_runs_end_to_end_tiny(tmp_path):
    mod = load_benchmark("quality", "quality")
    out = mod.main(["--tiny", "--rows", "1,10", "--out", str(tmp_path / "q.json")])
    saved = json.loads((tmp_path / "q.json").read_text())
    assert [r["row"] for r in saved["natural"]] == [1, 10] == [r["row"] for r in out["natural"]]
    for key in ("psnr_noisy", "psnr_classical", "psnr_ours", "psnr_neighbor2neighbor",
                "psnr_iddp", "psnr_supervised", "ssim_iddp"):
        assert key in saved["natural"][1]
    assert "precision" in saved["natural"][0]
    for key in ("psnr_noise2noise", "psnr_neighbor2neighbor", "psnr_iddp", "ssim_ours"):
        assert saved["fmd"][key] > 0
    pairs = saved["fmd_pairs"]
    assert sorted(pairs["images"]) == ["BPAE_B", "BPAE_G", "BPAE_R", "fish", "mice"]
    for key in ("psnr_noisy", "psnr_ours", "psnr_ours_exact", "psnr_neighbor2neighbor",
                "psnr_iddp", "psnr_supervised", "psnr_noise2noise", "ssim_ours_exact"):
        assert pairs[key] > 0
    # ours solves with parameters estimated from each frame
    assert pairs["images"]["fish"]["noise_model"]["name"] == "poisson-gaussian"
    assert set(mod.ROWS) == {1, 2, 3, 5, 7, 9, 10, 11, 13, 15}  # the Table 1 rows
