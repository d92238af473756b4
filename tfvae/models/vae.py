"""``tfvae.VAE``: Auto-Encoding Variational Bayes (Kingma & Welling, 2013).

Shapes: ``B`` batch, ``S`` samples per datapoint (the paper's L), ``D`` latent dimension, ``E``
image shape [H, W, C].
"""

import math

import tensorflow as tf

from tfvae import estimators, noise, options
from tfvae.checks import (MAX_INT64, check_choice, check_int, check_labels, check_number,
                          check_weights)
from tfvae.errors import InputError
from tfvae.layers import missing
from tfvae.models.base import LatentVariableModel
from tfvae.models.registry import register
from tfvae.models.vae_checks import check_controls, check_structure, group_sizes
from tfvae.layers.coders import Encoder
from tfvae.layers.flows import FlowPosterior
from tfvae.layers.groups import (BottomUp, GroupsDistribution, TopDown, groups_posterior,
                                 groups_prior, standard_normal_log_prob)
from tfvae.layers.hierarchy import HierarchicalPosterior, HierarchicalPrior
from tfvae.layers.priors import prior_layer

_LATENT = options.LATENT_DEFAULTS
_VAE = options.VAE_DEFAULTS


@register("vae")
class VAE(LatentVariableModel):
    """The recognition model q(z|x) and generative model p(x|z)p(z), trained jointly.

    Trained with ``fit`` on batches of images x [B, *E]; each step maximizes the mean per-example
    bound over the batch:

    - ``objective="elbo"``, ``kl="analytic"``: SGVB estimator B (the default),
      E_q[log p(x|z)] - KL(q(z|x) || p(z)) with ``num_samples`` (L) draws of z.
    - ``objective="elbo"``, ``kl="sampled"``: SGVB estimator A, E_q[log p(x, z) - log q(z|x)].
    - ``objective="iwae"``: the importance-weighted bound with ``num_samples`` = k.

    Metrics are per example, in nats: ``elbo``, ``reconstruction`` (E_q log p(x|z)) and ``kl``;
    z is sampled in ``test_step`` too, so the test ``elbo`` is the stochastic bound itself.

    ``dynamic_binarization=True`` trains on grey levels in [0, 1] with a fresh Bernoulli
    sample of every pixel at each step, drawn on the device inside ``train_step`` (``tfvae
    train`` sets it for ``--binarize dynamic``). Each example's noise (binarization and z)
    comes from the step's seed and the example's place in the global batch (``tfvae.noise``),
    so training under ``tf.distribute`` computes what one device computes with the same global
    batch.

    Training controls (the ``elbo`` metric stays the true bound, beta = 1, whatever they are;
    the ``loss`` is what they change):

    - ``beta``: the weight of the KL term in the loss (beta-VAE, Higgins et al., 2017);
    - ``kl_warmup_steps``: the KL weight rises linearly from 0 to ``beta`` over this many
      optimizer steps (Sonderby et al., 2016); a resumed run continues where it stopped, as the
      step count is the optimizer's;
    - ``free_bits``: nats per latent dimension; each dimension's KL, averaged over the batch,
      counts no less than this (Kingma et al., 2016; needs a diagonal Gaussian prior);
    - ``gradient``: the encoder's gradient, ``"standard"``, ``"dreg"`` (the doubly
      reparameterized IWAE gradient, Tucker et al., 2019) or ``"stl"`` (sticking the landing for
      estimator A, Roeder et al., 2017).

    A conditional VAE (``num_classes`` K, Sohn et al., 2015) trains on (x, y) batches of images
    and labels and bounds log p(x|y); ``sample(n, labels=7)`` draws sevens.

    Latent structure:

    - ``prior``: ``"normal"`` N(0, I); ``"mog"``, a learned mixture of ``prior_components``
      Gaussians; ``"vamp"``, the VampPrior (Tomczak & Welling, 2018) on ``prior_components``
      pseudo-inputs (``tfvae.layers.priors``);
    - ``posterior``: ``"gaussian"``, or ``"iaf"``: ``flow_steps`` inverse autoregressive flow
      steps on the Gaussian (Kingma et al., 2016; ``tfvae.layers.flows``);
    - ``stochastic_layers=2``: x -> z1 -> z2 (Burda et al., 2015; ``tfvae.layers.hierarchy``),
      z1 of ``latent_dim`` units and z2 of half as many, the z1-z2 networks of ``hidden // 2``
      units and the same depth; the model's latent z = [z1, z2] (``model.latent_dim`` is their
      sum, ``layer_dims`` each), p(x|z) reads z1. It takes the normal prior and the Gaussian
      posterior.
    - ``latent_groups=L`` (L >= 2, ``architecture="resnet"``): a deep hierarchy of L latent
      groups in the top-down form (``tfvae.layers.groups``), each a map of ``latent_dim``
      channels at one of the body's resolutions, with p(z_i|z_<i) from the top-down state and
      q(z_i|x, z_<i) a shift and scale of it from the bottom-up features (NVAE); z is the
      groups' maps flattened and joined (``layer_dims`` each group's size). Estimator B takes
      each group's KL in closed form along the drawn z, and ``free_bits`` floors each group's
      KL at ``free_bits`` times its size. L = 1 is the model of one latent, z ~ N(0, I).

    The VampPrior takes neither a flow posterior nor labels; ``gradient="dreg"`` and ``"stl"``
    take a Gaussian posterior of one layer and no VampPrior (they hold q's parameters fixed).

    KL(q || p) has a closed form only for a Gaussian posterior and prior: with any other,
    ``kl="analytic"`` becomes estimator A, ``kl="sampled"``, and ``get_config`` says so.

    The network settings are those of :class:`tfvae.models.base.LatentVariableModel`.
    """

    metric_names = ("loss", "elbo", "reconstruction", "kl")
    takes_labels = True

    def __init__(self, *args, kl=_VAE["kl"], objective=_VAE["objective"],
                 num_samples=_VAE["num_samples"], beta=_VAE["beta"], kl_warmup_steps=0,
                 free_bits=_VAE["free_bits"], gradient=_VAE["gradient"], prior=_LATENT["prior"],
                 prior_components=_LATENT["prior_components"],
                 posterior=_LATENT["posterior"], flow_steps=_LATENT["flow_steps"],
                 stochastic_layers=_LATENT["stochastic_layers"],
                 latent_groups=_LATENT["latent_groups"], dynamic_binarization=False, **kwargs):
        self.prior_name = check_choice("prior", prior, options.PRIORS)
        self.prior_components = check_int("prior_components", prior_components)
        self.posterior_name = check_choice("posterior", posterior, options.POSTERIORS)
        self.flow_steps = check_int("flow_steps", flow_steps)
        self.stochastic_layers = check_int("stochastic_layers", stochastic_layers,
                                           maximum=max(options.STOCHASTIC_LAYERS))
        self.latent_groups = check_int("latent_groups", latent_groups,
                                       maximum=options.MAX_LATENT_GROUPS)
        latent_dim = check_int("latent_dim", kwargs.pop("latent_dim",
                                                        options.NETWORK_DEFAULTS["latent_dim"]))
        if self.stochastic_layers == 2 and latent_dim < 2:
            raise InputError("latent_dim", "at least 2 with stochastic_layers=2 (z2 has half as "
                             "many)", repr(latent_dim))
        # The latent_dim given: z1's size, or each latent group's channels.
        self.latent_setting = latent_dim
        self.layer_dims = (latent_dim,) if self.stochastic_layers == 1 else (latent_dim,
                                                                              latent_dim // 2)
        self.kl = check_choice("kl", kl, options.KL_ESTIMATORS)
        self.objective = check_choice("objective", objective, options.OBJECTIVES)
        self.num_samples = check_int("num_samples", num_samples)
        self.beta = check_number("beta", beta, at_least=0)
        self.kl_warmup_steps = check_int("kl_warmup_steps", kl_warmup_steps, minimum=0,
                                         maximum=MAX_INT64)
        self.free_bits = check_number("free_bits", free_bits, at_least=0)
        self.gradient = check_choice("gradient", gradient, options.GRADIENTS)
        self.dynamic_binarization = bool(dynamic_binarization)
        check_controls(self)
        check_structure(self, kwargs.get("num_classes", 0))
        if self.latent_groups > 1:
            self.layer_dims = group_sizes(self, args, kwargs)
        elif not self.gaussian_latents:
            self.kl = "sampled"  # no closed form: estimator A
        super().__init__(*args, latent_dim=sum(self.layer_dims), **kwargs)

    @property
    def gaussian_latents(self):
        """Whether q(z|x) and p(z) are diagonal Gaussians, with a KL in closed form."""
        return (self.prior_name == "normal" and self.posterior_name == "gaussian"
                and self.stochastic_layers == 1 and self.latent_groups == 1)

    @property
    def sized_latent_dim(self):
        # Latent groups enter the networks by convolutions of their channels, not dense maps.
        return self.latent_setting if self.latent_groups > 1 else self.latent_dim

    def _groups_body(self, body):
        """The encoder's (``BottomUp``) or the decoder's (``TopDown``) network of the groups."""
        return body(self.image_shape, self.hidden, self.depth, self.activation,
                    self.kernel_initializer, groups=self.latent_groups,
                    channels=self.latent_setting, name="encoder" if body is BottomUp else "body")

    def network_body(self, part):
        if self.latent_groups > 1 and part == "decoder":
            return self._groups_body(TopDown)
        return super().network_body(part)

    def make_encoder(self):
        if self.latent_groups > 1:
            return self._groups_body(BottomUp)
        if self.stochastic_layers == 2:
            head = HierarchicalPosterior(self.layer_dims, self.hidden // 2, self.depth,
                                         self.activation, name="posterior")
        elif self.posterior_name == "iaf":
            # Each step is an autoregressive network D -> hidden -> 2D: counted before it is made.
            check_weights("flow_steps", self.flow_steps, self.flow_steps * 3 * self.latent_dim
                          * self.hidden, f"latent_dim {self.latent_dim}, hidden {self.hidden}")
            head = FlowPosterior(self.latent_dim, self.flow_steps, self.hidden, name="posterior")
        else:
            return super().make_encoder()
        return Encoder(self.network_body("encoder"), self.latent_dim, self.num_classes,
                       posterior=head, name="encoder")

    def make_decoder(self):
        return super().make_decoder(reads=self.layer_dims[0] if self.stochastic_layers == 2
                                    else None)

    def build(self, input_shape):
        # The prior's variables after the encoder's and decoder's, and before the model locks.
        if self.latent_groups > 1:
            self.prior_layer = None  # the decoder's top-down pass is the prior
        elif self.stochastic_layers == 2:
            self.prior_layer = HierarchicalPrior(self.layer_dims, self.hidden // 2, self.depth,
                                                 self.activation, name="prior")
        else:
            # A VampPrior's pseudo-inputs are images; a mixture's components, means and scales.
            each = math.prod(self.image_shape) if self.prior_name == "vamp" else 2 * self.latent_dim
            check_weights("prior_components", self.prior_components, self.prior_components * each,
                          f"prior {self.prior_name!r}, {each:,} weights each")
            self.prior_layer = prior_layer(self.prior_name, self.latent_dim, self.image_shape,
                                           self.prior_components)
        super().build(input_shape)

    @property
    def prior(self):
        if self.latent_groups > 1:
            return groups_prior(self.decoder.body)
        if getattr(self, "prior_layer", None) is None:
            return super().prior
        return self.prior_layer.distribution(getattr(self, "encoder", None))

    def encode(self, x, labels=None):
        if self.latent_groups == 1:
            return super().encode(x, labels)
        # q(z|x) needs the decoder's top-down pass as well as the encoder's features.
        x = self.images(x)
        self.label_codes(labels, x.shape[0])  # refuses labels: the groups take none
        return groups_posterior(self.decoder.body, self.encoder(self.encoder_input(x)),
                                self.encoder.posteriors)

    def decode_from(self, distribution, z, labels=None):
        if not (isinstance(distribution, GroupsDistribution) and tf.is_tensor(z)):
            return super().decode_from(distribution, z, labels)
        # The pass that made z, kept by the distribution's bijector (or, for another z, the
        # pass given z) ends in the features p(x|z) reads: decode would run it again.
        self.label_codes(labels, None)  # refuses labels: the groups take none
        p_x = self.decoder.likelihood(distribution.bijector.run(z, "z")["h"],
                                      batch_shape=tf.shape(z)[:-1])
        return missing.ObservedPart(p_x) if self.allow_missing else p_x

    # -- objectives --------------------------------------------------------------------------

    def bound_terms(self, x, seed=None, labels=None):
        """Per-example ``bound`` (what training maximizes), ``elbo``, ``reconstruction``, ``kl``
        (given the ``labels`` of a conditional model)."""
        x = self.images(x)
        if self.conditional and labels is not None and not tf.is_tensor(labels):
            labels = tf.constant(check_labels("labels", labels, self.num_classes, x.shape[0]))
        return self._bound_terms(x, self._seed(seed), noise.batch_layout(tf.shape(x)[0]),
                                 labels)

    def _bound_terms(self, x, seed, layout, labels=None):
        if self.latent_groups > 1 and (self.objective, self.kl) == ("elbo", "analytic"):
            return self._group_terms(x, seed, layout)
        if self.latent_groups > 1:  # the IWAE bound or estimator A, from one pass per draw
            terms = estimators.weight_terms(*self.log_weights(x, self.num_samples, seed,
                                                              layout=layout))
            iwae = terms.pop("iwae")
            terms["bound"] = iwae if self.objective == "iwae" else terms["elbo"]
            return terms
        q = self.encode(x, labels)

        def decode(z):
            return self.decode(z, labels)

        if self.objective == "iwae":
            terms = estimators.iwae_terms(q, decode, self.prior, x,
                                          num_samples=self.num_samples, seed=seed, layout=layout,
                                          stop_q=self.gradient == "dreg")
            terms["bound"] = terms.pop("iwae")
        else:
            terms = estimators.elbo_terms(q, decode, self.prior, x, kl=self.kl,
                                          num_samples=self.num_samples, seed=seed, layout=layout,
                                          stop_q=self.gradient == "stl")
            terms["bound"] = terms["elbo"]
            if self.free_bits:
                terms["kl_dims"] = estimators.kl_per_dimension(q, self.prior)
        return terms

    def _group_pass(self, x, num_samples, seed, layout):
        """The hierarchy's top-down pass for S = ``num_samples`` draws of z ~ q(z|x) per image,
        from the noise ``tfvae.estimators.sample_posterior`` would draw: the pass's outputs
        (:meth:`TopDown.run`, rows [S * B]), their noise eps [S, B, D] and log p(x|z) [S, B]."""
        eps = noise.standard_normal(seed, [num_samples], tf.shape(x)[0], [self.latent_dim],
                                    layout)
        out = self.decoder.body.run(eps=tf.reshape(eps, [-1, self.latent_dim]),
                                    features=self.encoder(self.encoder_input(x)),
                                    posteriors=self.encoder.posteriors)
        p_x = self.decoder.likelihood(out["h"], batch_shape=tf.shape(eps)[:-1])
        p_x = missing.ObservedPart(p_x) if self.allow_missing else p_x
        return out, eps, p_x.log_prob(x)

    def log_weights(self, x, num_samples, seed, labels=None, layout=None):
        """The base class's, the same numbers; a hierarchy reads all three densities off the
        one top-down pass that draws z, where q(z|x), p(z) and p(x|z) would each run it."""
        if self.latent_groups == 1:
            return super().log_weights(x, num_samples, seed, labels, layout)
        x = self.images(x)
        self.label_codes(labels, x.shape[0])  # refuses labels: the groups take none
        out, eps, log_px_z = self._group_pass(x, num_samples, seed, layout)
        shape = tf.shape(log_px_z)
        log_q = (tf.reduce_sum(standard_normal_log_prob(eps), axis=-1)
                 - tf.reshape(out["log_scale"], shape))
        return log_px_z, tf.reshape(out["log_prior"], shape) - log_q

    def _group_terms(self, x, seed, layout):
        """Estimator B of the hierarchy: log p(x|z) and each group's KL(q(z_i|x, z_<i) ||
        p(z_i|z_<i)) in closed form, along one top-down pass for each of the S draws of z
        (the KL of the whole z has no closed form; this is its estimate from the same draws)."""
        out, _, log_px_z = self._group_pass(x, self.num_samples, seed, layout)
        reconstruction = tf.reduce_mean(log_px_z, axis=0)
        kl_groups = tf.reduce_mean(tf.reshape(out["kl"], [self.num_samples, -1,
                                                          self.latent_groups]), axis=0)
        kl = tf.reduce_sum(kl_groups, axis=-1)
        terms = {"elbo": reconstruction - kl, "reconstruction": reconstruction, "kl": kl,
                 "bound": reconstruction - kl}
        if self.free_bits:
            terms["kl_dims"] = kl_groups
        return terms

    def training_loss(self, terms):
        """What a training step minimizes, from ``_bound_terms``: minus the bound, with the KL
        weighted (beta, warm-up) and floored (free bits). With beta = 1 and neither, it is minus
        the mean bound."""
        if self.objective == "iwae":
            return -tf.reduce_mean(terms["bound"])
        # Free bits per dimension, or per group of latent_groups: as many nats as its dimensions.
        floor = (self.free_bits if self.latent_groups == 1
                 else tf.constant(self.layer_dims, tf.float32) * self.free_bits)
        kl = (estimators.free_bits_kl(terms["kl_dims"], floor) if self.free_bits
              else tf.reduce_mean(terms["kl"]))
        weight = estimators.kl_weight(self.optimizer.iterations, self.beta, self.kl_warmup_steps)
        return -tf.reduce_mean(terms["reconstruction"]) + weight * kl

    def elbo(self, x, seed=None, labels=None):
        """The per-example ELBO [B] by this model's estimator."""
        return self.bound_terms(x, seed, labels)["elbo"]

    # -- training ----------------------------------------------------------------------------

    def train_step(self, data):
        x, labels = self.batch_inputs(data), self.batch_labels(data)
        layout = noise.batch_layout(tf.shape(x)[0])
        seed = self._seed()
        if self.dynamic_binarization:
            binarize_seed, seed = tf.unstack(noise.split(seed))
            binarize = noise.bernoulli_keeping_missing if self.allow_missing else noise.bernoulli
            x = binarize(x, binarize_seed, layout)
        dreg = self.gradient == "dreg"
        with tf.GradientTape(persistent=dreg) as tape:
            terms = self._bound_terms(x, seed, layout, labels)
            loss = self.training_loss(terms) + self._weight_penalty()
            scaled_loss = self.scaled_loss(loss)
            if dreg:
                encoder_loss = (-tf.reduce_mean(estimators.dreg_surrogate(terms["log_w"]))
                                + self._weight_penalty())
                scaled_encoder_loss = self.scaled_loss(encoder_loss)
        variables = self.trainable_variables
        grads = tape.gradient(scaled_loss, variables)
        if dreg:
            # The encoder follows the doubly reparameterized surrogate, the decoder the bound.
            encoder = {id(v) for v in self.encoder.trainable_variables}
            encoder_grads = tape.gradient(scaled_encoder_loss, variables)
            grads = [e if id(v) in encoder else g
                     for v, g, e in zip(variables, grads, encoder_grads)]
            del tape
        self.apply_update(grads, variables)
        return self.update_metrics({"loss": loss, **terms})

    def test_step(self, data):
        terms = self.bound_terms(self.batch_inputs(data), labels=self.batch_labels(data))
        return self.update_metrics({"loss": -tf.reduce_mean(terms["bound"]), **terms})

    def get_config(self):
        return {**super().get_config(), "kl": self.kl, "objective": self.objective,
                "num_samples": self.num_samples, "beta": self.beta,
                "kl_warmup_steps": self.kl_warmup_steps, "free_bits": self.free_bits,
                "gradient": self.gradient, "prior": self.prior_name,
                "prior_components": self.prior_components, "posterior": self.posterior_name,
                "flow_steps": self.flow_steps, "stochastic_layers": self.stochastic_layers,
                "latent_groups": self.latent_groups,
                "dynamic_binarization": self.dynamic_binarization,
                "latent_dim": self.latent_setting}
