"""fs.protected_regular=1 as the kernel applies it, for hosts where the sysctl is 0.

Copied as `sitecustomize.py` onto the PYTHONPATH of the jobs of test_gpuslots' several-user test:
opening an existing regular file with O_CREAT (without O_EXCL; also `open(..., "w"/"a")`) in a
sticky, world-writable folder fails with EACCES unless the opener or the folder's owner owns the
file (Linux `may_create_in_sticky`). Standard library only: the jobs run as other users.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import stat

_os_open, _io_open = os.open, io.open


def _refuse_foreign(path, creating: bool) -> None:
    if not creating or not isinstance(path, (str, bytes, os.PathLike)):
        return
    try:
        found = os.stat(path)
    except OSError:
        return  # not there: O_CREAT makes it
    folder = os.stat(os.path.dirname(os.path.abspath(path)))
    if (stat.S_ISREG(found.st_mode) and folder.st_mode & stat.S_ISVTX and folder.st_mode & 0o002
            and found.st_uid not in (folder.st_uid, os.geteuid())):
        raise PermissionError(errno.EACCES, "Permission denied (fs.protected_regular)", os.fspath(path))


def _open(path, flags, mode=0o777, *, dir_fd=None):
    _refuse_foreign(path, bool(flags & os.O_CREAT) and not flags & os.O_EXCL)
    return _os_open(path, flags, mode, dir_fd=dir_fd)


def _file_open(file, mode="r", *args, **kwargs):
    _refuse_foreign(file, isinstance(mode, str) and ("w" in mode or "a" in mode))
    return _io_open(file, mode, *args, **kwargs)


os.open = _open
io.open = builtins.open = _file_open
