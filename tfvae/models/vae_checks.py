"""Which of a VAE's settings combine: the checks :class:`tfvae.VAE` makes of its training
controls and latent structures once each setting is known valid on its own, and the sizes of a
hierarchy's latent groups. Each refusal names the setting to change and what it takes."""

import math

from tfvae import options
from tfvae.checks import check_image_shape
from tfvae.errors import InputError, arg
from tfvae.layers.groups import group_shapes
from tfvae.layers.registries import BODIES


def check_controls(model):
    """The training controls that apply to the model's objective, and only those."""
    if model.gradient == "dreg" and model.objective != "iwae":
        raise InputError("gradient", "'dreg' with objective='iwae' (it is the IWAE bound's "
                         "gradient)", repr(model.gradient))
    if model.gradient == "stl" and (model.objective, model.kl) != ("elbo", "sampled"):
        raise InputError("gradient", "'stl' with objective='elbo' and kl='sampled' (estimator A, "
                         "whose score term it drops)", repr(model.gradient))
    if model.objective == "iwae":
        for name, default in (("beta", 1.0), ("kl_warmup_steps", 0), ("free_bits", 0.0)):
            if getattr(model, name) != default:
                raise InputError(name, f"{default} with objective='iwae' (the IWAE bound has no "
                                 "separate KL term)", repr(getattr(model, name)))


def check_structure(model, num_classes):
    """The latent structures that combine: the estimators that stop q's gradient need a Gaussian
    q whose parameters are the encoder's alone; the VampPrior needs an encoder without labels."""
    if model.stochastic_layers == 2 and (model.prior_name, model.posterior_name) != (
            "normal", "gaussian"):
        raise InputError("stochastic_layers", "1 with prior='{}' and posterior='{}' (two layers "
                         "take the normal prior and the Gaussian posterior)".format(
                             model.prior_name, model.posterior_name), "2")
    if model.gradient in ("dreg", "stl") and (model.posterior_name != "gaussian"
                                              or model.stochastic_layers == 2):
        raise InputError("gradient", "'standard' with posterior='iaf' or stochastic_layers=2 "
                         "(dreg and stl hold a Gaussian q's parameters fixed)",
                         repr(model.gradient))
    if model.gradient in ("dreg", "stl") and model.prior_name == "vamp":
        raise InputError("gradient", "'standard' with prior='vamp' (its prior is made of the "
                         "encoder, which dreg and stl hold fixed)", repr(model.gradient))
    if model.prior_name == "vamp" and model.posterior_name == "iaf":
        raise InputError("prior", "'normal' or 'mog' with posterior='iaf' (a VampPrior of flow "
                         "posteriors needs the flow's inverse, one pass per latent dimension, at "
                         "every draw)", repr(model.prior_name))
    if model.prior_name == "vamp" and num_classes:
        raise InputError("prior", "'normal' or 'mog' for a conditional model (the VampPrior's "
                         "pseudo-inputs have no labels)", repr(model.prior_name))
    if model.free_bits and not (model.gaussian_latents or model.latent_groups > 1):
        raise InputError("free_bits", "0 with a prior or posterior other than a diagonal "
                         "Gaussian (the KL per dimension is taken in closed form)",
                         repr(model.free_bits))
    if model.latent_groups > 1:
        _check_groups(model, num_classes)


def _check_groups(model, num_classes):
    """What a hierarchy of latent groups takes: its own Gaussian prior and posterior, no labels,
    and the gradients and KL of the bound it has."""
    others = {"prior": ("normal", model.prior_name), "posterior": ("gaussian",
                                                                   model.posterior_name),
              "stochastic_layers": (1, model.stochastic_layers),
              "gradient": ("standard", model.gradient)}
    if num_classes:  # --conditional on the command line: named as what it makes
        raise InputError("latent_groups", "1 for a conditional model (a hierarchy of groups "
                         "takes no labels)", repr(model.latent_groups))
    for name, (wanted, value) in others.items():
        if value != wanted:
            raise InputError("latent_groups", f"1 with {arg(name, value)} (a hierarchy of "
                             f"groups is its own prior and posterior and takes "
                             f"{arg(name, wanted)})", repr(model.latent_groups))
    if model.free_bits and (model.objective, model.kl) != ("elbo", "analytic"):
        raise InputError("free_bits", f"0 with {arg('latent_groups')} and {arg('kl', 'sampled')} "
                         "(the KL per group is taken in closed form)", repr(model.free_bits))


def group_sizes(model, args, kwargs):
    """The size of each latent group: maps of ``latent_dim`` channels at the resnet body's
    resolutions (``tfvae.layers.groups``), for the image shape and architecture given."""
    architecture = kwargs.get("architecture", options.NETWORK_DEFAULTS["architecture"])
    if architecture != "resnet":
        raise InputError("latent_groups", f"1 with {arg('architecture', architecture)} (the "
                         f"groups are maps at the resolutions of {arg('architecture', 'resnet')})",
                         repr(model.latent_groups))
    image_shape = check_image_shape("image_shape", args[0] if args else kwargs.get(
        "image_shape", options.DEFAULT_IMAGE_SHAPE))
    BODIES.get("resnet").check_image_shape(image_shape)
    return tuple(math.prod(shape) for shape in group_shapes(image_shape, model.latent_groups,
                                                            model.latent_setting))
