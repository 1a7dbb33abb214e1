"""The component: compiled once per process, and once per machine (the
compiled artifact is cached, as the `ocirelay` CLI caches its own), and
instantiated once per `Client`."""

from __future__ import annotations

import hashlib
import os
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import wasmtime
from wasmtime import component as wc

_INTERFACE = "ocirelay:registry/registry@0.1.0"


def cache_dir() -> Optional[Path]:
    """`$OCIRELAY_CACHE_DIR`, else `$XDG_CACHE_HOME/ocirelay`, else
    `~/.cache/ocirelay` (the CLI's)."""
    if os.environ.get("OCIRELAY_CACHE_DIR"):
        return Path(os.environ["OCIRELAY_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "ocirelay"
    home = os.environ.get("HOME")
    return Path(home) / ".cache" / "ocirelay" if home else None


def _compile(engine: wasmtime.Engine, wasm: bytes) -> wc.Component:
    """The component compiled for `engine`: from the cache when this very
    component was compiled by this version of wasmtime before, else
    compiled and cached (written, then renamed into place)."""
    directory = cache_dir()
    if directory is None:
        return wc.Component(engine, wasm)
    key = hashlib.sha256(wasm).hexdigest()[:24]
    path = directory / f"python-{key}-wasmtime-{metadata.version('wasmtime')}.cwasm"
    if path.exists():
        try:
            # A file only this package writes, of this component, for this
            # wasmtime; wasmtime checks its header and refuses a stale one.
            return wc.Component.deserialize_file(engine, str(path))
        except Exception:
            pass  # recompiled and replaced below
    component = wc.Component(engine, wasm)
    tmp = directory / f".tmp-python-{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(component.serialize())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
    return component


class Component:
    """The component, compiled once per process."""

    engine: Optional[wasmtime.Engine] = None
    component: Optional[wc.Component] = None

    @classmethod
    def instantiate(cls, raise_error: Callable[[wc.Variant], None]) -> "Instance":
        """A new instance; `raise_error` raises a `result`'s error variant."""
        if cls.component is None:
            cls.engine = wasmtime.Engine()
            wasm = resources.files(__package__).joinpath("ocirelay.wasm").read_bytes()
            cls.component = _compile(cls.engine, wasm)
        assert cls.engine is not None
        return Instance(cls.engine, cls.component, raise_error)


class Instance:
    """One instance: its store, and its functions by WIT name."""

    def __init__(self, engine: wasmtime.Engine, component: wc.Component,
                 raise_error: Callable[[wc.Variant], None]):
        linker = wc.Linker(engine)
        # The component imports only the wasi:http/proxy world.
        linker.add_wasip2()
        linker.add_wasi_http()
        self.store = wasmtime.Store(engine)
        self.store.set_wasi(wasmtime.WasiConfig())
        self.store.set_wasi_http()
        self._instance = linker.instantiate(self.store, component)
        self._interface = self._instance.get_export_index(self.store, _INTERFACE)
        self._funcs: Dict[str, wc.Func] = {}
        self._raise_error = raise_error

    def call(self, name: str, *args: Any) -> Any:
        """Calls export `name`; a `result` error is raised as its exception."""
        func = self._funcs.get(name)
        if func is None:
            index = self._instance.get_export_index(self.store, name, self._interface)
            func = self._instance.get_func(self.store, index)
            self._funcs[name] = func
        out = func(self.store, *args)
        func.post_return(self.store)
        # wasmtime returns a `result`'s error as the error variant itself.
        if isinstance(out, wc.Variant):
            self._raise_error(out)
        return out
