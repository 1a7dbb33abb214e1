"""Bytes across the component boundary at memory speed.

wasmtime-py (50 and 51) converts a WIT `list<u8>` to and from its C API
one element at a time in Python: each byte becomes a 32-byte
`wasmtime_component_val_t` set field by field, which moves content at
about 1 MiB/s. The C array it fills has a fixed layout (a kind byte, then
the value in a union), so a byte string can be spread into it, and
gathered out of it, with two strided slice copies, which run in C.

`install()` gives `ListType` that path for lists of `u8` only, and only
once a round trip through both paths agrees; every other list, and any
layout it does not recognize, keeps wasmtime's own conversion. Nothing
else changes: the values the component receives and returns are the
same, sooner.
"""

from __future__ import annotations

import ctypes
from typing import Any, Callable

from wasmtime import _ffi as ffi
from wasmtime.component import _types

_VAL = ffi.wasmtime_component_val_t
_STRIDE = ctypes.sizeof(_VAL)
_KIND_AT = _VAL.kind.offset
# A u8 sits at the start of the value union.
_VALUE_AT = _VAL.of.offset + ffi.wasmtime_component_valunion_t.u8.offset
_U8 = ffi.WASMTIME_COMPONENT_U8.value
_LIST = ffi.WASMTIME_COMPONENT_LIST

_installed = False

# The cells of the last list spread, kept: a fresh buffer costs more in page
# faults than the copies into it. Its kinds are already u8 up to `_kinds`.
_cells = bytearray()
_kinds = 0


def _spread(data: bytes, ptr: Any) -> None:
    """`data` as a C list of u8 values at `ptr` (a `wasmtime_component_val_t *`)."""
    global _cells, _kinds
    n = len(data)
    raw = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(raw, n)
    if n:
        size = n * _STRIDE
        if len(_cells) < size:
            _cells = bytearray(size)
            _kinds = 0
        if _kinds < n:
            _cells[_KIND_AT:size:_STRIDE] = bytes([_U8]) * n
            _kinds = n
        _cells[_VALUE_AT:size:_STRIDE] = data
        ctypes.memmove(raw.data, (ctypes.c_char * size).from_buffer(_cells), size)
    ptr.contents.kind = _LIST
    ptr.contents.of.list = raw


def _gather(c: Any) -> bytes:
    """The bytes of C list `c` (a `wasmtime_component_val_t` of u8 values),
    which is freed as wasmtime's own conversion frees it."""
    try:
        n = c.of.list.size
        if n == 0:
            return b""
        cells = ctypes.string_at(ctypes.cast(c.of.list.data, ctypes.c_void_p), n * _STRIDE)
        if cells[_KIND_AT::_STRIDE] != bytes([_U8]) * n:
            raise TypeError("a list<u8> whose elements are not u8 values")
        return cells[_VALUE_AT::_STRIDE]
    finally:
        ffi.wasmtime_component_valtuple_delete(ctypes.byref(c.of.tuple))


def install() -> bool:
    """Gives wasmtime's `ListType` the fast path for `list<u8>`, once a
    round trip agrees with wasmtime's own; whether it did."""
    global _installed
    if _installed:
        return True
    list_type = _types.ListType
    to_c: Callable[..., None] = list_type.convert_to_c
    from_c: Callable[..., Any] = list_type.convert_from_c
    if not _agrees(to_c, from_c):
        return False

    def convert_to_c(self: Any, store: Any, val: Any, ptr: Any) -> None:
        if self._is_bytes() and isinstance(val, bytes):
            return _spread(val, ptr)
        return to_c(self, store, val, ptr)

    def convert_from_c(self: Any, c: Any) -> Any:
        if self._is_bytes():
            return _gather(c)
        return from_c(self, c)

    list_type.convert_to_c = convert_to_c
    list_type.convert_from_c = convert_from_c
    _installed = True
    return True


def _agrees(to_c: Callable[..., None], from_c: Callable[..., Any]) -> bool:
    """Whether the fast path and wasmtime's own read each other's lists."""

    class _Bytes:
        """A stand-in `ListType` of u8 (what the converters ask of it)."""

        element = _types.U8()

        def _is_bytes(self) -> bool:
            return True

    sample = bytes(range(256)) + b"\x00\xff"
    try:
        for write, read in ((to_c, _gather), (_spread, from_c)):
            val = _VAL()
            if write is to_c:
                to_c(_Bytes(), None, sample, ctypes.pointer(val))
                got = read(val)
            else:
                _spread(sample, ctypes.pointer(val))
                got = from_c(_Bytes(), val)
            if got != sample:
                return False
    except Exception:
        return False
    return True
