"""Version of this package (not of the H2O client it is compatible with)."""

__version__ = "0.1.0"

#: The published H2O client whose public API this package reproduces.
COMPATIBLE_WITH = "h2o-audit-trail 1.5.3"
