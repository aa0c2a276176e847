"""Permutation alignment (Git Re-Basin): B's hidden units renamed to match A's.

`derive_spec(model, input_shape)` reads the permutation groups from the network (torch.fx);
`weight_matching` / `activation_matching` find the permutation; `permute_state_dict` applies it;
`align_checkpoints(AlignConfig)` does all of it for checkpoint files (`lossart align`).
"""

from lossart.lazy import lazy_names

_WHERE = {
    "AlignConfig": "config",
    "Aligned": "checkpoints",
    "AlignResult": "checkpoints",
    "align_checkpoints": "checkpoints",
    "Group": "groups",
    "PermutationSpec": "groups",
    "UnsupportedOp": "groups",
    "derive_spec": "groups",
    "identity_perms": "groups",
    "inverse": "groups",
    "permute_state_dict": "groups",
    "random_perms": "groups",
    "MatchConfig": "matching",
    "MatchResult": "matching",
    "activation_matching": "matching",
    "weight_matching": "matching",
}
__all__ = sorted(_WHERE)

__getattr__ = lazy_names(__name__, _WHERE)  # each name loads its module on first use
