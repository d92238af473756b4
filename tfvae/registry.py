"""Registries: one per family of things users choose by name (models, data sources, likelihoods,
network bodies, export formats), each with one decorator to add a member.

A registry knows its built-in members by the module that defines them, so listing the names (for
the command line's choices and help) imports no TensorFlow; a member is imported the first time
it is used. A user's member is registered by decorating it:

    @tfvae.layers.likelihoods.LIKELIHOODS.register("laplace")
    class LaplaceLikelihood(...): ...
"""

import importlib

from tfvae.checks import check_choice
from tfvae.errors import InputError


class Registry:
    """Members of one ``family`` by name: ``builtins`` maps a name to ``"module:attribute"``."""

    def __init__(self, family, builtins=None):
        self.family = family
        self._lazy = dict(builtins or {})
        self._members = {}

    def register(self, name):
        """A decorator that adds its object as ``name`` (and returns it unchanged)."""
        if not isinstance(name, str) or not name:
            raise InputError(f"{self.family} name", "a non-empty string", repr(name))

        def decorate(obj):
            self._members[name] = obj
            self._lazy.pop(name, None)
            return obj
        return decorate

    def names(self):
        """Every member's name, built-in ones first, in the order they were declared."""
        return tuple(dict.fromkeys([*self._lazy, *self._members]))

    def __contains__(self, name):
        return isinstance(name, str) and (name in self._members or name in self._lazy)

    # Read as a mapping of name -> member (each loaded when read).
    def __iter__(self):
        return iter(self.names())

    def __getitem__(self, name):
        return self.get(name)

    def items(self):
        return [(name, self.get(name)) for name in self.names()]

    def get(self, name, argument=None):
        """The member ``name``; an unknown name is an ``InputError`` naming ``argument`` (the
        family by default) and the names there are."""
        check_choice(argument or self.family, name, self.names())
        if name not in self._members:
            module, attribute = self._lazy[name].split(":")
            self._members[name] = getattr(importlib.import_module(module), attribute)
        return self._members[name]

    def __repr__(self):
        return f"Registry({self.family!r}, {list(self.names())})"
