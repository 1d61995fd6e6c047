"""Preprocessed records kept on disk: each folder of records cleaned once (``preprocess.clean``) into one
float32 file, read back a record at a time, rebuilt when the records, the preprocessing code or its
settings change."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import joblib
from joblib.externals.loky import get_reusable_executor
import numpy as np
from tqdm import tqdm

from .config import Config
from .cpus import available_cpus
from .preprocess import N_DEMOGRAPHICS, N_LEADS, clean, demographic_inputs, preprocessing
from .records import RecordError, as_folders, find_records, machine_fault, parse_header, read_record


def preprocessing_code() -> str:
    """A digest of the code that turns a record file into what the cache keeps (header parsing, reading,
    resampling, cleaning, demographic inputs): a fork that edits any of it never reads an older cache."""
    import inspect

    from . import preprocess, records

    parts = [inspect.getsource(records)] + [inspect.getsource(f) for f in (
        preprocess.clean, preprocess.bandpass, preprocess.demographic_inputs, _read_and_clean)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


CACHE_VARIABLE = "CINC2020_CACHE"


def cache_root() -> Path:
    """Where preprocessed records are kept: ``$CINC2020_CACHE``; else the user's cache folder
    (``$XDG_CACHE_HOME`` or ``~/.cache``) if it can be written; else a folder of the user's in the
    temporary folder (a container run as another user, a home that does not exist), with a warning."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE])
    try:
        home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cinc2020"
        home.mkdir(parents=True, exist_ok=True)
        if os.access(home, os.W_OK | os.X_OK):
            return home
    except (OSError, RuntimeError):  # RuntimeError: no home folder can be determined
        pass
    fallback = Path(tempfile.gettempdir()) / f"cinc2020-cache-{os.getuid()}"
    try:
        fallback.mkdir(mode=0o700, exist_ok=True)
        mine = fallback.stat().st_uid == os.getuid()
    except OSError:
        mine = False
    if not mine:
        raise ValueError(f"the user's cache folder cannot be written and {fallback} is not the user's own: set "
                         f"{CACHE_VARIABLE} to a folder that can be written")
    print(f"warning: the user's cache folder cannot be written; preprocessed records go to {fallback} "
          f"(set {CACHE_VARIABLE} to choose a folder)", file=sys.stderr)
    return fallback


class SignalStore:
    """Preprocessed records in one float32 file, read back a record at a time.

    Each read is one positioned read of that record's bytes from a file kept open,
    so resident memory holds a batch, never the data set (a memory map would keep
    every page it had touched counted as resident), and a cache that another run
    removes stays readable to this one. ``subset`` gives a view on some of the records.
    """

    def __init__(self, file, offsets: np.ndarray, lengths: np.ndarray):
        self.file, self.offsets, self.lengths = file, offsets, lengths

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        signal = np.empty((N_LEADS, int(self.lengths[i])), dtype=np.float32)
        offset = 4 * N_LEADS * int(self.offsets[i])
        if os.preadv(self.file.fileno(), [signal], offset) != signal.nbytes:  # read straight into the array
            raise OSError(f"{self.file.name}: the cache ends inside record {i}")
        return signal

    def subset(self, rows) -> "SignalStore":
        return SignalStore(self.file, self.offsets[rows], self.lengths[rows])


def cached_records(folders, config: Config) -> tuple[SignalStore, list[str], list[list[str]], np.ndarray,
                                                     dict[str, str]]:
    """Every readable record of ``folders`` (one folder or several, searched as ``find_records`` does)
    preprocessed once into the cache.

    The cache is keyed on the record files (paths, sizes, modification times), on the code that
    preprocesses them (``preprocessing_code``) and on the configuration's preprocessing, and is rebuilt when
    any of them changes; it is built in a temporary folder and renamed, so a killed build leaves none that
    is read (the next build of the same folders removes it). Runs at once on the same folders take turns
    through a file lock: the first builds, the others reuse its cache. A record that could not be read
    because of the machine (``records.machine_fault``: no permission, an I/O error, no memory) is skipped in
    this run, and the cache built beside it serves this run alone: the next run reads every record again.
    Returns the clean signals, names, #Dx entries, demographic inputs and the unreadable records' reasons.
    """
    folders = as_folders(folders)
    headers = find_records(folders)
    if not headers:
        raise ValueError(f"no records (.hea files) in {', '.join(map(str, folders))}")
    fingerprint = [preprocessing_code()]
    for header in headers:
        fingerprint.append([str(header), *_file_stamp(header), *_file_stamp(header.with_suffix(".mat"))])
    key = hashlib.sha256(json.dumps(fingerprint).encode()).hexdigest()[:16]
    root = cache_root()
    # One cache per set of folders and preprocessing setting.
    setting = json.dumps([[str(f.resolve()) for f in folders], *preprocessing(config)])
    prefix = f"{'+'.join(f.resolve().name for f in folders)[:80]}-{hashlib.sha256(setting.encode()).hexdigest()[:8]}-"
    folder = root / (prefix + key)
    if not (folder / "index.json").exists():
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"cannot create the cache folder {root} ({error.strerror}): set {CACHE_VARIABLE} "
                             "to a folder that can be written") from None
    with _locked(root / f".{prefix}lock"):
        built = folder if (folder / "index.json").exists() else _build_cache(headers, config, root, folder, prefix)
        index = json.loads((built / "index.json").read_text())
        signals = open(built / "signals.f32", "rb")  # opened under the lock: no build removes it first
        if built != folder:  # built with the machine's faults: this run reads its open file, no other run
            shutil.rmtree(built, ignore_errors=True)
    for reason_record, reason in index["skipped"].items():
        print(f"warning: skipping {reason_record}: {reason}", file=sys.stderr)
    store = SignalStore(signals, np.array(index["offsets"], dtype=np.int64),
                        np.array(index["lengths"], dtype=np.int64))
    return store, index["names"], index["dx"], np.array(index["demographics"], dtype=np.float32).reshape(-1, N_DEMOGRAPHICS), \
        index["skipped"]


@contextlib.contextmanager
def _locked(path: Path):
    """Hold an exclusive lock on ``path`` (released when the file closes or the process dies). On read-only
    storage, where no run can build, a finished cache is read without one."""
    try:
        lock = open(path, "a")
    except OSError:
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _file_stamp(path: Path) -> list[int]:
    try:
        stat = path.stat()
        return [stat.st_size, stat.st_mtime_ns]
    except OSError:
        return [-1, -1]


def _read_and_clean(path: Path, config: Config) -> tuple[str, list[str], list[float], np.ndarray | None, str, bool]:
    """(name, #Dx entries, demographic inputs, clean signal or None, reason it could not be read, whether that
    was the machine's fault) of one record."""
    try:
        data, header_lines = read_record(path)
        header = parse_header(header_lines)
        return (path.stem, header.dx, demographic_inputs(header.age, header.sex).tolist(),
                clean(data, header_lines, config), "", False)
    except RecordError as error:
        return path.stem, [], [], None, str(error), False
    except Exception as error:  # one bad record must never stop a run: it is that record's failure, or the machine's
        return path.stem, [], [], None, f"unexpected {type(error).__name__}: {error}", machine_fault(error)


def _build_cache(headers: list[Path], config: Config, root: Path, folder: Path, prefix: str) -> Path:
    """Build the cache of ``headers`` into ``folder``, and return it; or, when some records failed because of
    the machine, into a folder that no later run reads (returned: the caller removes it once opened)."""
    for killed in root.glob(f".building-{glob.escape(prefix)}*"):  # builds of these folders killed hard (this one holds the lock)
        shutil.rmtree(killed, ignore_errors=True)
    building = Path(tempfile.mkdtemp(dir=root, prefix=f".building-{prefix}"))
    names, dx_lists, demographics, offsets, lengths, skipped, faults = [], [], [], [], [], {}, []
    position = 0
    workers = min(available_cpus(), len(headers))
    try:
        # Processes, each single-threaded (joblib limits its workers' torch and BLAS threads); results come
        # back in order, a few records ahead of the writer, so memory holds a handful of records at a time.
        prepared = joblib.Parallel(n_jobs=workers, return_as="generator", batch_size=8)(
            joblib.delayed(_read_and_clean)(path, config) for path in headers)
        with open(building / "signals.f32", "wb") as out:
            for name, dx, person, signal, reason, fault in tqdm(
                    prepared, total=len(headers), desc=f"preprocessing records ({workers} processes)", unit="rec",
                    file=sys.stderr, leave=False):
                if signal is None:
                    skipped[name] = reason
                    faults += [name] if fault else []
                    continue
                out.write(signal.tobytes())
                names.append(name)
                dx_lists.append(dx)
                demographics.append(person)
                offsets.append(position)
                lengths.append(signal.shape[1])
                position += signal.shape[1]
        # joblib keeps its worker processes for reuse; a process started by multiprocessing (torch's spawn)
        # waits for its children at exit, so they would hold it up to their 300-s idle timeout.
        get_reusable_executor().shutdown(wait=True)
        index = {"names": names, "dx": dx_lists, "demographics": demographics, "offsets": offsets,
                 "lengths": lengths, "skipped": skipped}
        (building / "index.json").write_text(json.dumps(index))
        if faults:
            print(f"warning: {len(faults)} record(s) could not be read because of the machine ({faults[0]}: "
                  f"{skipped[faults[0]]}); they are skipped in this run and the cache is not kept, so the next run "
                  "reads them again", file=sys.stderr)
            return building
        for stale in root.glob(glob.escape(prefix) + "*"):
            shutil.rmtree(stale, ignore_errors=True)  # older files or code; a run reading it keeps its open file
        os.replace(building, folder)
        return folder
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
