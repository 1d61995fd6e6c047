"""One dataclass holds every choice of a model; it is saved as JSON next to the weights."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields


PRECISIONS = ("float32", "bfloat16", "float16")
ENVIRONMENT_VARIABLE = "CINC2020_CONFIG"
# The values each choice may take, checked when a configuration is made (before any record is read). The
# one list of architectures and label schemes: models.ARCHITECTURES, labels and the command lines follow it.
CHOICES = {"model": ("crnn", "cnn_attention", "se_resnet"), "labels": ("snomed", "cpsc"),
           "normalisation": ("std", "mean"), "block": ("plain", "se_residual"), "schedule": ("constant", "cosine"),
           "training_precision": PRECISIONS, "records_without_class": ("negative", "skip"),
           "sources": ("name_prefix", "subfolder", "one"),
           "network_leads": ("12 leads", "6 leads", "4 leads", "3 leads", "2 leads")}  # records.LEAD_SETS_2021's
# Choices that change how a run computes, never what it computes: a run resumed with another value goes on.
# refit: whether another network follows, not this one; threshold_shrink: the decision, tuned after the networks
NO_EFFECT_ON_RESULTS = ("loader_workers", "refit", "threshold_shrink")


@dataclass
class Config:
    # What the model reads and speaks. Config() is the configuration model/ was trained with.
    # "cnn_attention": CNN + BiGRU + attention, what ships (it beat the CRNN in the screening, docs/screening.md);
    # "crnn": the sliding-window CRNN; "se_resnet": a pure SE-ResNet, a reference for comparisons.
    model: str = "cnn_attention"
    labels: str = "snomed"       # "snomed" (official phase) or "cpsc" (unofficial phase's 9 text classes)
    # 100 Hz keeps the diagnostic band of rhythm and morphology (below 40 Hz), is the rate of
    # the PTB-XL development records, and makes a 30-minute record 180,000 samples.
    fs: float = 100.0
    # A 3 s window holds two beats even at 40 bpm, so each window sees one RR interval;
    # windows overlap by half so that no beat is only ever seen cut at an edge.
    window_s: float = 3.0
    hop_s: float = 1.5
    # "std": per lead, remove the mean and divide by the SD (the CRNN design's); "mean": only remove the mean (the
    # attention design's). Judged on a source never trained on, "std" beat "mean" for the attention network under
    # every decision rule (+0.016 to +0.039 Challenge, AUROC +0.018; docs/results.md, issue 39).
    normalisation: str = "std"
    # Architecture. SE-residual stages, wider, won the screening (docs/screening.md); every stage halving
    # time (half the cost of a first stage at full rate) is there for the inference budget (screened:
    # Challenge 0.452 against 0.442, AUROC 0.852 against 0.870). The last two stages, where time is
    # shortest, are wider: 128 channels beat 64 (+0.015, 0.524 against 0.509), 192 beat 128
    # (docs/screening_2.md: +0.014, 0.562 against 0.548), each for about a quarter more time an epoch.
    block: str = "se_residual"   # "plain": three convolutions a stage; "se_residual": residual with squeeze-excitation
    conv_channels: tuple[int, ...] = (32, 32, 64, 192, 192)  # one entry per stage of three convolutions
    stage_strides: tuple[int, ...] = (2, 2, 2, 2, 2)       # each stage's first convolution's stride
    first_kernel_size: int = 7   # the convolution that reads the leads sees a little more context
    kernel_size: int = 5         # every other convolution
    features_per_window: int = 12
    gru_units: int = 128
    dropout: float = 0.2
    demographics: bool = False   # age and sex join what the dense layer reads
    # Training.
    batch_size: int = 20
    # The peak learning rate: 3e-3 beat 1e-3 on the wider stages (Challenge 0.531 against 0.524, AUROC
    # 0.907 against 0.893), a gain within the 0.011 spread of two training seeds on the Challenge metric.
    lr: float = 3e-3
    # "constant", or "cosine": a linear warm-up over the first warmup_epochs, then a cosine decay to
    # zero at the last of ``epochs``: the schedule's length is the number of epochs.
    # A refit network, or one with val_fraction 0, keeps its last epoch: it needs a schedule that ends.
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    weight_decay: float = 0.01   # decoupled (as AdamW), on every parameter
    gradient_clip: float | None = 1.0  # largest gradient norm, or None
    # The arithmetic of training steps on any device: "float32", or autocast to "bfloat16" or "float16" (the
    # latter with loss scaling). Validation and inference always run in float32. bfloat16 cost the screening
    # nothing beyond its spread (docs/screening_2.md) but is fast only where the hardware has it (AVX512-BF16,
    # GPUs from Ampere on): a default that depended on the machine would be no default.
    training_precision: str = "float32"
    # Processes that read, crop, augment and collate training batches ahead of the step; None: 4 beside a
    # GPU, none on a CPU (they would take its cores from training). Batches are the same either way.
    loader_workers: int | None = None
    # On a GPU: deterministic algorithms only (cuDNN's, no TF32), so that a run repeats bit for bit on the same
    # machine, at some cost in speed. A CPU run repeats anyway (README: "Same input, same model").
    deterministic: bool = False
    # The schedule's length, screened (docs/screening.md): 20 epochs beat 12 (Challenge 0.509 against 0.485),
    # neither 16 nor 30 beat 20, and 20 keeps the default command within its CPU budget (README).
    epochs: int = 20
    patience: int = 8            # with a validation share: stop after this many epochs without a lower loss
    # The share of a network's training records that chooses its checkpoint (the epoch with the lowest
    # validation loss) and stops it early; 0: no validation, the last epoch is kept, as in a refit.
    # Screened (docs/screening_2.md): fold models without one, 4 of them, beat 3 with a 20 % share
    # (Challenge 0.548 against 0.531 out of fold); they ship (``refit``), and a refit never has one.
    val_fraction: float = 0.0
    min_positives: int = 5       # a class needs this many labelled training records to be learned
    # The network also learns every other code its records carry (each on min_positives records or more) as
    # outputs it never answers: PTB-XL's unscored infarcts, hypertrophies and ST changes describe the same
    # waveforms as the scored Q-wave and T-wave classes, so learning them may sharpen those.
    auxiliary_labels: bool = False
    # A record whose codes name none of the model's classes (sinus rhythm with left axis deviation,
    # for the cpsc scheme): "negative" trains it as a negative for every class, "skip" leaves it out.
    # None: the scheme's own, "skip" for cpsc (it tied with "negative" and won by the rule fixed
    # beforehand, docs/cpsc_scheme.md), "negative" for snomed (as it always was).
    records_without_class: str | None = None
    # Weigh each class's positive records by sqrt(negatives / positives) in the loss. The full
    # ratio (over 300 for the rarest classes here) swamps the gradient with a few records.
    # None: on for the attention network and the SE-ResNet, off for the CRNN, as an earlier cross-validated
    # comparison found for each (experiments/compare_recipes.py, retired).
    class_weights: bool | None = None
    train_crop_s: float = 60.0   # longer training records are cropped at random to this length
    # Augmentation of training records (cinc2020/augment.py); 0 turns a part off.
    augment: bool = True
    scale_sd: float = 0.1        # amplitude: each lead times exp(N(0, scale_sd))
    noise_sd: float = 0.02       # white noise, in units of the lead's SD
    wander_mv: float = 0.1       # baseline wander: amplitude of a slow sinusoid (0.05-0.5 Hz), in mV
    shift_s: float = 0.5         # the record starts up to this much later (its first samples dropped)
    lead_dropout: float = 0.3    # chance that a record keeps only one of the 2021 lead sets or a random subset
    # The leads the network reads: "12 leads" (all; lead_dropout teaches it the 2021 sets), or one 2021 set, which
    # it trains and predicts on alone (the others zero, the limb leads derived, as a record stored with only
    # those leads reads): a network for that set.
    network_leads: str = "12 leads"
    # Mixup: each training record mixed with another of its batch, signal and targets alike, by a weight drawn
    # from Beta(mixup_alpha, mixup_alpha); 0 turns it off. A label either source leaves unknown stays unknown.
    mixup_alpha: float = 0.0
    # Preprocessing: a zero-phase Butterworth band-pass (low, high Hz; high is capped below fs/2), or None.
    bandpass_hz: tuple[float, float] | None = None
    # Where a record's source comes from (each source labels its own subset of the classes: labels.known_labels):
    # "name_prefix", the letters its name starts with (the challenge's: HR00001 is PTB-XL's); "subfolder", the
    # top-level subfolder of the training folder that holds it (the 2021 layout, training/<source>/...; the only
    # way to tell Ningbo from Chapman-Shaoxing, which share the JS prefix); "one", every record from one source.
    # Names that spell diagnoses (AF00001, N00001) need "subfolder" or "one".
    sources: str = "name_prefix"
    # The recipe (cinc2020/recipe.py): cross-validation folds, one network each, whose out-of-fold probabilities
    # tune the thresholds (1 trains one network on all but a val_fraction share and tunes on that share); and
    # whether what ships is one network refit on every record (True) or the fold networks, averaged (False).
    # 4 fold networks without a validation share beat 3 with one (docs/screening_2.md). The fold networks ship:
    # the thresholds are tuned on their own out-of-fold probabilities, and with threshold_shrink 0.5 they kept
    # both sources of the test split where the refit lost PTB-XL 0.019 (docs/results.md, issue 39).
    folds: int = 4
    refit: bool = False
    # The decision: per-class thresholds tuned on the out-of-fold probabilities, moved this share of the way
    # toward one global threshold tuned on the same (decisions.tune_thresholds; 0: per class, 1: global).
    # Per-class thresholds fit the sources tuned on: trained on PTB-XL alone, scored on Chapman-Shaoxing, 0.5
    # gave 0.377 against 0.332 with the 4 fold networks (docs/results.md). None: the scheme's own, 0.5 for
    # snomed, 0 for cpsc (not compared there).
    threshold_shrink: float | None = None
    seed: int = 0

    def __post_init__(self):
        if len(self.stage_strides) != len(self.conv_channels):
            raise ValueError(f"stage_strides needs one stride per stage ({len(self.conv_channels)}), "
                             f"not {len(self.stage_strides)}")
        if self.threshold_shrink is None:
            self.threshold_shrink = 0.5 if self.labels == "snomed" else 0.0
        self.check_ranges()
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be at least 0 and below 1, not {self.val_fraction}")
        if self.records_without_class is None:
            self.records_without_class = "skip" if self.labels == "cpsc" else "negative"
        if self.class_weights is None:
            self.class_weights = self.model != "crnn"
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}: use one of {', '.join(allowed)}")

    def check_ranges(self) -> None:
        """Refuse numbers no run can use, naming the field (before any record is read)."""
        at_least = {"epochs": 1, "batch_size": 1, "patience": 1, "min_positives": 1, "folds": 1, "gru_units": 1,
                    "features_per_window": 1, "first_kernel_size": 1, "kernel_size": 1}
        for name, lowest in at_least.items():
            if getattr(self, name) < lowest:
                raise ValueError(f"{name} must be {lowest} or more, not {getattr(self, name)}")
        positive = ("fs", "window_s", "hop_s", "lr", "train_crop_s")
        not_negative = ("warmup_epochs", "weight_decay", "scale_sd", "noise_sd", "wander_mv", "shift_s", "mixup_alpha")
        for name in (*at_least, *positive, *not_negative, "dropout", "lead_dropout", "val_fraction", "threshold_shrink"):
            value = getattr(self, name)  # a string where a number belongs ($CINC2020_CONFIG, say) is named here
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number, not {value!r}")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above 0, not {getattr(self, name)}")
        for name in not_negative:
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be 0 or more, not {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be at least 0 and below 1, not {self.dropout}")
        if not 0 <= self.threshold_shrink <= 1:
            raise ValueError(f"threshold_shrink must be between 0 and 1, not {self.threshold_shrink}")
        if not 0 <= self.lead_dropout <= 1:  # a chance: every record may drop leads
            raise ValueError(f"lead_dropout must be between 0 and 1, not {self.lead_dropout}")
        if self.loader_workers is not None and self.loader_workers < 0:
            raise ValueError(f"loader_workers must be 0 or more (or null: the default), not {self.loader_workers}")
        if self.gradient_clip is not None and not self.gradient_clip > 0:
            raise ValueError(f"gradient_clip must be above 0 (or null: none), not {self.gradient_clip}")
        if any(c < 1 for c in self.conv_channels) or any(s < 1 for s in self.stage_strides):
            raise ValueError(f"conv_channels and stage_strides must be 1 or more, not {list(self.conv_channels)} "
                             f"and {list(self.stage_strides)}")
        if self.bandpass_hz is not None:
            low, high = self.bandpass_hz
            if not 0 < low < high:
                raise ValueError(f"bandpass_hz must be [low, high] with 0 < low < high, not {list(self.bandpass_hz)}")

    def check_trainable(self, folds: int | None = None, refit: bool | None = None) -> None:
        """Refuse what no training can do with this configuration, or with these ``folds`` and ``refit`` (default:
        its own). Asked before any record is read; never of a saved model, which has trained."""
        folds = self.folds if folds is None else folds
        refit = self.refit if refit is None else refit
        if folds == 1 and self.val_fraction == 0:
            raise ValueError("one fold trains on all but a validation share and predicts that share, but val_fraction "
                             "is 0 (the default): use two folds or more, or set a share, e.g. "
                             f"{ENVIRONMENT_VARIABLE}='{{\"val_fraction\": 0.2}}'")
        if self.schedule == "constant":  # a network that keeps its last epoch needs a schedule that ends there
            if refit:
                raise ValueError("a refit keeps its last epoch, so it needs a schedule that ends: set schedule to "
                                 "\"cosine\" (or train without --refit)")
            if self.val_fraction == 0:
                raise ValueError("a network with val_fraction 0 keeps its last epoch, so it needs a schedule that "
                                 "ends: set schedule to \"cosine\" (or set val_fraction above 0)")

    def same_results(self, other: "Config") -> bool:
        """Whether a run with ``other`` computes what one with this configuration does (``--resume`` asks)."""
        mine, theirs = self.to_json(), other.to_json()
        return all(mine[k] == theirs[k] for k in mine if k not in NO_EFFECT_ON_RESULTS)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Config":
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
        values = dict(data)
        for key in ("conv_channels", "stage_strides", "bandpass_hz"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    @property
    def window(self) -> int:
        return int(round(self.window_s * self.fs))

    @property
    def hop(self) -> int:
        return int(round(self.hop_s * self.fs))



def given_options(**options) -> dict:
    """The command-line options a user gave: argparse leaves the others None."""
    return {name: value for name, value in options.items() if value is not None}


def config_from_environment(**overrides) -> Config:
    """Defaults, then JSON from ``$CINC2020_CONFIG`` (text or a file path), then ``overrides``.

    The organisers' own ``train_model.py`` takes no options; the environment
    variable is how a team changes the configuration under it. An override of None
    means None (no gradient clipping, say): a command line passes only the options given.
    """
    import os
    import sys
    from pathlib import Path

    values = {f.name: f.default for f in fields(Config)}  # unresolved: scheme-dependent ones follow the labels
    chosen: dict = {}
    text = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if text:
        if not text.startswith("{"):
            text = Path(text).read_text()
        chosen.update(json.loads(text))
        print(f"${ENVIRONMENT_VARIABLE} changes the configuration: {json.dumps(chosen, sort_keys=True)}",
              file=sys.stderr)
    chosen.update(overrides)
    values.update(chosen)
    return Config.from_json(values)

