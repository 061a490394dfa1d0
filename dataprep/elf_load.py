"""Map an x86-64 ELF relocatable object (a compiled kernel) into this process, no JIT library.

WHY: mapping the dedup kernel through llvmlite's MCJIT costs each process ~0.02 s of CPU and
~70 MB of resident memory (libllvmlite's relocations and static initialisers), as much as the
rest of a one-worker dedup run's peak over its peers. The kernel's object code needs very
little linking: numba compiles for the large code model, so its only relocations are absolute
64-bit addresses of its own constant sections (R_X86_64_64), and it references no outside
symbol (native.check_ir). This loader accepts exactly such objects: anything else (another
machine, an undefined symbol, another relocation type) is refused with LoadError and the caller
maps the object with llvmlite instead. The code is copied into fresh pages, relocated, then
made read+execute (never writable and executable at once).
"""

from __future__ import annotations

import ctypes
import mmap
import struct
from collections.abc import Sequence

_SECTION = struct.Struct("<IIQQQQIIQQ")
_SYMBOL = struct.Struct("<IBBHQQ")
_RELA = struct.Struct("<QQq")
_SHT_SYMTAB, _SHT_RELA, _SHT_NOBITS = 2, 4, 8
_SHF_WRITE, _SHF_ALLOC, _SHF_EXECINSTR = 1, 2, 4
_SHN_UNDEF, _SHN_ABS, _SHN_COMMON = 0, 0xFFF1, 0xFFF2
_R_64, _R_PC32, _R_PLT32 = 1, 2, 4
_MAPS: list[mmap.mmap] = []  # the mapped code lives as long as the process


class LoadError(RuntimeError):
    """The object is not one this loader handles (the caller falls back to llvmlite)."""


def _sections(obj: bytes) -> list[tuple[int, ...]]:
    if obj[:4] != b"\x7fELF" or obj[4] != 2 or obj[5] != 1:
        raise LoadError("not a little-endian ELF64 object")
    e_type, e_machine = struct.unpack_from("<HH", obj, 16)
    if e_type != 1 or e_machine != 62:
        raise LoadError("not an x86-64 relocatable object")
    shoff = struct.unpack_from("<Q", obj, 0x28)[0]
    entsize, count = struct.unpack_from("<HH", obj, 0x3A)
    if entsize != _SECTION.size or shoff + count * entsize > len(obj):
        raise LoadError("bad section headers")
    return [_SECTION.unpack_from(obj, shoff + i * entsize) for i in range(count)]


def _layout(sections: list[tuple[int, ...]], symbols: list[tuple[int, ...]]) -> tuple:
    """Offsets of the allocated sections and common symbols in a read-only image (code,
    constants) and a writable one (data, bss, commons)."""
    place: dict[tuple[str, int], int] = {}
    size = {"ro": 0, "rw": 0}

    def put(kind: str, key: int, length: int, align: int) -> None:
        align = max(align, 1)
        at = -(-size[kind] // align) * align
        place[(kind, key)] = at
        size[kind] = at + length

    # code first, then its constants from the next page on (no line both fetched and read)
    for code in (True, False):
        if not code:
            size["ro"] = -(-size["ro"] // mmap.PAGESIZE) * mmap.PAGESIZE
        for i, (_, kind, flags, _, _, length, _, _, align, _) in enumerate(sections):
            if flags & _SHF_ALLOC and bool(flags & _SHF_EXECINSTR) == code:
                writable = flags & _SHF_WRITE or kind == _SHT_NOBITS
                put("rw" if writable else "ro", i, length, max(align, 64))
    for j, (_, _, _, shndx, value, length) in enumerate(symbols):
        if shndx == _SHN_COMMON:
            put("rw", -1 - j, length, value)
    return place, size


def _map(length: int) -> tuple[mmap.mmap, int]:
    pages = max(mmap.PAGESIZE, -(-length // mmap.PAGESIZE) * mmap.PAGESIZE)
    area = mmap.mmap(-1, pages, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    return area, ctypes.addressof(ctypes.c_char.from_buffer(area))


def load(objects: Sequence[bytes], names: dict[str, str]) -> dict[str, int]:
    """{name: address} of the functions `names` maps to symbols, from these objects."""
    found: dict[str, int] = {}
    for obj in objects:
        found.update(_load_one(obj))
    missing = [sym for sym in names.values() if sym not in found]
    if missing:
        raise LoadError(f"symbols not in the objects: {missing}")
    return {name: found[sym] for name, sym in names.items()}


def _load_one(obj: bytes) -> dict[str, int]:
    sections = _sections(obj)
    tables = [s for s in sections if s[1] == _SHT_SYMTAB]
    if len(tables) != 1:
        raise LoadError("expected one symbol table")
    _, _, _, _, sym_off, sym_size, strtab, _, _, _ = tables[0]
    symbols = [_SYMBOL.unpack_from(obj, sym_off + k) for k in range(0, sym_size, _SYMBOL.size)]
    place, size = _layout(sections, symbols)
    ro, ro_addr = _map(size["ro"])
    rw, rw_addr = _map(size["rw"])
    base = {"ro": (ro, ro_addr), "rw": (rw, rw_addr)}

    def address(kind_key: tuple[str, int]) -> int:
        return base[kind_key[0]][1] + place[kind_key]

    section_at = {key[1]: address(key) for key in place if key[1] >= 0}
    for (kind, i), at in place.items():
        if i >= 0 and sections[i][1] != _SHT_NOBITS:
            offset, length = sections[i][4], sections[i][5]
            base[kind][0][at : at + length] = obj[offset : offset + length]

    def symbol_address(j: int) -> int:
        _, _, _, shndx, value, _ = symbols[j]
        if shndx == _SHN_UNDEF:
            raise LoadError("the object references an outside symbol")
        if shndx == _SHN_ABS:
            return value
        if shndx == _SHN_COMMON:
            return address(("rw", -1 - j))
        if shndx not in section_at:
            raise LoadError("a symbol in a section that is not loaded")
        return section_at[shndx] + value

    for _, kind, _, _, offset, length, _, target, _, _ in sections:
        if kind != _SHT_RELA or target not in section_at:
            continue
        where = next(key for key in place if key[1] == target)
        image, start = base[where[0]][0], place[where]
        for k in range(0, length, _RELA.size):
            r_offset, info, addend = _RELA.unpack_from(obj, offset + k)
            sym, rtype = info >> 32, info & 0xFFFFFFFF
            if sym >= len(symbols):
                raise LoadError("relocation of an unknown symbol")
            value = symbol_address(sym) + addend
            at = start + r_offset
            if rtype == _R_64 and r_offset + 8 <= sections[target][5]:
                struct.pack_into("<Q", image, at, value & 0xFFFFFFFFFFFFFFFF)
            elif rtype in (_R_PC32, _R_PLT32) and r_offset + 4 <= sections[target][5]:
                relative = value - (section_at[target] + r_offset)
                if not -(1 << 31) <= relative < (1 << 31):
                    raise LoadError("a 32-bit relative relocation does not reach")
                struct.pack_into("<i", image, at, relative)
            else:
                raise LoadError(f"unsupported relocation type {rtype}")
    _protect(ro_addr, len(ro))
    _MAPS.extend((ro, rw))
    out = {}
    for st_name, info, _, shndx, value, _ in symbols:
        if info >> 4 == 1 and (info & 0xF) == 2 and shndx in section_at:  # global function
            end = obj.index(b"\0", sections[strtab][4] + st_name)
            name = obj[sections[strtab][4] + st_name : end].decode()
            out[name] = section_at[shndx] + value
    return out


def _protect(address: int, length: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    if libc.mprotect(address, length, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
        raise LoadError(f"mprotect refused executable pages (errno {ctypes.get_errno()})")
