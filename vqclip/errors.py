"""The exceptions vqclip raises for bad input; the CLI turns each into one line and exit code 2."""


class VqclipError(Exception):
    """Base of every user-facing error: the message alone must tell the person what to fix."""


class ConfigError(VqclipError, ValueError):
    """A setting has a value that is not allowed (names the key, the value and what is allowed)."""


class ModelError(VqclipError):
    """A model file or config cannot be used (missing, mismatched with its config, unknown name)."""


class UnsafeCheckpointError(ModelError):
    """A checkpoint's pickle asks to run code; it was refused and nothing was executed."""


class DownloadError(ModelError):
    """Every mirror failed or the file did not verify; says where to put the file by hand."""


class PostError(VqclipError):
    """A post-production input or setting cannot be used."""
