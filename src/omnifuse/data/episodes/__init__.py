"""Episodes of environments for Gato-style training: spaces, tokenisation, environments, experts, shards.

- :mod:`.spaces`: what observations and actions look like (:class:`TaskSpace`);
- :mod:`.tokenize`: the Gato tokenizer (mu-law bins, discrete ids, patches, loss mask);
- :mod:`.episode`: one recorded :class:`Episode`;
- :mod:`.envs` and :mod:`.experts`: Gymnasium / minigrid environments and their experts
  (imported on use: they need `omnifuse[envs]`);
- :mod:`.shards`: demonstrations written to and read from shard directories.
"""

from omnifuse.data.episodes.episode import Episode
from omnifuse.data.episodes.spaces import FieldSpec, TaskSpace, UnsupportedSpaceError
from omnifuse.data.episodes.tokenize import GatoTokenizer, TokenSequence, inverse_mu_law, mu_law

__all__ = [
    "Episode",
    "FieldSpec",
    "GatoTokenizer",
    "TaskSpace",
    "TokenSequence",
    "UnsupportedSpaceError",
    "inverse_mu_law",
    "mu_law",
]
