"""Sample data: a crop of real FMD confocal frames and their 50-frame average (attributed in
scoredenoise/data/README.md)."""

from __future__ import annotations

from ..demo import sample_data

_ATTRIB = ("FMD dataset (Zhang et al., CVPR 2019), Confocal_BPAE_B field 1, 256x256 crop; "
           "camera model: poisson-gaussian gain 4.06, offset 3.5, read noise 1.0 ADU")


def fmd_noisy():
    frames, _ = sample_data()
    return [(frames, {"name": "FMD noisy", "metadata": {"source": _ATTRIB, "axes": "SYX"},
                      "axis_labels": ("frame", "y", "x")}, "image")]


def fmd_noisy_and_ground_truth():
    _, gt = sample_data()
    return fmd_noisy() + [(gt, {"name": "FMD ground truth (avg50)",
                                "metadata": {"source": _ATTRIB}}, "image")]
