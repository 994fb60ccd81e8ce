"""The package version, in a module of its own so no module has to import the package itself."""

__version__ = "0.1.0"
