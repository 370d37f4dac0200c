"""Atomic file writes: readers see the old file or the complete new one, never a part."""
import contextlib
import os
import uuid


def fsync_directory(directory):
    """Flush a directory entry (the rename) to disk, where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _writer_gone(name, prefix):
    """True when the temporary file ``name`` (``<prefix><pid>.<hex>.tmp``) belongs to a
    process that no longer runs on this machine."""
    try:
        pid = int(name[len(prefix):].split(".", 1)[0])
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False
    return False


def remove_stale_temporaries(path):
    """Delete the temporary files that earlier saves of ``path`` left when they were
    killed (their writer process is gone); those of saves still running are kept."""
    directory, base = os.path.split(os.path.abspath(os.fspath(path)))
    prefix = f".{base}."
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix) and name.endswith(".tmp") and _writer_gone(name, prefix):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


@contextlib.contextmanager
def atomic_write(path):
    """Yield a binary file object whose content replaces ``path`` on success.

    The data goes to a temporary file in the same directory (created with mode 0o666
    less the umask, like ``open(path, "wb")``), which is flushed, fsynced and renamed
    over ``path`` with ``os.replace``; the directory is then fsynced.  If the block
    raises, or the process dies before the rename, ``path`` is untouched and the
    temporary file is removed (or, after a kill, left as ``.<name>.<pid>.<hex>.tmp``
    and removed by the next save of ``path``, once process ``pid`` is gone).
    """
    path = os.fspath(path)
    directory, base = os.path.split(os.path.abspath(path))
    remove_stale_temporaries(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"could not create a temporary file next to {path!r}")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_directory(directory)
