"""The one exception of ``compare``."""


class CompareError(Exception):
    """A bad option or missing data: reported as one line, exit status 2."""
