"""Official Imagenette (fast.ai): download with a progress bar, resume an interrupted download, verify the MD5,
and extract safely (refusing absolute paths, `..`, and links or devices that could escape the target folder)."""
import hashlib
import os
import tarfile
import urllib.request

from .folder import DataError

BASE_URL = "https://s3.amazonaws.com/fast-ai-imageclas/"
VARIANTS = {  # variant → (archive, MD5 published with the dataset)
    "imagenette2": ("imagenette2.tgz", "fe2fc210e6bb7c5664d602c3cd71e612"),
    "imagenette2-320": ("imagenette2-320.tgz", "3df6f0d01a2c9592104656642f5e78a3"),
    "imagenette2-160": ("imagenette2-160.tgz", "e793b78cc4c9e9a4ccc0c1155377a412"),
}


def default_cache_dir():
    from .. import config
    return config.cache_dir


def md5sum(path, chunk=1 << 20):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def download(url, path, md5=None, progress=True, timeout=60):
    """Download `url` to `path`, resuming from `path + '.part'` with an HTTP Range request; verify `md5`."""
    from tqdm import tqdm

    if os.path.exists(path) and (md5 is None or md5sum(path) == md5):
        return path
    part = path + ".part"
    have = os.path.getsize(part) if os.path.exists(part) else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except OSError as error:
        raise DataError(f"could not download {url}: {error}") from None
    with response:
        if have and response.status != 206:  # the server ignored the Range header: start over
            have = 0
        total = response.headers.get("Content-Length")
        total = int(total) + have if total else None
        with open(part, "ab" if have else "wb") as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                                           desc=os.path.basename(path), disable=not progress) as bar:
            while block := response.read(1 << 16):
                f.write(block)
                bar.update(len(block))
    if md5 is not None:
        got = md5sum(part)
        if got != md5:
            os.unlink(part)
            raise DataError(f"checksum mismatch for {url}: expected MD5 {md5}, got {got}; the partial file was "
                            "removed, run again to re-download")
    os.replace(part, path)
    return path


def safe_extract(archive, target):
    """Extract a tar archive into `target`, refusing any member that would land outside it."""
    target = os.path.realpath(target)
    try:
        tar = tarfile.open(archive)
    except (tarfile.TarError, OSError) as error:
        raise DataError(f"{archive} is not a readable tar archive: {error}") from None
    with tar:
        for member in tar.getmembers():
            name = member.name
            dest = os.path.realpath(os.path.join(target, name))
            if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/") or \
                    os.path.commonpath([target, dest]) != target:
                raise DataError(f"refusing to extract {archive}: member {name!r} points outside the target folder")
            if member.issym() or member.islnk():
                link = os.path.realpath(os.path.join(os.path.dirname(dest), member.linkname)) if member.issym() \
                    else os.path.realpath(os.path.join(target, member.linkname))
                if os.path.isabs(member.linkname) or os.path.commonpath([target, link]) != target:
                    raise DataError(f"refusing to extract {archive}: link {name!r} → {member.linkname!r} escapes "
                                    "the target folder")
            if member.isdev() or member.isfifo():
                raise DataError(f"refusing to extract {archive}: {name!r} is a device or FIFO")
        tar.extractall(target, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(target)
    return target


def fetch_imagenette(variant="imagenette2-160", cache_dir=None, progress=True, base_url=BASE_URL):
    """Download and extract an Imagenette variant into the cache directory; returns the dataset root."""
    if variant not in VARIANTS:
        raise DataError(f"unknown Imagenette variant {variant!r}; choose from {', '.join(VARIANTS)}")
    cache_dir = cache_dir or default_cache_dir()
    root = os.path.join(cache_dir, variant)
    if os.path.isdir(os.path.join(root, "train")) and os.path.isdir(os.path.join(root, "val")):
        return root
    os.makedirs(cache_dir, exist_ok=True)
    archive, md5 = VARIANTS[variant]
    path = download(base_url + archive, os.path.join(cache_dir, archive), md5, progress)
    safe_extract(path, cache_dir)
    return root


def find_local_imagenette(cache_dir=None):
    """The first Imagenette variant already extracted in the cache directory, or None."""
    cache_dir = cache_dir or default_cache_dir()
    for variant in VARIANTS:
        root = os.path.join(cache_dir, variant)
        if os.path.isdir(os.path.join(root, "train")):
            return root
    return None
