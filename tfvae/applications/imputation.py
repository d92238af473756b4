"""Missing values (NaN) filled in by a model trained with them (``allow_missing``), as MIWAE
does (Mattei & Frellsen, 2019).

- **Single imputation** (``draws=None``): each missing entry's conditional mean E[x_j | x_obs],
  by self-normalized importance sampling: z_l ~ q(z | x_obs) for l = 1..K, weights
  w_l proportional to p(x_obs | z_l) p(z_l) / q(z_l | x_obs), and E[x_j | x_obs] estimated by
  sum_l w_l E[x_j | z_l]. A table's categorical column takes the category of highest
  probability sum_l w_l p(x_j = c | z_l), since a mean of codes would mean nothing.
- **Multiple imputation** (``draws`` M): M completed copies of each example, each from a z drawn
  among the z_l by their weights (sampling importance resampling) and x ~ p(x | z).

Observed entries pass through unchanged. Every call is seeded: the same call gives the same
values.
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import estimators, noise
from tfvae.checks import check_int, check_seed
from tfvae.errors import InputError, arg
from tfvae.options import IMPUTE_SAMPLES as DEFAULT_SAMPLES


def impute(model, x, *, num_samples=DEFAULT_SAMPLES, draws=None, seed=0, batch_size=100):
    """``x`` [N, *E] with each NaN filled: float32 [N, *E], or [M, N, *E] for ``draws`` M."""
    from tfvae.evaluation.likelihood import compiled

    if not getattr(model, "allow_missing", False) or not model.has_bound:
        raise InputError("model", f"a VAE trained with {arg('allow_missing', True)}",
                         f"a {type(model).__name__} whose allow_missing is "
                         f"{getattr(model, 'allow_missing', False)}")
    if model.conditional:
        raise InputError("model", "an unconditional model (num_classes=0)",
                         f"a conditional model of {model.num_classes} classes")
    num_samples = check_int("num_samples", num_samples)
    draws = check_int("draws", draws, optional=True)
    seed = check_seed("seed", seed)
    batch_size = check_int("batch_size", batch_size)
    x = model.images(x).numpy()
    batch_imputed = compiled(model, ("impute", num_samples, draws),
                             lambda: _batch_imputation(model, num_samples, draws))
    seeds = tfp.random.split_seed(tf.constant([seed % 2 ** 31, seed // 2 ** 31], tf.int32),
                                  n=max(1, -(-len(x) // batch_size)))
    parts = [batch_imputed(tf.constant(x[start:start + batch_size]), seeds[i]).numpy()
             for i, start in enumerate(range(0, len(x), batch_size))]
    return np.concatenate(parts, axis=0 if draws is None else 1)


def imputed_mean(model, x, seed, num_samples):
    """``x`` [B, *E] with each missing entry replaced by its estimated conditional mean, from
    ``num_samples`` draws of z per row by the stateless ``seed`` (or a
    :class:`tfvae.noise.CounterSeed`, one key per row)."""
    z, p_x, log_w = _weighted_draws(model, x, seed, num_samples)
    weights = tf.nn.softmax(log_w, axis=0)
    if hasattr(p_x, "weighted_mean"):  # a table: categories by their probability
        expected = p_x.weighted_mean(weights)
    else:
        mean = p_x.mean()
        weights = weights[(...,) + (tf.newaxis,) * (mean.shape.rank - 2)]  # [K, B, 1, ...]
        expected = tf.reduce_sum(weights * mean, axis=0)
    return tf.where(tf.math.is_nan(x), expected, x)


def _weighted_draws(model, x, seed, num_samples):
    """z_l ~ q(z|x) [K, B, D], p(x|z_l), and the log importance weights [K, B]."""
    q = model.encode(x)
    z = estimators.sample_posterior(q, num_samples, seed)
    p_x = model.decode(z)
    return z, p_x, p_x.log_prob(x) + model.prior.log_prob(z) - q.log_prob(z)


def _batch_imputation(model, num_samples, draws):
    def batch_imputed(x, seed):
        z_seed, pick_seed, x_seed = tf.unstack(noise.split(seed, 3))
        if draws is None:
            return imputed_mean(model, x, z_seed, num_samples)
        z, _, log_w = _weighted_draws(model, x, z_seed, num_samples)
        # [M, B] indices of the z each draw decodes, by the weights.
        picked = tfp.distributions.Categorical(logits=tf.transpose(log_w)).sample(
            draws, seed=pick_seed)
        z = tf.gather(tf.transpose(z, [1, 0, 2]), tf.transpose(picked), batch_dims=1)  # [B, M, D]
        # Drawn as one batch of B * M rows (a head draws x for a batch [B]), row b's draws
        # together.
        drawn = model.decoder.likelihood.draw(model.decode(tf.reshape(z, [-1, model.latent_dim])),
                                              x_seed)
        drawn = tf.reshape(drawn, tf.concat([[tf.shape(x)[0], draws], tf.shape(x)[1:]], 0))
        perm = [1, 0, *range(2, len(model.image_shape) + 2)]
        return tf.where(tf.math.is_nan(x), tf.transpose(drawn, perm), x)
    return batch_imputed
