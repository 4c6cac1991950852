"""graph-refresh: schedule solver and package-analyzer Jobs for what Thoth's knowledge graph lacks."""

__version__ = "0.1.0"
