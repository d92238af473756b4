"""The one error type that bad user input raises.

Every message names the argument, what was expected and what was given, so the CLI can print it
as one line and exit with status 2 instead of a traceback.
"""


class InputError(ValueError):
    """Bad user input: ``argument``, what was ``expected`` and what was ``got``."""

    def __init__(self, argument, expected, got):
        self.argument = argument
        self.expected = expected
        self.got = got
        super().__init__(f"{argument}: expected {expected}, got {got}")
