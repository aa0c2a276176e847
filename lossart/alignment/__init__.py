"""Permutation alignment (Git Re-Basin): B's hidden units renamed to match A's.

`derive_spec(model, input_shape)` reads the permutation groups from the network (torch.fx);
`weight_matching` / `activation_matching` find the permutation; `permute_state_dict` applies it;
`align_checkpoints(AlignConfig)` does all of it for checkpoint files (`lossart align`).
"""

from lossart.alignment.checkpoints import AlignConfig, Aligned, AlignResult, align_checkpoints
from lossart.alignment.groups import (
    Group,
    PermutationSpec,
    UnsupportedOp,
    derive_spec,
    identity_perms,
    inverse,
    permute_state_dict,
    random_perms,
)
from lossart.alignment.matching import (
    MatchConfig,
    MatchResult,
    activation_matching,
    weight_matching,
)

__all__ = [
    "AlignConfig",
    "AlignResult",
    "Aligned",
    "Group",
    "MatchConfig",
    "MatchResult",
    "PermutationSpec",
    "UnsupportedOp",
    "activation_matching",
    "align_checkpoints",
    "derive_spec",
    "identity_perms",
    "inverse",
    "permute_state_dict",
    "random_perms",
    "weight_matching",
]
