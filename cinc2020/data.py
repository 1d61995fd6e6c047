"""From folders of records to model inputs: preprocessing, labelled training sets,
multi-label stratified splits and duration-grouped batches."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import joblib
from joblib.externals.loky import get_reusable_executor
import numpy as np
import torch
from tqdm import tqdm

from .config import Config
from .cpus import available_cpus
from .labels import (CPSC_CLASSES, SNOMED_TO_CPSC, known_labels, label_matrix, representative, source_of,
                     to_scheme, undetermined_classes)
from .models import N_DEMOGRAPHICS, N_LEADS
from .records import RecordError, parse_header, read_record, resample, standard_leads
from .scoring import load_weights


def clean(data: np.ndarray, header_lines: list[str] | str, config: Config) -> np.ndarray:
    """One record in millivolts on the 12 leads at ``config.fs``, centred and band-passed (float32).

    Limb leads the record lacks are derived from any two it has (``records.derive_limb_leads``).
    Every step is linear, so limb leads derived here or after augmentation agree. This is what
    the cache keeps; ``normalise`` turns it into the model's input.
    """
    header = parse_header(header_lines)
    signal = standard_leads(data, header)  # a new array, centred in place below
    # Centre before resampling: the filter would otherwise ring at the edges against a DC offset.
    signal -= signal.mean(axis=1, keepdims=True)
    signal = resample(signal, header.fs, config.fs)
    if config.bandpass_hz is not None:
        signal = bandpass(signal, config.fs, *config.bandpass_hz)
    signal = signal - signal.mean(axis=1, keepdims=True)
    return np.ascontiguousarray(signal, dtype=np.float32)


def bandpass(signal: np.ndarray, fs: float, low_hz: float, high_hz: float) -> np.ndarray:
    """Zero-phase 2nd-order Butterworth band-pass; the upper edge is kept below 0.9 fs/2 (none above it)."""
    from scipy.signal import butter, sosfiltfilt

    if not 0 < low_hz < high_hz:
        raise ValueError(f"band-pass edges must satisfy 0 < low < high, not {low_hz}, {high_hz}")
    high_hz = min(high_hz, 0.45 * fs)
    if signal.shape[1] <= 15:  # too short for the filter's edge padding: unfiltered
        return signal
    sos = butter(2, [low_hz, high_hz], btype="bandpass", fs=fs, output="sos")
    return sosfiltfilt(sos, signal, axis=1, padlen=min(signal.shape[1] - 1, 3 * int(fs / low_hz)))


def normalise(signal: np.ndarray, how: str) -> np.ndarray:
    """The model's input from a clean signal: per lead, the mean removed and (``how = "std"``)
    divided by the SD (a flat or missing lead stays zero)."""
    signal = signal - signal.mean(axis=1, keepdims=True)
    if how == "std":
        spread = signal.std(axis=1, keepdims=True)
        signal = signal / np.where(spread > 1e-6, spread, 1.0)
    return np.ascontiguousarray(signal, dtype=np.float32)


def prepare(data: np.ndarray, header_lines: list[str] | str, config: Config) -> np.ndarray:
    """The model's input for one record: 12 leads, normalised, at ``config.fs`` (float32)."""
    return normalise(clean(data, header_lines, config), config.normalisation)


def preprocessing(config: Config) -> tuple:
    """What ``clean`` depends on in a configuration: configurations alike here share a cache and,
    in an ensemble, one cleaning of each record."""
    return config.fs, config.bandpass_hz


def demographic_inputs(age: float, sex: str) -> np.ndarray:
    """Age and sex as the networks read them (``models.N_DEMOGRAPHICS``): age / 100 and whether it
    is known (PTB-XL writes 300 for the over-89s: taken as 90), male, female (neither: unknown)."""
    known = math.isfinite(age) and age >= 0
    sex = sex.strip().lower()
    return np.array([min(age, 90.0) / 100 if known else 0.0, float(known),
                     float(sex in ("male", "m")), float(sex in ("female", "f"))], dtype=np.float32)


def as_folders(folders) -> list[Path]:
    """One folder (a path) or several (a list) as a list of paths."""
    return [Path(f) for f in folders] if isinstance(folders, (list, tuple)) else [Path(folders)]


def find_records(folders) -> list[Path]:
    """Header files in ``folders`` (one folder or several) and every folder below them, hidden ones aside,
    sorted by record name, whether or not their signal file is readable.

    The challenge's data comes as one archive a source, extracted side by side, or as a tree
    (``training/<source>/g1/...``). A record name found twice is read once when both copies (header and
    signal file) are byte-equal, and is an error naming both paths when they are not.
    """
    found: dict[str, Path] = {}
    for folder in as_folders(folders):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder")
        for path in folder.rglob("*"):
            relative = path.relative_to(folder).parts
            if path.suffix.lower() != ".hea" or any(part.startswith(".") for part in relative) or not path.is_file():
                continue
            earlier = found.setdefault(path.stem, path)
            if earlier != path and earlier.resolve() != path.resolve() and not same_record(earlier, path):
                raise ValueError(f"record {path.stem} is found twice with different contents: {earlier} and {path} "
                                 "(train on folders that hold each record once)")
    return [found[name] for name in sorted(found)]


def same_record(first: Path, second: Path) -> bool:
    """Whether two copies of a record have byte-equal header and signal files (absent alike counts as equal)."""
    import filecmp

    for a, b in ((first, second), (first.with_suffix(".mat"), second.with_suffix(".mat"))):
        if a.exists() != b.exists() or (a.exists() and not filecmp.cmp(a, b, shallow=False)):
            return False
    return True


def model_classes(dx_lists: list[list[str]], config: Config) -> list[str]:
    """The classes a model learns: the scheme's classes with enough labelled records.

    The cpsc scheme always answers all 9 text classes, as the unofficial phase's
    output files must list them.
    """
    if config.labels == "cpsc":
        return list(CPSC_CLASSES)
    scored, _ = load_weights()
    counts = {c: 0 for c in scored}
    for dx in dx_lists:
        for c in to_scheme(dx, "snomed") & counts.keys():
            counts[c] += 1
    return [c for c in scored if counts[c] >= config.min_positives]


def auxiliary_codes(dx_lists: list[list[str]], classes: list[str], config: Config) -> list[str]:
    """The codes a network learns beside its ``classes`` and never answers (``Config.auxiliary_labels``):
    every code the records carry, with ``min_positives`` records or more, that is no class itself (or its
    equivalent) and, in the cpsc scheme, that the translation table maps to none. Sinus rhythm stays one
    there: beside other codes it is no normal ECG."""
    if not config.auxiliary_labels:
        return []
    table = SNOMED_TO_CPSC if config.labels == "cpsc" else {}
    counts = Counter(code for dx in dx_lists for code in {representative(c) for c in dx}
                     if table.get(code, code) not in classes)
    return sorted(code for code, n in counts.items() if n >= config.min_positives)


def preprocessing_code() -> str:
    """A digest of the code that turns a record file into what the cache keeps (header parsing, reading,
    resampling, cleaning, demographic inputs): a fork that edits any of it never reads an older cache."""
    import inspect

    from . import records

    parts = [inspect.getsource(records)] + [inspect.getsource(f) for f in (clean, bandpass, demographic_inputs,
                                                                            _read_and_clean)]
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
    through a file lock: the first builds, the others reuse its cache. Returns the clean signals, names,
    #Dx entries, demographic inputs and the unreadable records' reasons.
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
        if not (folder / "index.json").exists():
            _build_cache(headers, config, root, folder, prefix)
        index = json.loads((folder / "index.json").read_text())
        signals = open(folder / "signals.f32", "rb")  # opened under the lock: no build removes it first
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


def _read_and_clean(path: Path, config: Config) -> tuple[str, list[str], list[float], np.ndarray | None, str]:
    """(name, #Dx entries, demographic inputs, clean signal or None, reason it could not be read) of one record."""
    try:
        data, header_lines = read_record(path)
        header = parse_header(header_lines)
        return (path.stem, header.dx, demographic_inputs(header.age, header.sex).tolist(),
                clean(data, header_lines, config), "")
    except RecordError as error:
        return path.stem, [], [], None, str(error)
    except Exception as error:  # one bad record must never stop a run: it is that record's failure
        return path.stem, [], [], None, f"unexpected {type(error).__name__}: {error}"


def _build_cache(headers: list[Path], config: Config, root: Path, folder: Path, prefix: str) -> None:
    for killed in root.glob(f".building-{glob.escape(prefix)}*"):  # builds of these folders killed hard (this one holds the lock)
        shutil.rmtree(killed, ignore_errors=True)
    building = Path(tempfile.mkdtemp(dir=root, prefix=f".building-{prefix}"))
    names, dx_lists, demographics, offsets, lengths, skipped = [], [], [], [], [], {}
    position = 0
    workers = min(available_cpus(), len(headers))
    try:
        # Processes, each single-threaded (joblib limits its workers' torch and BLAS threads); results come
        # back in order, a few records ahead of the writer, so memory holds a handful of records at a time.
        prepared = joblib.Parallel(n_jobs=workers, return_as="generator", batch_size=8)(
            joblib.delayed(_read_and_clean)(path, config) for path in headers)
        with open(building / "signals.f32", "wb") as out:
            for name, dx, person, signal, reason in tqdm(prepared, total=len(headers), desc=f"preprocessing records "
                                                 f"({workers} processes)", unit="rec", file=sys.stderr, leave=False):
                if signal is None:
                    skipped[name] = reason
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
        for stale in root.glob(glob.escape(prefix) + "*"):
            shutil.rmtree(stale, ignore_errors=True)  # older files or code; a run reading it keeps its open file
        os.replace(building, folder)
    finally:
        shutil.rmtree(building, ignore_errors=True)


@dataclass
class TrainingSet:
    names: list[str]
    signals: SignalStore          # clean signals (``clean``): augment, then ``normalise``
    labels: np.ndarray            # records x classes, float32 0/1
    classes: list[str]
    dx: list[list[str]]           # each record's #Dx entries as written
    mask: np.ndarray              # records x classes, float32: 1 where the label is known, 0 where its loss is left out
    demographics: np.ndarray      # records x N_DEMOGRAPHICS, float32 (``demographic_inputs``)
    auxiliary: list[str]          # codes learned beside the classes, never answered (``auxiliary_codes``)
    auxiliary_labels: np.ndarray  # records x auxiliary, float32 0/1
    auxiliary_mask: np.ndarray    # records x auxiliary, as ``mask``
    skipped: dict[str, str] = field(default_factory=dict)   # record -> reason
    unknown_labels: dict[str, int] = field(default_factory=dict)  # label -> records

    @property
    def lengths(self) -> np.ndarray:
        return self.signals.lengths

    def loss_targets(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What the training loss reads for ``rows``: the classes' labels then the auxiliary codes', and its mask."""
        return (np.concatenate([self.labels[rows], self.auxiliary_labels[rows]], axis=1),
                np.concatenate([self.mask[rows], self.auxiliary_mask[rows]], axis=1))


def load_training_set(directory: str | Path, config: Config, classes: list[str] | None = None) -> TrainingSet:
    """The labelled records of ``directory``, preprocessed (through the cache).

    A record that cannot be read, that has no label, or (``records_without_class =
    "skip"``) none of the scheme's classes, is skipped with one warning; a folder
    with no usable record is an error.
    """
    store, names, dx_lists, demographics, skipped = cached_records(directory, config)
    skipped = dict(skipped)
    # A record without a class adds nothing to the class counts, so the classes come first.
    classes = classes or model_classes([dx for dx in dx_lists if dx], config)
    keep = []
    for i, (name, dx) in enumerate(zip(names, dx_lists)):
        if not dx:
            reason = "no #Dx labels"
        elif config.records_without_class == "skip" and not to_scheme(dx, config.labels) & set(classes):
            reason = f"none of its labels ({', '.join(dx)}) names a class of the model"
        else:
            keep.append(i)
            continue
        skipped[name] = reason
        print(f"warning: skipping {name}: {reason}", file=sys.stderr)
    if not keep:
        raise ValueError(f"no usable labelled record in {directory} ({len(skipped)} skipped)")
    names = [names[i] for i in keep]
    dx_lists = [dx_lists[i] for i in keep]
    labels = label_matrix(dx_lists, classes, config.labels).astype(np.float32)
    auxiliary = auxiliary_codes(dx_lists, classes, config)
    learned = set(classes) | set(auxiliary)
    unknown = dict(Counter(c for dx in dx_lists for c in to_scheme(dx, config.labels) if c not in learned))
    mask = loss_mask(names, dx_lists, labels, classes, config.labels)
    auxiliary_labels = label_matrix(dx_lists, auxiliary, "snomed").astype(np.float32)  # the records' own codes
    return TrainingSet(names, store.subset(np.array(keep)), labels, classes, dx_lists, mask, demographics[keep],
                       auxiliary, auxiliary_labels, loss_mask(names, dx_lists, auxiliary_labels, auxiliary, "snomed"),
                       skipped, unknown)


def loss_mask(names: list[str], dx_lists: list[list[str]], labels: np.ndarray, classes: list[str],
              scheme: str) -> np.ndarray:
    """Which labels are known (1) and which the loss leaves out (0): those a record's source does not
    give (``labels.known_labels``, the sources told by the records' names, each record's codes counted in
    ``scheme``) and those a record's own codes leave undetermined (``labels.undetermined_classes``)."""
    carried = [len(to_scheme(dx, scheme)) for dx in dx_lists]
    mask = known_labels([source_of(name) for name in names], labels, carried).astype(np.float32)
    column = {c: j for j, c in enumerate(classes)}
    for i, dx in enumerate(dx_lists):
        for c in undetermined_classes(dx, scheme) & column.keys():
            mask[i, column[c]] = 0
    return mask


def stratified_folds(labels: np.ndarray, proportions: list[float], seed: int) -> np.ndarray:
    """Fold index per record, keeping every class's share in each fold (iterative stratification).

    Sechidis et al. (2011): the rarest class is placed first, each of its records
    going to the fold that still wants most of that class.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels) > 0
    n = len(labels)
    proportions = np.asarray(proportions, dtype=np.float64) / np.sum(proportions)
    wanted_records = proportions * n
    wanted_labels = proportions[:, None] * labels.sum(axis=0)[None, :]
    fold = np.full(n, -1)
    remaining = np.ones(n, dtype=bool)

    def place(i: int, label: int | None) -> None:
        open_folds = np.flatnonzero(wanted_records > 0)  # a fold with its share of records takes no more
        if len(open_folds) == 0:
            open_folds = np.arange(len(proportions))
        scores = np.full(len(proportions), -np.inf)
        scores[open_folds] = (wanted_labels[:, label] if label is not None else wanted_records)[open_folds]
        best = np.flatnonzero(scores == scores.max())
        if len(best) > 1:
            best = best[wanted_records[best] == wanted_records[best].max()]
        f = rng.choice(best)
        fold[i] = f
        remaining[i] = False
        wanted_labels[f] -= labels[i]
        wanted_records[f] -= 1

    while remaining.any():
        counts = labels[remaining].sum(axis=0)
        if not counts.any():
            for i in rng.permutation(np.flatnonzero(remaining)):
                place(i, None)
            break
        rarest = np.flatnonzero(counts == counts[counts > 0].min())
        label = int(rng.choice(rarest))
        for i in rng.permutation(np.flatnonzero(remaining & labels[:, label])):
            place(i, label)
    return fold


def development_and_test(names: list[str], dx_lists: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """The project's fixed split of the dev records (their names and codes, in folder order): 80 % to
    develop recipes on, 20 % held out to test them once (experiments/evaluate_recipe.py).

    Each source (``labels.source_of``) is split on its own, so that adding a source moves no record of
    another: PTB-XL's test records are those they were before Chapman-Shaoxing joined. It stratifies on
    the SNOMED classes with at least 5 records, whatever a run's own configuration keeps, so that no
    setting moves a record between the two.
    """
    sources = np.array([source_of(name) for name in names])
    development, test = [], []
    for source in sorted(set(sources)):
        rows = np.flatnonzero(sources == source)
        dx = [dx_lists[i] for i in rows]
        classes = model_classes([d for d in dx if d], Config(labels="snomed", min_positives=5))
        fold = stratified_folds(label_matrix(dx, classes, "snomed"), [0.8, 0.2], seed=0)
        development.append(rows[fold == 0])
        test.append(rows[fold == 1])
    return np.sort(np.concatenate(development)), np.sort(np.concatenate(test))


def duration_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                     spread: float = 0.1) -> list[np.ndarray]:
    """Batches of records of similar length (little padding), in random order.

    Records are ordered by their length times a random factor within ``spread`` (10 %) either
    side, drawn afresh each call, so that records of distinct lengths meet other neighbours every
    epoch; a lone last record joins the previous batch (batch normalisation needs two).
    """
    shuffled = rng.permutation(len(lengths))
    jittered = lengths[shuffled] * np.exp(rng.uniform(-spread, spread, len(lengths)))
    order = shuffled[np.argsort(jittered, kind="stable")]
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2] = np.concatenate([batches[-2], batches.pop()])
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(signals: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad a list of (12 x n) signals to one tensor; returns it and the lengths."""
    lengths = torch.tensor([s.shape[1] for s in signals])
    batch = torch.zeros(len(signals), signals[0].shape[0], int(lengths.max()))
    for i, s in enumerate(signals):
        batch[i, :, :s.shape[1]] = torch.from_numpy(s)
    return batch, lengths
