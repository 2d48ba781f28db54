"""The old module path: scoredenoise.stream keeps re-exporting what moved to io, to_file
and batch (its tests mirror those modules now)."""

from scoredenoise import batch, io, stream, to_file


def test_old_import_path_still_works():
    assert stream.denoise_to_file is to_file.denoise_to_file
    assert stream.denoise_files is batch.denoise_files
    assert stream.open_image is io.open_image
