"""The KP graph and what runs on it: CSR build, value-guided walks, seed bundles, metrics, samples.

Nothing is imported here: the build and walk modules load numba, which the pages that
never walk the graph should not pay for.
"""
