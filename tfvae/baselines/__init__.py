"""The paper's baselines, trained with ``fit`` on the same networks as the VAE.

- :class:`WakeSleep`: the wake-sleep algorithm (Hinton et al., 1995) with the VAE's encoder as its
  recognition model.
- :class:`MCEM`: Monte Carlo EM with Hamiltonian Monte Carlo (the paper's appendix E): a decoder
  and one Markov chain per training example, no encoder.
"""

from tfvae.baselines.mcem import MCEM, indexed_pipeline
from tfvae.baselines.wake_sleep import WakeSleep

__all__ = ["MCEM", "WakeSleep", "indexed_pipeline"]
