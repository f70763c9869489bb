"""Networks (plain nn.Modules)."""

from pcc.models.completion import PointCompletionNet

__all__ = ["PointCompletionNet"]
