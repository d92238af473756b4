"""The one error type that bad user input raises, and how its messages name arguments.

Every message names the argument, what was expected and what was given, so the CLI can print it
as one line and exit with status 2 instead of a traceback.

The library speaks in Python arguments (``batch_size``); the command line in flags
(``--batch-size``). A message therefore names another argument with :func:`arg` (or a whole call
with :func:`call`), and is rendered for its reader: ``str(error)`` gives the Python names, and
the command line renders the same message with its flags (``tfvae.cli.flags``, the one
mapping) by :func:`speaking_as`.
"""

import contextlib
import contextvars
import re
import shlex

# How the reader names arguments: None for Python arguments, else name -> flag (or None).
_FLAG_OF = contextvars.ContextVar("tfvae_flag_of", default=None)
_MENTION = re.compile("\x02([^\x03]*)\x03")
_SEP = "\x1f"


def arg(name, value=None):
    """A mention of the argument ``name`` (given ``value``) in a message: ``name=value`` for the
    Python API, ``--name value`` on the command line (``--name`` alone when ``value`` is True)."""
    if value is None:
        return f"\x02{name}\x03"
    return f"\x02{name}{_SEP}{value!r}{_SEP}{'' if value is True else value}\x03"


def counted(number, noun):
    """``number`` ``noun``, plural unless one: "1 epoch", "2 epochs"."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def call(command, **arguments):
    """A mention of a whole call, for advice such as how to resume: ``train(run_dir='r',
    resume=True)`` for the Python API, ``tfvae train --out r --resume`` on the command line."""
    body = _SEP.join(f"{name}={value!r}" for name, value in arguments.items())
    return f"\x02{command}(){_SEP}{body}\x03"


@contextlib.contextmanager
def speaking_as(flag):
    """Within, messages name arguments by ``flag(name)``: the command line's flag of the Python
    argument ``name`` (None where it has none)."""
    token = _FLAG_OF.set(flag)
    try:
        yield
    finally:
        _FLAG_OF.reset(token)


def render(message):
    """``message`` with its mentions as Python arguments, or as flags within
    :func:`speaking_as`."""
    flag = _FLAG_OF.get()

    def mention(match):
        name, *rest = match.group(1).split(_SEP)
        if name.endswith("()"):
            arguments = [item.split("=", 1) for item in rest if item]
            if flag is None:
                return f"{name[:-2]}({', '.join(f'{k}={v}' for k, v in arguments)})"
            words = [f"tfvae {name[:-2]}"]
            for key, value in arguments:
                shown = _literal(value)
                words.append(flag(key) or key)
                if shown is not True:
                    words.append(shlex.quote(str(shown)))
            return " ".join(words)
        if flag is None:
            return name if not rest else f"{name}={rest[0]}"
        shown = flag(name) or name
        return shown if not rest or not rest[1] else f"{shown} {rest[1]}"

    return _MENTION.sub(mention, message)


def _literal(text):
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


class InputError(ValueError):
    """Bad user input: ``argument``, what was ``expected`` and what was ``got``.

    ``argument`` is a Python argument's name, or a mention made with :func:`arg`; ``expected``
    and ``got`` may mention other arguments so."""

    def __init__(self, argument, expected, got):
        self.argument = argument
        self.expected = expected
        self.got = got
        super().__init__(str(self))

    def __str__(self):
        argument = self.argument if "\x02" in str(self.argument) else arg(self.argument)
        return render(f"{argument}: expected {self.expected}, got {self.got}")
