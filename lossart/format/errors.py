"""The add-on's one-line error for broken, foreign or too-new bundles (shared by its readers)."""


class BundleError(Exception):
    """A broken, foreign or too-new bundle, described in one line."""
