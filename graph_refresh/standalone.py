"""Load one module file of an installed package without running the package's ``__init__.py``.

Two packages graph-refresh uses import far more on ``import`` than the one self-contained file it needs:
``kubernetes`` (its ``__init__`` imports the whole generated client, ~0.3 s) for the quantity parser, and
``thoth.common`` (its ``__init__`` imports openshift, kubernetes and argo, ~0.8 s) for ``init_logging``. A
``--template-dir`` dry run and ``--help`` need neither client. The files loaded this way import only the
standard library or other packages, never their own package.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def load(package: str, relative_path: str, name: str) -> ModuleType:
    """Execute ``<package folder>/<relative_path>`` as the module ``name``; ImportError when it is missing."""
    top, _, rest = package.partition(".")
    spec = importlib.util.find_spec(top)  # a top-level spec is found without executing the package
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location, *rest.split(".") if rest else [], relative_path)
        if path.is_file():
            module_spec = importlib.util.spec_from_file_location(name, path)
            if module_spec is None or module_spec.loader is None:
                break
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            return module
    raise ImportError(f"{package}/{relative_path} is not installed")
