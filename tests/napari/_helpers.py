"""Helpers shared by the napari tests."""


def _press(den, scope):
    """Choose the Denoise widget's scope and press its one Denoise button, as a user does."""
    den.scope.value = scope
    assert den.scope.value == scope
    den.denoise_btn.native.click()


def _dock(viewer):
    _, train = viewer.window.add_plugin_dock_widget("scoredenoise", "Train")
    _, noise = viewer.window.add_plugin_dock_widget("scoredenoise", "Noise model")
    _, den = viewer.window.add_plugin_dock_widget("scoredenoise", "Denoise")
    return train, noise, den


def _train(qtbot, train, steps):
    with qtbot.waitSignal(train.session.model_changed, timeout=300_000):
        train.start()
    qtbot.waitUntil(lambda: train.start_btn.enabled, timeout=10_000)
