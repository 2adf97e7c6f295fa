"""Repack a wheel smaller: drop folders that a program does not use, strip the symbol tables of its ELF
files, and compress with LZMA; RECORD is rewritten to match (hashes and sizes of what is left).

    python benchmarks/device/slim_wheel.py ray-2.60.0-cp312-cp312-manylinux2014_x86_64.whl .whl \
        --drop ray/jars ray/rllib --strip

The wheel keeps its file name, so `pip install --no-deps --target DIR .whl/*.whl` installs it as usual
(pip unpacks with Python's zipfile, which reads LZMA; `--compression deflate` gives a plain deflate-9
archive instead). Executable bits are kept (Ray's raylet and gcs_server must stay executable).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _is_elf(data: bytes) -> bool:
    return data[:4] == b"\x7fELF"


def _strip(data: bytes, name: str) -> bytes:
    """`strip --strip-unneeded` of one ELF file (its dynamic symbols, which loading needs, stay)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(name).name
        path.write_bytes(data)
        result = subprocess.run(["strip", "--strip-unneeded", str(path)], capture_output=True)
        return path.read_bytes() if result.returncode == 0 else data


def slim(wheel: Path, out_dir: Path, drop: list[str], strip: bool, compression: str) -> Path:
    drop = [d.rstrip("/") + "/" for d in drop]
    if strip and shutil.which("strip") is None:
        raise SystemExit("slim_wheel: `strip` not found (binutils); run without --strip")
    method = {"lzma": zipfile.ZIP_LZMA, "deflate": zipfile.ZIP_DEFLATED}[compression]
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / wheel.name
    with zipfile.ZipFile(wheel) as src:
        infos = [
            i for i in src.infolist() if not i.is_dir() and not any(i.filename.startswith(d) for d in drop)
        ]
        record_name = next(i.filename for i in infos if i.filename.endswith(".dist-info/RECORD"))
        records = []
        with zipfile.ZipFile(
            target, "w", compression=method, compresslevel=9 if method == zipfile.ZIP_DEFLATED else None
        ) as dst:
            for info in infos:
                if info.filename == record_name:
                    continue
                data = src.read(info)
                if strip and _is_elf(data):
                    data = _strip(data, info.filename)
                entry = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                entry.external_attr = info.external_attr
                entry.compress_type = method
                dst.writestr(entry, data)
                records.append(f"{info.filename},{_record_hash(data)},{len(data)}")
            records.append(f"{record_name},,")
            entry = zipfile.ZipInfo(record_name, date_time=(2020, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            entry.compress_type = method
            dst.writestr(entry, "\n".join(records) + "\n")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("wheel", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--drop", nargs="*", default=[], help="folders (paths inside the wheel) to leave out")
    parser.add_argument("--strip", action="store_true", help="strip the symbol tables of ELF files")
    parser.add_argument("--compression", choices=["lzma", "deflate"], default="lzma")
    args = parser.parse_args()
    target = slim(args.wheel, args.out_dir, args.drop, args.strip, args.compression)
    print(f"{target}: {args.wheel.stat().st_size / 1e6:.1f} MB -> {target.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
