"""Names that load their module on first use, and the module names of earlier layouts.

A package lists its public names with the module that defines each; ``import tfvae`` and the
command line's ``--help`` then stay fast, since TensorFlow loads only when a name that needs it
is first used (``from tfvae.training import train`` included: ``from ... import`` asks the
package's ``__getattr__``).
"""

import importlib
import importlib.abc
import importlib.util
import sys


def lazy_names(package, names, submodules=()):
    """``(__getattr__, __dir__)`` for ``package`` (its ``__name__``): ``names`` maps each public
    name to the module that defines it; ``submodules`` are reachable as attributes before anyone
    imports them."""
    def __getattr__(name):
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(names) | set(submodules))

    return __getattr__, __dir__


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module name as the module that now holds its code (``import
    tfvae.summaries`` gives ``tfvae.training.summaries`` itself), so code and docs written
    against an earlier layout keep working."""

    def __init__(self, moved):
        self.moved = moved

    def find_spec(self, name, path=None, target=None):
        if name in self.moved:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(self.moved[spec.name])

    def exec_module(self, module):
        pass  # the module ran when it was imported under its own name
