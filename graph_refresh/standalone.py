"""Load installed modules without the parts of them a run does not use.

Two packages graph-refresh uses import far more on ``import`` than what it needs of them:

- ``kubernetes`` (its ``__init__`` imports the whole generated client, ~0.3 s) for the quantity parser, and
  ``thoth.common`` (its ``__init__`` imports openshift, kubernetes and argo, ~0.8 s) for ``init_logging``:
  :func:`load` executes the one self-contained file needed without its package's ``__init__.py``. A
  ``--template-dir`` dry run and ``--help`` need neither client. The files loaded this way import only the
  standard library or other packages, never their own package.
- Modules imported at the top of a module but used in one case only (Sentry with a DSN, JSON logs, a
  Google Cloud or OIDC kubeconfig, the dynamic client): :func:`standing_in` puts a light :class:`StandIn`
  in their place while that module is imported, and the real module is imported if the case comes.
- A set-up step that imports a module only to configure it (thoth-common turning urllib3's warnings off):
  :func:`load` gives that file's own ``import`` a stand-in, and :func:`when_imported` does the step once
  something else imports the module, if anything ever does.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:  # importing importlib.abc costs 20 ms: the loader below only quacks like one
    from importlib.abc import Loader
    from importlib.machinery import ModuleSpec


def load(package: str, relative_path: str, name: str, *, imports: Mapping[str, ModuleType] | None = None) -> ModuleType:
    """Execute ``<package folder>/<relative_path>`` as the module ``name``; ImportError when it is missing.

    ``imports``: modules that this module's own ``import`` statements get instead of the real ones, wherever
    they run in it (in a function too); nothing else is affected, not even what the module calls."""
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
            if imports:
                module.__dict__["__builtins__"] = {**builtins.__dict__, "__import__": _importing(imports)}
            module_spec.loader.exec_module(module)
            return module
    raise ImportError(f"{package}/{relative_path} is not installed")


def _importing(replacements: Mapping[str, ModuleType]) -> Callable[..., ModuleType]:
    """``__import__`` giving ``replacements`` for their names (absolute imports), the real modules otherwise."""
    real = builtins.__import__

    def __import__(name: str, *args: Any, **kwargs: Any) -> ModuleType:
        level = args[3] if len(args) > 3 else kwargs.get("level", 0)
        return replacements[name] if level == 0 and name in replacements else real(name, *args, **kwargs)

    return __import__


class StandIn(ModuleType):
    """Takes the place of a module not imported yet, while another module's imports run (:func:`standing_in`).

    During those imports, a name taken from it (``from sentry_sdk import init``) is a function that imports
    the real module when it is first called and calls the real ``init``: a module whose functions are never
    called is never imported. Afterwards any attribute read from it (``google.auth.default``, an exception
    class in an ``except`` clause) is the real module's, which is imported then.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name, f"stands in for {name} until it is used")
        self.__dict__["_graph_refresh_importing"] = True

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):  # the import system's own questions (__path__, __spec__, ...)
            raise AttributeError(attribute)
        if not self.__dict__["_graph_refresh_importing"]:
            return getattr(importlib.import_module(self.__name__), attribute)
        return _imported_when_called(self.__name__, attribute)


def _imported_when_called(module: str, attribute: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), attribute)(*args, **kwargs)

    call.__name__ = call.__qualname__ = attribute
    call.__doc__ = f"{module}.{attribute}, imported when first called"
    return call


@contextlib.contextmanager
def standing_in(names: Iterable[str], replacements: Mapping[str, ModuleType] | None = None) -> Iterator[None]:
    """While the block runs, each module of ``names`` that is not imported yet is a :class:`StandIn` in
    ``sys.modules``, and each of ``replacements`` (not imported yet either) is the module given: the imports
    of the block bind those and load nothing. Afterwards they leave ``sys.modules``, so a later ``import``
    anywhere loads the real module; what the block bound keeps working (see :class:`StandIn`).

    A module already imported is left as it is: it costs nothing more.
    """
    placed: dict[str, ModuleType] = {}
    for name in names:
        if name not in sys.modules:
            placed[name] = StandIn(name)
    for name, module in (replacements or {}).items():
        if name not in sys.modules:
            placed[name] = module
    for name, module in placed.items():
        parent, _, child = name.rpartition(".")
        if parent in placed:  # ``import a.b`` binds ``a``; ``a.b`` is then read from it
            setattr(placed[parent], child, module)
    sys.modules.update(placed)
    try:
        yield
    finally:
        for name, module in placed.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
            if isinstance(module, StandIn):
                module.__dict__["_graph_refresh_importing"] = False
            parent, _, child = name.rpartition(".")
            real_parent = sys.modules.get(parent) if parent and parent not in placed else None
            if real_parent is not None and child not in real_parent.__dict__:
                # ``import google.auth`` bound the real ``google``: ``google.auth`` is read from it later. The
                # import system replaces this attribute with the real module if that is ever imported.
                setattr(real_parent, child, module)


def when_imported(name: str, then: Callable[[ModuleType], object]) -> None:
    """Call ``then(module)`` once the module ``name`` has been imported, or at once if it already is.

    Until then a finder at the head of ``sys.meta_path`` waits for that import; it finds the module as the
    other finders do, and leaves when it has seen it.
    """
    if name in sys.modules:
        then(sys.modules[name])
    else:
        sys.meta_path.insert(0, _WhenImported(name, then))


class _WhenImported:
    """The finder of :func:`when_imported`: finds nothing itself, and wraps the loader of ``name``."""

    def __init__(self, name: str, then: Callable[[ModuleType], object]) -> None:
        self.name, self.then = name, then

    def find_spec(self, fullname: str, path: object, target: object = None, /) -> ModuleSpec | None:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)  # as the other finders find it
        if spec is not None and spec.loader is not None:
            spec.loader = cast("Loader", _ThenLoader(spec.loader, self.then))
        return spec


class _ThenLoader:
    """A module's own loader, then ``then(module)``; anything else asked of it is the loader's answer."""

    def __init__(self, loader: Loader, then: Callable[[ModuleType], object]) -> None:
        self._loader, self._then = loader, then

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._then(module)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._loader, attribute)
