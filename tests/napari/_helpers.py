"""Helpers shared by the napari tests."""


def _press(den, scope):
    """Choose the Denoise widget's scope and press its one Denoise button, as a user does."""
    den.scope.value = scope
    assert den.scope.value == scope
    den.denoise_btn.native.click()
