"""Resumable, checksum-verified downloads and atomic extraction of scene archives (DTU).

The standard preprocessed DTU release is IDR's archive (Yariv et al. 2020, `data/download_data.sh` of
github.com/lioryariv/idr): one zip, `DTU.zip`, holding `DTU/scan<id>/` for the 15 scans 24 37 40 55 63 65
69 83 97 105 106 110 114 118 122, each with `image/000000.png ...` (1600x1200), `mask/000.png ...`,
`cameras.npz` and `cameras_linear_init.npz`. Nothing is downloaded at import or during training: only
`nsr data download` calls this module.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from nsr.data.errors import DataError

DTU_URL = "https://www.dropbox.com/s/ujmakiaiekdl6sh/DTU.zip?dl=1"
"""IDR's preprocessed DTU archive (the URL of its download_data.sh, with dl=1 for a direct download)."""
DTU_SCANS = (24, 37, 40, 55, 63, 65, 69, 83, 97, 105, 106, 110, 114, 118, 122)
"""The 15 scans of the IDR/NeuS DTU benchmark."""
CHUNK = 1 << 20

Progress = Callable[[int, int], None]


class DownloadError(RuntimeError):
    """A download that could not be completed (network unreachable, HTTP error, bad checksum)."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    progress: Progress | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download `url` to `dest`, resuming a previous partial download (`dest.part`, HTTP Range).

    The bytes go to `dest.part`; when complete (and matching `sha256`, if given), it is renamed to `dest`.
    An existing `dest` is kept when it matches `sha256` (or when no checksum is given).

    Raises:
        DownloadError: network unreachable, HTTP errors, or a checksum mismatch (the bad file is deleted).
    """
    dest = Path(dest)
    if dest.is_file() and (sha256 is None or sha256_file(dest) == sha256.lower()):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "nsr"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # the part is already complete
            response = None
        else:
            raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(
            f"{url}: network unreachable ({reason}); check the connection or download the file yourself "
            f"and pass it with --archive"
        ) from None
    if response is not None:
        with response:
            if offset and response.status != 206:  # server ignored the Range: start over
                offset = 0
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else 0
            with open(part, "ab" if offset else "wb") as file:
                done = offset
                try:
                    while block := response.read(CHUNK):
                        file.write(block)
                        done += len(block)
                        if progress is not None:
                            progress(done, total)
                except (OSError, urllib.error.URLError) as err:
                    raise DownloadError(
                        f"{url}: connection lost after {done} bytes ({err}); run the command again to resume"
                    ) from None
            if total and done < total:
                raise DownloadError(
                    f"{url}: connection closed after {done} of {total} bytes; run again to resume"
                )
    if sha256 is not None:
        actual = sha256_file(part)
        if actual != sha256.lower():
            part.unlink()
            raise DownloadError(
                f"{url}: sha256 mismatch (got {actual}, expected {sha256.lower()}); file deleted"
            )
    os.replace(part, dest)
    return dest


def extract_scans(
    archive: str | Path, dest: str | Path, scans: list[int] | None = None, progress: Progress | None = None
) -> list[Path]:
    """Extract `scan<id>/` folders of a DTU-layout zip into `dest`, each atomically (staging, then rename).

    The archive's scan folders may sit under any prefix (IDR's is `DTU/`). Existing `dest/scan<id>` folders
    are kept (already extracted).

    Raises:
        DataError: for an unreadable zip, or requested scans the archive does not hold.
    """
    archive, dest = Path(archive), Path(dest)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(archive, f"unreadable zip archive ({err})") from None
    with zf:
        members: dict[int, list[tuple[zipfile.ZipInfo, Path]]] = {}
        for info in zf.infolist():
            parts = Path(info.filename).parts
            if ".." in parts or info.filename.startswith("/"):
                raise DataError(archive, f"unsafe path in archive: {info.filename}")
            for depth, part in enumerate(parts[:-1] if not info.is_dir() else parts):
                if part.startswith("scan") and part[4:].isdigit():
                    members.setdefault(int(part[4:]), []).append((info, Path(*parts[depth + 1 :])))
                    break
        wanted = sorted(members) if scans is None else list(scans)
        missing = [s for s in wanted if s not in members]
        if missing:
            raise DataError(archive, f"no scan{missing[0]}/ in the archive (it holds {sorted(members)})")
        todo = [s for s in wanted if not (dest / f"scan{s}").is_dir()]
        total = sum(info.file_size for s in todo for info, _ in members[s])
        done, out = 0, []
        for scan in wanted:
            target = dest / f"scan{scan}"
            out.append(target)
            if scan not in todo:
                continue
            staging = dest / f".scan{scan}.tmp-{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            try:
                for info, relative in members[scan]:
                    path = staging / relative
                    if info.is_dir():
                        path.mkdir(parents=True, exist_ok=True)
                        continue
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(path, "wb") as dst:
                        shutil.copyfileobj(src, dst, CHUNK)
                    done += info.file_size
                    if progress is not None:
                        progress(done, total)
                os.replace(staging, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return out
