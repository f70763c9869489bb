"""The implant pipeline: defective skull volume → surface cloud → network → points → implant volume.

    from pcc.design import load_model, design_implant
    model = load_model()                       # shipped weights, or load_model("run.ckpt")
    implant = design_implant(defective, model) # a Volume on the input's own grid

Stages: the skull's surface is sampled (world mm); the global network places a frame on each defect
(run on settings.global_passes resamplings of the skull, the most central prediction kept, or the next
distinct one when it lies on intact bone);
the local network predicts the implant's surface points with normals in that frame (several
resamplings of the input, every other one mirrored, merged, the frame re-fitted to the prediction; a
local network built with prior=True also gets the skull's mirror image aligned around the frame,
pcc.geometry.symmetry);
the points are voxelized on the input's grid (pcc.geometry.voxelize); clean-up smooths that solid (Gaussian,
surface_smoothing_mm) after dropping what lies beyond implant_reach_mm of the points, joins it to the
bone rim (closing of implant ∪ skull), subtracts the skull and drops thin slivers away from the
implant's body (sliver_mm) and small fragments. A second search runs the same stages on the skull
completed with that implant (search_rounds), for a defect the first passed over. Every setting lives in
pcc.design.settings.DesignSettings, which the weights file carries.
"""

from pcc.design.implant import design_implant, implant_cloud
from pcc.design.loading import SHIPPED_WEIGHTS, CompletionModel, load_model, resolve_device
from pcc.design.reconstruction import no_defect_warning
from pcc.design.settings import DesignSettings

__all__ = ["SHIPPED_WEIGHTS", "CompletionModel", "DesignSettings", "design_implant", "implant_cloud", "load_model",
           "no_defect_warning", "resolve_device"]
