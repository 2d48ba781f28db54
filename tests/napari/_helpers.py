"""Helpers shared by the napari tests."""


def _press(den, scope):
    """Choose the Denoise widget's scope and press its one Denoise button, as a user does."""
    den.scope.setCurrentText(scope)
    assert den.scope.currentText() == scope
    den.denoise_btn.click()
