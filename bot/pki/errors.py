"""The one error the CA raises for things a person must fix."""


class CAError(Exception):
    """A refusal worth telling a person; ``str(error)`` is a Chinese sentence."""
