"""The paper's baselines, trained with ``fit`` on the same networks as the VAE.

- :class:`WakeSleep`: the wake-sleep algorithm (Hinton et al., 1995) with the VAE's encoder as its
  recognition model (``tfvae.models.wake_sleep``).
- :class:`MCEM`: Monte Carlo EM with Hamiltonian Monte Carlo (the paper's appendix E): a decoder
  and one Markov chain per training example, no encoder (``tfvae.models.mcem``).
"""

from tfvae.models import MCEM, WakeSleep

__all__ = ["MCEM", "WakeSleep"]
