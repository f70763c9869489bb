"""design_implant: a binary defective skull → its implant on the same grid (searches, prediction,
reconstruction), and implant_cloud (the predicted points of one search)."""

from __future__ import annotations

import time

import numpy as np

from pcc.design.loading import CompletionModel
from pcc.design.prediction import predict_implant_cloud
from pcc.design.reconstruction import implant_from_points
from pcc.design.settings import DesignSettings
from pcc.geometry.cloud import PointCloud
from pcc.models.inputs import NETWORK_SURFACE_SMOOTHING, SKULL_POINTS
from pcc.volume import Volume, require_binary


def design_implant(
    defective: Volume,
    model: CompletionModel,
    *,
    settings: DesignSettings | None = None,
    timings: dict[str, float] | None = None,
    cleanup: bool = True,
    specks: dict[str, int] | None = None,
) -> Volume:
    """The implant (uint8 0/1 Volume on the input's grid) for a binary defective skull volume.

    Args:
        defective: binary defective skull.
        model: from load_model.
        settings: the pipeline's settings; None takes those the model's weights carry (model.settings).
            search_rounds searches for defects: each after the first runs on the skull completed with
            the implant found so far, so a defect the global stage passed over (the second side of a
            bilateral defect) is found once the first is filled. The first search samples the skull's
            surface at first_round_surface_step. The later searches sample it at later_rounds_surface_step
            and use only the most central global guess (predict_implant_cloud's other_guesses: False) and
            later_rounds_intact_bone_mm.
        timings: filled with seconds per stage (cloud, network, voxelize_cleanup; summed over rounds) when given.
        cleanup: join to the rim and drop fragments (False only for ablations).
        specks: filled with the face-connected parts below settings.speck_mm3 that the clean-up dropped
            ("parts", "voxels", summed over the searches) when given.
    """
    settings = settings if settings is not None else getattr(model, "settings", None) or DesignSettings()
    timings = timings if timings is not None else {}
    require_binary(defective, "the defective skull")
    skull = defective.mask()
    implant = np.zeros_like(skull)
    for search in range(settings.search_rounds):
        searched = defective if search == 0 else defective.with_array((skull | implant).view(np.uint8))
        later = search > 0
        cloud = implant_cloud(searched, model, settings=settings, timings=timings,
                              surface_step=settings.later_rounds_surface_step if later else settings.first_round_surface_step,
                              other_guesses=not later,
                              intact_bone_mm=settings.later_rounds_intact_bone_mm if later else settings.intact_bone_mm)
        start = time.perf_counter()
        found = implant_from_points(cloud, searched, settings=settings, cleanup=cleanup, specks=specks) if len(cloud) else None
        timings["voxelize_cleanup"] = timings.get("voxelize_cleanup", 0.0) + time.perf_counter() - start
        if found is None or not found.any():
            break
        implant |= found
    return defective.with_array(implant.view(np.uint8))  # bool → 0/1 without a copy


def implant_cloud(defective: Volume, model: CompletionModel, *, settings: DesignSettings | None = None,
                  timings: dict[str, float] | None = None, surface_step: int = 1,
                  other_guesses: bool = True, intact_bone_mm: float | None = None) -> PointCloud:
    """Predicted implant points (world mm, with normals) of a binary defective skull: its surface
    sample through both networks, intact-bone guesses dropped (design_implant before voxelization).

    timings: seconds of the 'cloud' and 'network' stages are added to it when given;
    settings: see predict_implant_cloud (None: the model's, model.settings); other_guesses,
    intact_bone_mm: see predict_implant_cloud; surface_step: marching-cubes step of the surface sample.
    """
    from pcc.geometry.surface import volume_to_points

    settings = settings if settings is not None else model.settings
    timings = timings if timings is not None else {}
    start = time.perf_counter()
    skull = volume_to_points(defective, SKULL_POINTS, seed=settings.sampling_seed, step=surface_step, smoothing_voxels=NETWORK_SURFACE_SMOOTHING)
    timings["cloud"] = timings.get("cloud", 0.0) + time.perf_counter() - start
    start = time.perf_counter()
    cloud = predict_implant_cloud(model.global_net, model.local_net, skull.points, skull.normals, sizes=model.sizes,
                                  settings=settings, seed=settings.sampling_seed, bone=defective, other_guesses=other_guesses,
                                  intact_bone_mm=intact_bone_mm)
    timings["network"] = timings.get("network", 0.0) + time.perf_counter() - start
    return cloud
