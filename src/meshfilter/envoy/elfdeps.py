"""ELF dependencies of a dynamically linked binary, without running it and without external tools.

Reads the program interpreter (``PT_INTERP``), the ``DT_NEEDED`` entries, ``DT_RUNPATH``/``DT_RPATH``
and the GNU build ID, then resolves the needed libraries transitively the way ``ld.so`` searches:
RPATH (when there is no RUNPATH), RUNPATH, the directories of ``/etc/ld.so.conf``, then the default
multiarch and plain library directories. Used to assemble a FROM-scratch Envoy image that carries
exactly the shared libraries the binary links.
"""

from __future__ import annotations

import glob
import mmap
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from meshfilter.errors import ContainerError

PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE = 1, 2, 3, 4
DT_NEEDED, DT_STRTAB, DT_RPATH, DT_RUNPATH = 1, 5, 15, 29
NT_GNU_BUILD_ID = 3


@dataclass(frozen=True)
class ElfInfo:
    """What the dynamic loader needs to know about one ELF file."""

    path: Path
    elf_class: int  # 1 = 32-bit, 2 = 64-bit
    machine: int
    interpreter: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]
    build_id: str | None


@dataclass(frozen=True)
class Library:
    """A resolved dependency: ``soname`` found at ``path`` (host, as searched); ``real`` is the file."""

    soname: str
    path: Path
    real: Path


@dataclass
class Closure:
    """The binary's interpreter and its transitive shared libraries."""

    binary: ElfInfo
    interpreter: Library | None
    libraries: list[Library] = field(default_factory=list)

    def search_dirs(self) -> list[str]:
        """Directories the libraries live in (for ``LD_LIBRARY_PATH`` in the image), in order."""
        seen: list[str] = []
        for lib in self.libraries:
            d = str(lib.path.parent)
            if d not in seen:
                seen.append(d)
        return seen


def read_elf(path: str | os.PathLike[str]) -> ElfInfo:
    """Parse the parts of an ELF file that dynamic linking needs. Raises ContainerError if not ELF."""
    p = Path(path)
    with open(p, "rb") as fh:
        if fh.read(4) != b"\x7fELF":
            raise ContainerError("not an ELF file", where=str(p), hint="pass the Envoy binary itself")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _parse(p, data)


def _parse(p: Path, data: mmap.mmap) -> ElfInfo:
    if len(data) < 52:
        raise ContainerError("truncated ELF file", where=str(p))
    elf_class, endian = data[4], data[5]
    if elf_class not in (1, 2) or endian not in (1, 2):
        raise ContainerError(f"unsupported ELF class/endianness {elf_class}/{endian}", where=str(p))
    e = "<" if endian == 1 else ">"
    if elf_class == 2:
        (machine,) = struct.unpack_from(e + "H", data, 18)
        (phoff,) = struct.unpack_from(e + "Q", data, 32)
        phentsize, phnum = struct.unpack_from(e + "HH", data, 54)
    else:
        (machine,) = struct.unpack_from(e + "H", data, 18)
        (phoff,) = struct.unpack_from(e + "I", data, 28)
        phentsize, phnum = struct.unpack_from(e + "HH", data, 42)

    segments: list[tuple[int, int, int, int]] = []  # (type, offset, vaddr, filesz)
    for i in range(phnum):
        off = phoff + i * phentsize
        if elf_class == 2:
            p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(e + "IIQQQQ", data, off)
        else:
            p_type, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(e + "IIIII", data, off)
        segments.append((p_type, p_offset, p_vaddr, p_filesz))

    def vaddr_to_offset(vaddr: int) -> int:
        for p_type, p_offset, p_vaddr, p_filesz in segments:
            if p_type == PT_LOAD and p_vaddr <= vaddr < p_vaddr + p_filesz:
                return vaddr - p_vaddr + p_offset
        raise ContainerError(f"address {vaddr:#x} is in no loadable segment", where=str(p))

    interpreter = None
    build_id = None
    dyn_entries: list[tuple[int, int]] = []
    for p_type, p_offset, _vaddr, p_filesz in segments:
        if p_type == PT_INTERP:
            interpreter = data[p_offset:p_offset + p_filesz].split(b"\0", 1)[0].decode()
        elif p_type == PT_DYNAMIC:
            size = 16 if elf_class == 2 else 8
            fmt = e + ("qQ" if elf_class == 2 else "iI")
            for off in range(p_offset, p_offset + p_filesz, size):
                tag, val = struct.unpack_from(fmt, data, off)
                if tag == 0:
                    break
                dyn_entries.append((tag, val))
        elif p_type == PT_NOTE and build_id is None:
            build_id = _gnu_build_id(data[p_offset:p_offset + p_filesz], e)

    strtab = next((vaddr_to_offset(v) for t, v in dyn_entries if t == DT_STRTAB), None)

    def string(off: int) -> str:
        assert strtab is not None
        end = data.find(b"\0", strtab + off)
        return data[strtab + off:end].decode()

    needed: list[str] = []
    rpath: list[str] = []
    runpath: list[str] = []
    if strtab is not None:
        for tag, val in dyn_entries:
            if tag == DT_NEEDED:
                needed.append(string(val))
            elif tag == DT_RPATH:
                rpath += [d for d in string(val).split(":") if d]
            elif tag == DT_RUNPATH:
                runpath += [d for d in string(val).split(":") if d]
    return ElfInfo(p, elf_class, machine, interpreter, tuple(needed), tuple(rpath), tuple(runpath), build_id)


def _gnu_build_id(notes: bytes, e: str) -> str | None:
    off = 0
    while off + 12 <= len(notes):
        namesz, descsz, ntype = struct.unpack_from(e + "III", notes, off)
        off += 12
        name = notes[off:off + namesz]
        off += (namesz + 3) & ~3
        desc = notes[off:off + descsz]
        off += (descsz + 3) & ~3
        if ntype == NT_GNU_BUILD_ID and name.rstrip(b"\0") == b"GNU":
            return desc.hex()
    return None


def ld_so_conf_dirs(conf: Path = Path("/etc/ld.so.conf")) -> list[str]:
    """Library directories from ld.so.conf, following ``include`` globs."""
    out: list[str] = []

    def visit(path: Path, depth: int = 0) -> None:
        if depth > 8:
            return
        try:
            lines = path.read_text().splitlines()
        except OSError:
            return
        for raw in lines:
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("include"):
                pattern = line.split(None, 1)[1] if len(line.split(None, 1)) > 1 else ""
                if pattern and not pattern.startswith("/"):
                    pattern = str(path.parent / pattern)
                for inc in sorted(glob.glob(pattern)):
                    visit(Path(inc), depth + 1)
            elif line.startswith("/") and line not in out:
                out.append(line)

    visit(conf)
    return out


def default_dirs(machine: int, elf_class: int) -> list[str]:
    triplet = {62: "x86_64-linux-gnu", 183: "aarch64-linux-gnu", 3: "i386-linux-gnu",
               40: "arm-linux-gnueabihf", 21: "powerpc64le-linux-gnu", 22: "s390x-linux-gnu",
               243: "riscv64-linux-gnu"}.get(machine)
    dirs = [f"/lib/{triplet}", f"/usr/lib/{triplet}"] if triplet else []
    dirs += ["/lib64", "/usr/lib64"] if elf_class == 2 else ["/lib32", "/usr/lib32"]
    return dirs + ["/lib", "/usr/lib"]


def resolve(binary: str | os.PathLike[str], *, extra_dirs: Iterable[str] = ()) -> Closure:
    """The transitive shared-library closure of ``binary``. Raises ContainerError naming a library
    that cannot be found."""
    top = read_elf(binary)
    conf_dirs = ld_so_conf_dirs()
    closure = Closure(binary=top, interpreter=None)
    if top.interpreter:
        ip = Path(top.interpreter)
        if not ip.exists():
            raise ContainerError(f"program interpreter {top.interpreter} not found on this host",
                                 where=str(top.path), hint="install the C library the binary was built for")
        closure.interpreter = Library(ip.name, ip, ip.resolve())

    found: dict[str, Library] = {}
    queue: list[ElfInfo] = [top]
    while queue:
        elf = queue.pop(0)
        origin = str(elf.path.parent)
        expand = [d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for d in
                  ((elf.rpath if not elf.runpath else ()) + elf.runpath)]
        dirs = [*expand, *extra_dirs, *conf_dirs, *default_dirs(top.machine, top.elf_class)]
        for soname in elf.needed:
            if soname in found:
                continue
            lib = _find(soname, dirs, top)
            if lib is None:
                raise ContainerError(f"shared library {soname} (needed by {elf.path.name}) not found",
                                     where=str(top.path), hint=f"searched {', '.join(dirs)}")
            found[soname] = lib
            closure.libraries.append(lib)
            queue.append(read_elf(lib.real))
    return closure


def _find(soname: str, dirs: list[str], top: ElfInfo) -> Library | None:
    if "/" in soname:
        p = Path(soname)
        return Library(p.name, p, p.resolve()) if p.exists() else None
    for d in dirs:
        cand = Path(d) / soname
        if not cand.exists():
            continue
        try:
            info = read_elf(cand)
        except (ContainerError, OSError):
            continue
        if info.machine == top.machine and info.elf_class == top.elf_class:
            return Library(soname, cand, cand.resolve())
    return None
