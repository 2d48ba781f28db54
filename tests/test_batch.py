"""Many files (scoredenoise.batch): serially with failures reported, and on a
dask.distributed LocalCluster with the same output."""

import json

import numpy as np
import pytest
import tifffile

import scoredenoise as sd
from scoredenoise.batch import denoise_files
from scoredenoise.io import read_image

from .test_model import untrained
from .test_to_file import _stack


def test_two_jobs_writing_one_output_are_refused(tmp_path):
    m = untrained()
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    for p in (a, b):
        tifffile.imwrite(p, _stack((2, 64, 64)))
    with pytest.raises(ValueError, match="several inputs would write the same output"):
        denoise_files([(a, tmp_path / "o.tif"), (b, tmp_path / "o.tif")], m,
                      noise_model="gaussian")


def _files(tmp_path, n=8):
    paths = []
    for i in range(n):
        p = tmp_path / f"f{i}.tif"
        tifffile.imwrite(p, _stack((2, 96, 80), seed=i), imagej=True, metadata={"axes": "TYX"})
        paths.append(p)
    return paths


def test_many_files_serial_reports_failures_and_goes_on(tmp_path):
    m = untrained()
    paths = _files(tmp_path, 3)
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    jobs = [(p, tmp_path / "out" / f"{p.stem}.tif") for p in
            [paths[0], tmp_path / "bad.tif", paths[1]]]
    rows = denoise_files(jobs, m, noise_model="gaussian", sigma=5.0)
    assert [r["ok"] for r in rows] == [True, False, True]
    assert "bad.tif" in rows[1]["source"] and rows[1]["error"]


def test_distributed_local_cluster_equals_serial(tmp_path):
    from distributed import Client, LocalCluster

    m = untrained()
    paths = _files(tmp_path, 8)
    serial = [(p, tmp_path / "serial" / f"{p.stem}.tif") for p in paths]
    dist = [(p, tmp_path / "dist" / f"{p.stem}.tif") for p in paths]
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker: then the sums run in the same order
    try:
        denoise_files(serial, m, noise_model="poisson-gaussian", gain=1.0, offset=10.0)
    finally:
        torch.set_num_threads(threads)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        rows = denoise_files(dist, m, client=client, noise_model="poisson-gaussian",
                             gain=1.0, offset=10.0)
        # a worker estimates its file's noise (reading the TIFF in its own thread: the
        # default scheduler would try to ship the file-backed graph to the cluster)
        est = denoise_files([(paths[0], tmp_path / "est.tif")], m, client=client,
                            noise_model="poisson-gaussian", estimate_noise=True, offset=10.0)
    assert all(r["ok"] for r in rows), rows
    assert est[0]["ok"], est
    assert est[0]["noise_estimate"][0]["noise_model"] == \
        sd.estimate_noise(read_image(paths[0]).data, offset=10.0).noise_model.to_dict()
    for (_, a), (_, b) in zip(serial, dist):
        np.testing.assert_array_equal(read_image(a).data, read_image(b).data)
        assert json.loads(tifffile.TiffFile(b).pages[0].description)["axes"] == "TYX"
