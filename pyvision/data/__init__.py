"""Data loaders (real layouts from a local path) and offline generators."""
