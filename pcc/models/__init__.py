"""Networks (plain nn.Modules)."""

from pcc.models.completion import PointCompletionNet, network_state, state_digest

__all__ = ["PointCompletionNet", "network_state", "state_digest"]
