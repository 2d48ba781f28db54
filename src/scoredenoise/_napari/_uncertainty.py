"""The Denoise step's uncertainty scopes: the posterior standard deviation of the plane
shown or of the whole layer, and posterior samples with a prior (a mixin of
:class:`~._denoise.DenoiseWidget`, which provides the layer, the session and the worker)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.utils import notifications
from qtpy.QtWidgets import QFileDialog

import scoredenoise as sd
from scoredenoise.langevin import check_prior

from ._session import (
    full_resolution,
    geometry,
    layer_axes,
    plane_shown,
)


class UncertaintyScopes:
    """Posterior std maps and posterior samples for the Denoise step."""

    def std_map(self, all_planes: bool = False):
        """The posterior standard deviation (``sd.posterior_std``) of the plane shown, or of
        every plane, in a worker (progress, Cancel), as the layer "NAME posterior std" with
        the source's geometry; each plane is shown as it is done."""
        src = self._checked_source(in_memory=True)
        if src is None:
            return
        ly, model = src
        planes = self._planes(ly, model, all_planes)
        nm = self.session.noise_model
        name = f"{ly.name} posterior std"

        def layer():  # made (or replaced) when the first plane is done, not on a failure
            if name not in self.viewer.layers or \
                    self.viewer.layers[name].data.shape != ly.data.shape:
                if name in self.viewer.layers:
                    self.viewer.layers.remove(name)
                md = dict(ly.metadata)
                md["scoredenoise"] = {"source": ly.name}
                self.viewer.add_image(np.zeros(ly.data.shape, np.float32), name=name,
                                      metadata=md, colormap="magma", **geometry(ly))
            return self.viewer.layers[name]

        def show(idx, std):  # in the GUI thread
            out = layer()
            out.data[idx] = std
            # the map uses the network's own score: its sigma_a without the layer's factor
            out.metadata["scoredenoise"].update(sd.provenance(
                model, nm, sigma_a=float(self.sigma_a[ly.name]), source=ly.name,
                kind="posterior std", model_source=self.session.model_source))
            out.contrast_limits = (0.0, max(float(out.data.max()), 1e-12))
            out.refresh()

        def run():
            if ly.name not in self.sigma_a:
                self.sigma_a[ly.name] = model.resolve_sigma_a(
                    full_resolution(ly), "auto", nm, axes=layer_axes(ly, model.dims))
            sig = self.sigma_a[ly.name] if model.conditioned else "auto"  # (fixed)
            self._progress.step.emit(0, len(planes), None)
            for k, idx in enumerate(planes):
                if self._cancel.is_set():
                    raise sd.Cancelled(f"posterior std cancelled after {k} of "
                                       f"{len(planes)} planes")
                std = sd.posterior_std(np.asarray(ly.data[idx], dtype=np.float32), model, nm,
                                       sigma_a=sig, rng=0)
                self._progress.call.emit(lambda idx=idx, std=std: show(idx, std))
                self._progress.step.emit(k + 1, len(planes), None)
            return planes

        def done(_planes):
            out = layer()
            std = out.data[planes[0]] if len(planes) == 1 else out.data
            what = f"plane {planes[0]}" if len(planes) == 1 else f"{len(planes)} planes"
            self._say(f"posterior std of {what}: mean {float(np.mean(std)):.3g}")

        what = f"plane {planes[0]}" if len(planes) == 1 else f"{len(planes)} planes"
        self._start(run, done, f"posterior std of {what} of {ly.name} ...")

    def load_prior(self, path=None):
        """Load the prior for posterior samples (a model of ``train(objective="prior")``)."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self.native, "Load prior", "",
                                                  "scoredenoise models (*.sdmodel)")
            if not path:
                return None
        try:
            prior = sd.load_model(path)
            check_prior(prior)
        except (ValueError, FileNotFoundError) as exc:
            notifications.show_error(str(exc))
            self._say(str(exc))
            return None
        self.set_prior(prior, str(path))
        return prior

    def set_prior(self, prior, source):
        check_prior(prior)
        self.prior, self.prior_source = prior, source
        self.prior_label.value = Path(str(source)).name

    def samples(self):
        """Posterior samples of the plane shown (``sd.sample_posterior``) in a worker: the
        layers "NAME samples" (a leading sample axis) and "NAME samples spread"."""
        ly = self.layer.value
        if ly is None:
            notifications.show_error("no image layer to denoise")
            return
        if self.prior is None:
            msg = ("posterior samples need a prior: load one trained on clean images "
                   "(scoredenoise train --objective prior)")
            notifications.show_error(msg)
            self._say(msg)
            return
        nm = self.session.noise_model
        camera = self.prior.meta.get("stabilised_by")  # a camera prior brings its noise
        msg = None
        if getattr(ly, "multiscale", False):
            msg = "posterior samples take single-scale layers; open the full-resolution level"
        elif camera is None and nm.name != "gaussian":
            msg = (f"posterior samples with this prior need the gaussian noise model (its "
                   f"sigma), got {nm.name}: choose gaussian in step 2, or load a prior "
                   f"trained for the camera (train --objective prior --camera ...)")
        if msg:
            notifications.show_error(msg)
            self._say(msg)
            return
        noise = {"sigma": nm.sigma} if camera is None else {}
        prior, n = self.prior, self.n_samples.value
        lead = ly.data.ndim - 2
        idx = plane_shown(self.viewer, ly, lead)

        def run():
            y = np.asarray(ly.data[idx], dtype=np.float32)

            def progress(done, total):
                self._progress.step.emit(done, total, None)
                return not self._cancel.is_set()

            return sd.sample_posterior(y, prior, n_samples=n, rng=0, progress=progress,
                                       **noise)

        def done(xs):
            md = {"scoredenoise": {"source": ly.name, "kind": "posterior samples",
                                   "prior": self.prior_source,
                                   "sigma": None if camera else nm.sigma, "camera": camera,
                                   "plane": list(idx), "samples": n}}
            name = f"{ly.name} samples"
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
            full = np.zeros((n,) + ly.data.shape, np.float32)
            full[(slice(None),) + idx] = xs
            geo = geometry(ly)
            # a leading sample axis before the layer's own (scale 1, no offset)
            self.viewer.add_image(full, name=name, metadata=md,
                                  contrast_limits=ly.contrast_limits,
                                  colormap=ly.colormap.name,
                                  scale=(1.0,) + tuple(geo["scale"]),
                                  translate=(0.0,) + tuple(geo["translate"]))
            spread_name = f"{ly.name} samples spread"
            if spread_name in self.viewer.layers:
                self.viewer.layers.remove(spread_name)
            sp = np.zeros(ly.data.shape, np.float32)
            sp[idx] = xs.std(axis=0)
            self.viewer.add_image(sp, name=spread_name, colormap="magma",
                                  metadata={"scoredenoise": {**md["scoredenoise"],
                                                             "kind": "posterior spread"}},
                                  **geo)
            self.reset_choices()
            self._say(f"{n} posterior samples of plane {idx}: mean spread "
                                f"{float(xs.std(axis=0).mean()):.3g}")

        self._start(run, done, f"{n} posterior samples of plane {idx} of {ly.name} ...")
