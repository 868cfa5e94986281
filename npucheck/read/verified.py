"""A result profile as every reader sees it: figures, summary and verdicts re-derived from the raw evidence.

``check`` judges from the raw samples (:func:`npucheck.evidence.audit`); this module gives the other readers
(``results``, ``compare``, ``report``, ``plot``) the same footing, so no command shows a stored headline that its
own raw data does not give:

* each ``ok`` case's median, interval and TFLOPS and each energy window's TFLOPS/W are checked against their raw
  data; a case that disagrees is an ``error`` ("edited or corrupt"), so it is never compared, plotted or listed
  as a peak;
* the summary's peak and counts are re-derived from the checked cases, and a dtype's TFLOPS/W is dropped when its
  window disagrees (:func:`npucheck.evidence.audit`);
* each stored verdict is judged again from its own stored criteria (a criterion's ``metric`` is its label,
  ``peak_tflops.fp16`` or ``supported_families(cnn,rnn,lstm)``, which with ``op`` and ``threshold`` is the whole
  criterion, so no target file is needed). A stored verdict that the evidence does not give is replaced by the one
  it does give, with a note; a stored criterion npucheck cannot read is INCONCLUSIVE, never PASS.
"""

from __future__ import annotations

import math
import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from npucheck.evidence import Audit, audit
from npucheck.model import CriterionResult, ResultProfile, Verdict, VerdictStatus
from npucheck.read.judge import judge_criterion
from npucheck.targets import DTYPES, FAMILIES, METRICS, OPS, Criterion

__all__ = ["as_verified", "criterion_from_label", "rejudged", "Verified", "verified"]

INCONCLUSIVE: VerdictStatus = "INCONCLUSIVE"
_WORST_FIRST: tuple[VerdictStatus, ...] = ("FAIL", "ERROR", INCONCLUSIVE)
_MADE_HERE: weakref.WeakValueDictionary[int, ResultProfile] = weakref.WeakValueDictionary()
"""The profiles :func:`verified` returned, by identity (alive ones only), so :func:`as_verified` passes them on."""
_FAMILIES_LABEL = re.compile(r"^supported_families\(([a-z,]*)\)$")


@dataclass(frozen=True)
class Verified:
    """The re-derived profile, and one line per stored figure or verdict that disagreed with the evidence."""

    profile: ResultProfile
    notes: tuple[str, ...]

    @property
    def shown(self) -> ResultProfile:
        """The profile with each note added to its warnings as ``evidence: <note>`` (what ``show`` and ``report``
        print)."""
        if not self.notes:
            return self.profile
        warnings = tuple(self.profile.warnings or ()) + tuple(f"evidence: {note}" for note in self.notes)
        return _made_here(replace(self.profile, warnings=warnings))


def verified(profile: ResultProfile | Mapping[str, Any]) -> Verified:
    """The profile with every figure the readers show re-derived from its raw evidence (see the module's doc)."""
    if _is_made_here(profile):  # already re-derived (its notes went to whoever made it): as it is
        return Verified(profile=profile, notes=())  # type: ignore[arg-type]
    checked = audit(profile)
    verdicts, changed = rejudged(checked)
    notes = tuple(checked.lines()) + tuple(changed)
    return Verified(profile=_made_here(replace(checked.profile, verdicts=verdicts)), notes=notes)


def criterion_from_label(metric: str, op: str, threshold: float) -> Criterion:
    """The criterion a stored ``verdicts[].criteria[]`` entry was judged against.

    Raises:
        ValueError: the label, operator or threshold is not one npucheck writes.
    """
    if op not in OPS:
        raise ValueError(f"unknown operator {op!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise ValueError(f"threshold {threshold!r} is not a finite number")
    if threshold < 0:
        raise ValueError(f"threshold {threshold!r} is negative")
    families = _FAMILIES_LABEL.match(metric)
    if families is not None:
        names = tuple(families.group(1).split(",")) if families.group(1) else ()
        if not names or any(name not in FAMILIES for name in names) or len(set(names)) != len(names):
            raise ValueError(f"unknown families in {metric!r}")
        return Criterion("supported_families", op, threshold, families=names)
    name, dot, dtype = metric.partition(".")
    if name == "peak_gbps" and not dot:  # bandwidth over every dtype
        return Criterion(name, op, float(threshold))
    if name not in METRICS or name == "supported_families" or dtype not in DTYPES:
        raise ValueError(f"unknown metric {metric!r}")
    return Criterion(name, op, float(threshold), dtype=dtype)


def rejudged(checked: Audit) -> tuple[tuple[Verdict, ...], list[str]]:
    """Each stored verdict judged again from its stored criteria on the checked profile, and a note for each
    whose status changed (``verdict <target>: stored PASS, the raw evidence gives INCONCLUSIVE``)."""
    out: list[Verdict] = []
    notes: list[str] = []
    for stored in checked.profile.verdicts or ():
        again = _rejudge(checked, stored)
        if again.status != stored.status:
            notes.append(f"verdict {stored.target}: stored {stored.status}, the raw evidence gives {again.status}")
        out.append(again)
    return tuple(out), notes


def _rejudge(checked: Audit, stored: Verdict) -> Verdict:
    if not stored.criteria:  # nothing to judge again: a target has at least one criterion
        return replace(stored, status=INCONCLUSIVE)
    criteria: list[Criterion | CriterionResult] = []
    for entry in stored.criteria:
        try:
            criteria.append(criterion_from_label(entry.metric, entry.op, entry.threshold))
        except ValueError as e:
            reason = f"stored criterion cannot be re-derived ({e}); not judged"
            criteria.append(replace(entry, status=INCONCLUSIVE, measured=None, lower=None, upper=None, reason=reason))
    # judged with the audit of the file as loaded: its digest state and findings, not those of the re-derived copy
    results = [
        CriterionResult.from_dict(judge_criterion(checked.profile, c, checked)) if isinstance(c, Criterion) else c
        for c in criteria
    ]
    statuses = [r.status for r in results]
    status: VerdictStatus = next((s for s in _WORST_FIRST if s in statuses), "PASS")
    return replace(stored, status=status, criteria=tuple(results))


def as_verified(loaded: ResultProfile | Mapping[str, Any]) -> ResultProfile:
    """What the readers take: a loaded file (a dict) or a :class:`ResultProfile`, verified (:func:`verified`)
    unless it is itself what :func:`verified` returned (verifying the re-derived copy again would read it as
    modified since sealed)."""
    return verified(loaded).profile


def _made_here(profile: ResultProfile) -> ResultProfile:
    _MADE_HERE[id(profile)] = profile
    return profile


def _is_made_here(profile: object) -> bool:
    return isinstance(profile, ResultProfile) and _MADE_HERE.get(id(profile)) is profile
