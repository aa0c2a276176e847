"""The one exception type users see: the CLI prints its message on one line, no traceback."""


class LossartError(Exception):
    """A problem with the user's input or environment, stated in one line.

    The message names the file or flag at fault and what was expected.
    """
