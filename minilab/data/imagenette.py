"""Official Imagenette (fast.ai): download with a progress bar, resume an interrupted download, verify the MD5,
and extract safely (refusing absolute paths, `..`, links or devices that could escape the target folder, and
archives too large to be Imagenette), marking a finished extraction as complete."""
import fcntl
import glob
import hashlib
import http.client
import os
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib

from .folder import DataError

BASE_URL = "https://s3.amazonaws.com/fast-ai-imageclas/"
VARIANTS = {  # variant → (archive, MD5 published with the dataset)
    "imagenette2": ("imagenette2.tgz", "fe2fc210e6bb7c5664d602c3cd71e612"),
    "imagenette2-320": ("imagenette2-320.tgz", "3df6f0d01a2c9592104656642f5e78a3"),
    "imagenette2-160": ("imagenette2-160.tgz", "e793b78cc4c9e9a4ccc0c1155377a412"),
}


def default_cache_dir():
    from ..core import config
    return config.cache_dir


def md5sum(path, chunk=1 << 20):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _content_range_total(header):
    """N from a Content-Range header 'bytes a-b/N' or 'bytes */N'; None when absent or unknown."""
    try:
        return int(header.rsplit("/", 1)[1])
    except (AttributeError, IndexError, ValueError):
        return None


def _open(url, have, timeout):
    """(response, bytes already held that the response continues from); a complete partial file gives
    (None, have).  A 416 reply means the Range starts at or past the end: the partial file is complete if its
    size is the file's size, and is started over otherwise."""
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:
            total = _content_range_total(error.headers.get("Content-Range"))
            if total == have:
                return None, have
            return _open(url, 0, timeout)
        raise DataError(f"could not download {url}: HTTP {error.code} {error.reason}") from None
    except OSError as error:
        raise DataError(f"could not download {url}: {getattr(error, 'reason', None) or error}") from None
    content_range = response.headers.get("Content-Range")
    if have and (response.status != 206 or content_range and not content_range.startswith(f"bytes {have}-")):
        return response, 0   # the server ignored the Range header: start over
    return response, have


def _receive(response, part, have, url, progress):
    """Append the response body to `part`; a body that ends early or breaks off leaves `part` for a resume."""
    from tqdm import tqdm

    length = response.headers.get("Content-Length")
    total = int(length) + have if length else None
    got = have
    with open(part, "ab" if have else "wb") as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                                       desc=os.path.basename(part)[:-5], disable=not progress) as bar:
        try:
            while block := response.read(1 << 16):
                f.write(block)
                got += len(block)
                bar.update(len(block))
        except (http.client.HTTPException, ConnectionError, TimeoutError, socket.timeout) as error:
            reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            raise DataError(f"the download of {url} broke off after {got:,} of "
                            f"{f'{total:,}' if total else 'unknown'} bytes ({reason}); {part} was kept — run "
                            "again to resume it") from None
    if total is not None and got < total:
        raise DataError(f"the server closed the connection after {got:,} of {total:,} bytes of {url}; {part} was "
                        "kept — run again to resume it")


def download(url, path, md5=None, progress=True, timeout=60):
    """Download `url` to `path`, resuming from `path + '.part'` with an HTTP Range request; verify `md5`.

    Whatever happens, bytes already received are kept for the next try: a short body (the connection closed
    before Content-Length bytes), a reset or a timeout leaves the `.part` file and says so.  A `.part` that is
    already complete (its MD5 matches, or the server answers 416 with its size) is taken as it is.  Only a
    complete file with the wrong MD5 is deleted."""
    if os.path.exists(path) and (md5 is None or md5sum(path) == md5):
        return path
    part = path + ".part"
    have = os.path.getsize(part) if os.path.exists(part) else 0
    if not (have and md5 is not None and md5sum(part) == md5):
        response, have = _open(url, have, timeout)
        if response is not None:
            with response:
                _receive(response, part, have, url, progress)
    if md5 is not None:
        got = md5sum(part)
        if got != md5:
            os.unlink(part)
            raise DataError(f"checksum mismatch for {url}: expected MD5 {md5}, got {got}; the downloaded file was "
                            "removed, run again to re-download")
    os.replace(part, path)
    return path


MAX_MEMBERS = 1_000_000          # Imagenette holds about 13,400 files
MAX_EXTRACTED_BYTES = 64 << 30   # and at most 1.6 GB


def _parts(name):
    return [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]


def check_member(member, target, links, archive):
    """Refuse a member that could write outside `target`: absolute names, '..', a path through a link member,
    links that point outside (or anywhere by '..'), devices and FIFOs.  Lexical, so it holds on every Python
    version whether or not tarfile's own 'data' filter exists."""
    name = member.name
    parts = _parts(name)
    dest = os.path.realpath(os.path.join(target, *parts)) if parts else target
    if os.path.isabs(name) or name.startswith("\\") or ".." in parts or \
            os.path.commonpath([target, dest]) != target:
        raise DataError(f"refusing to extract {archive}: member {name!r} points outside the target folder")
    if any("/".join(parts[:i]) in links for i in range(1, len(parts))):
        raise DataError(f"refusing to extract {archive}: member {name!r} goes through a link inside the archive")
    if member.issym() or member.islnk():
        link_parts = _parts(member.linkname)
        base = os.path.dirname(dest) if member.issym() else target
        link = os.path.realpath(os.path.join(base, *link_parts))
        if os.path.isabs(member.linkname) or ".." in link_parts or os.path.commonpath([target, link]) != target:
            raise DataError(f"refusing to extract {archive}: link {name!r} → {member.linkname!r} escapes the "
                            "target folder")
        links.add("/".join(parts))
    if member.isdev() or member.isfifo():
        raise DataError(f"refusing to extract {archive}: {name!r} is a device or FIFO")


def safe_extract(archive, target):
    """Extract a tar archive into `target`, refusing any member that would land outside it and archives whose
    member count or total size is beyond any real dataset's (a tar bomb)."""
    target = os.path.realpath(target)
    try:
        tar = tarfile.open(archive)
    except (tarfile.TarError, OSError) as error:
        raise DataError(f"{archive} is not a readable tar archive: {error}") from None
    with tar:
        links, total, members = set(), 0, []
        try:
            for member in tar:
                members.append(member)
                if len(members) > MAX_MEMBERS:
                    raise DataError(f"refusing to extract {archive}: more than {MAX_MEMBERS:,} members")
                total += max(member.size, 0)
                if total > MAX_EXTRACTED_BYTES:
                    raise DataError(f"refusing to extract {archive}: it would unpack to more than "
                                    f"{MAX_EXTRACTED_BYTES >> 30} GiB")
                check_member(member, target, links, archive)
        except (tarfile.TarError, EOFError, zlib.error) as error:
            raise DataError(f"{archive} is damaged ({error}); delete it and run again to download it anew") \
                from None
        try:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(target, members=members, filter="data")
            else:
                tar.extractall(target, members=members)
        except (tarfile.TarError, EOFError, zlib.error) as error:
            raise DataError(f"{archive} could not be extracted ({error})") from None
    return target


COMPLETE_MARKER = ".minilab-complete"


def fetch_imagenette(variant="imagenette2-160", cache_dir=None, progress=True, base_url=BASE_URL):
    """Download and extract an Imagenette variant into the cache directory; returns the dataset root.

    The archive is extracted into a temporary folder beside the target, moved into place, and only then is the
    completion marker written — an extraction that was interrupted (killed, disk full) has no marker, and is
    redone from the archive on the next call instead of being used with part of the data."""
    if variant not in VARIANTS:
        raise DataError(f"unknown Imagenette variant {variant!r}; choose from {', '.join(VARIANTS)}")
    cache_dir = cache_dir or default_cache_dir()
    root = os.path.join(cache_dir, variant)
    if os.path.isfile(os.path.join(root, COMPLETE_MARKER)):
        return root
    os.makedirs(cache_dir, exist_ok=True)
    with open(os.path.join(cache_dir, f"{variant}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # one download and extraction at a time; the kernel frees it on exit
        if os.path.isfile(os.path.join(root, COMPLETE_MARKER)):   # another process finished it meanwhile
            return root
        for stale in glob.glob(os.path.join(cache_dir, f".extracting-{variant}-*")):   # left by a killed run
            shutil.rmtree(stale, ignore_errors=True)
        if os.path.isdir(root):
            print(f"{root} has no completion marker ({COMPLETE_MARKER}), so it may be incomplete: extracting "
                  f"{variant} again", flush=True)
        return _download_and_extract(variant, root, cache_dir, progress, base_url)


def _download_and_extract(variant, root, cache_dir, progress, base_url):
    archive, md5 = VARIANTS[variant]
    path = download(base_url + archive, os.path.join(cache_dir, archive), md5, progress)
    staging = tempfile.mkdtemp(prefix=f".extracting-{variant}-", dir=cache_dir)
    try:
        safe_extract(path, staging)
        extracted = os.path.join(staging, variant)
        if not (os.path.isdir(os.path.join(extracted, "train")) and os.path.isdir(os.path.join(extracted, "val"))):
            raise DataError(f"{path} does not hold {variant}/train and {variant}/val")
        if os.path.exists(root):   # an earlier, interrupted extraction (it has no marker)
            shutil.rmtree(root)
        os.replace(extracted, root)
        with open(os.path.join(root, COMPLETE_MARKER), "w") as f:
            f.write(f"{archive} {md5}\n")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def find_local_imagenette(cache_dir=None):
    """The first Imagenette variant completely extracted in the cache directory, or None."""
    cache_dir = cache_dir or default_cache_dir()
    for variant in VARIANTS:
        root = os.path.join(cache_dir, variant)
        if os.path.isfile(os.path.join(root, COMPLETE_MARKER)):
            return root
    return None
