#!/usr/bin/env python3
"""graph-refresh entry point: ``python3 app.py [OPTIONS] [import-graph FILE]``."""

from graph_refresh.cli import main

if __name__ == "__main__":
    main()
