"""Exceptions for bad user input; the CLI prints them as one sentence and exits non-zero."""


class GenphysError(Exception):
    """Base class of errors caused by user input (bad names, values, paths, files)."""


class UserInputError(GenphysError, ValueError):
    """A bad argument, option or value."""


class DataFormatError(GenphysError, ValueError):
    """A file that is missing, foreign (not a layout genphys reads) or corrupt."""
