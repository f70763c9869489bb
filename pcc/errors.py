"""Errors that the command line reports as one clear line."""


class InputError(Exception):
    """Bad input file or argument: the CLI prints the message and exits with status 2.

    The message must say what is wrong and what to do about it.
    """
