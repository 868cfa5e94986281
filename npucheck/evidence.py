"""The evidence behind a result profile: figures recomputed from the raw data, and the file's content digest.

No torch (a shared module: the reading half uses it). Two independent checks:

* **Recomputation.** Each ``ok`` case's median, interval and TFLOPS are recomputed from its raw per-call seconds
  (``samples_s``, already divided by ``calls_per_sample`` when the run stored them), its FLOP count (``flops``) and
  the run's confidence (``settings.confidence``), with :func:`npucheck.stats.summarize`, exactly as the runner
  computed them (``tflops = flops / median_s / 1e12``, ``tflops_ci`` from the interval's slow and fast ends). Each
  valid energy window's average power, sustained TFLOPS and TFLOPS/W are recomputed from its ``joules``,
  ``window_s`` and ``flops`` (``avg_watts = joules / window_s``, ``tflops = flops / window_s / 1e12``,
  ``tflops_per_watt = tflops / avg_watts``, as ``npucheck.measure.energy.efficiency`` does), and the summary's
  TFLOPS/W and its interval (widened by the window's ``uncertainty_rel``) from that. A stored figure more than
  :data:`REL_TOLERANCE` away from its recomputation is a :class:`Finding` ("edited or corrupt"): the judge makes
  that case an error and no criterion depending on it can PASS.
* **Digest.** :func:`seal` adds ``digest`` (SHA-256 over :func:`canonical_bytes`: every top-level key except
  ``digest`` itself and ``verdicts``, which ``check`` re-derives) when a profile is saved; :func:`digest_status`
  says whether the file still matches it. A digest detects accidental and naive edits only: anyone can recompute
  it. A signature (``npucheck sign``, see SECURITY.md) binds it to a key.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from npucheck.bandwidth import bandwidth_figures
from npucheck.model import Energy, Measurement, ResultProfile, Summary, as_profile
from npucheck.stats import summarize
from npucheck.summary import counts, peak_gbps, peak_gemm_cases, peaks

__all__ = [
    "agrees",
    "Audit",
    "audit",
    "by_case",
    "canonical_bytes",
    "content_digest",
    "DIGEST_KEY",
    "DIGEST_SCHEME",
    "digest_status",
    "DigestStatus",
    "EDITED",
    "Finding",
    "NOT_DIGESTED",
    "recompute",
    "REL_TOLERANCE",
    "seal",
    "generate_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "sign",
    "SIGNATURE_SCHEME",
    "SIGNATURE_SUFFIX",
    "signed_message",
    "verify_signature",
    "window_tflops_per_watt",
]


REL_TOLERANCE = 1e-9
"""How far (relative) a stored figure may be from its recomputation. The runner computes every figure with the
same float operations in the same order and JSON keeps floats exactly (shortest repr round-trips), so a real file
agrees bit for bit; 1e-9 leaves room for another platform's last-bit rounding and nothing else."""
EDITED = "edited or corrupt"
DIGEST_KEY = "digest"
DIGEST_SCHEME = "npucheck-result-sha256-v1"
NOT_DIGESTED = (DIGEST_KEY, "verdicts")
"""Top-level keys the digest does not cover: the digest itself, and the verdicts (re-derived by ``check``)."""
DEFAULT_CONFIDENCE = 0.95


# ---------------------------------------------------------------------------------------------- findings
@dataclass(frozen=True)
class Finding:
    """A stored figure that disagrees with its own raw data."""

    case: str
    """The measurement's id (a confirmation: ``confirmation of <id>``; the summary: ``summary``)."""
    dtype: str | None
    part: str
    """What depends on it: ``peak`` (a GEMM case or confirmation), ``energy`` (an energy window or the summary's
    TFLOPS/W), ``case`` (any other case)."""
    field: str
    stored: Any
    raw: Any

    @property
    def disagreement(self) -> str:
        """``stored X, raw samples give Y`` (an energy figure: ``its joules and work give Y``)."""
        source = "its joules and work give" if self.part == "energy" else "raw samples give"
        raw = self.raw if isinstance(self.raw, str) else f"{source} {_fmt(self.raw)}"
        return f"stored {self.field} {_fmt(self.stored)}, {raw}"

    @property
    def message(self) -> str:
        return f"{self.case}: {EDITED}: {self.disagreement}"


@dataclass(frozen=True)
class Audit:
    """A profile with every ``ok`` case's figures recomputed from raw data (``profile``), and what disagreed."""

    profile: ResultProfile
    findings: tuple[Finding, ...]
    digest: DigestStatus

    def affecting(self, part: str, dtype: str | None) -> list[Finding]:
        return [f for f in self.findings if f.part == part and f.dtype == dtype]

    def lines(self) -> list[str]:
        """What ``show`` and ``check`` print: the digest's state when it is not sealed and intact, then one line
        per case with findings."""
        out = [] if self.digest.state == "sealed" else [self.digest.message]
        return out + by_case(self.findings)


def by_case(findings: Sequence[Finding]) -> list[str]:
    """One line per case: ``<case>: edited or corrupt: stored X, raw samples give Y; stored …``."""
    grouped: dict[str, list[str]] = {}
    for finding in findings:
        grouped.setdefault(finding.case, []).append(finding.disagreement)
    return [f"{case}: {EDITED}: {'; '.join(parts)}" for case, parts in grouped.items()]


def recompute(measurement: Measurement, confidence: float) -> tuple[Any, float, tuple[float, float]]:
    """``(stats, tflops, tflops_ci)`` of a case from its raw per-call seconds and FLOP count, as the runner computes
    them. Raises ValueError when there are no samples."""
    stats = summarize(measurement.samples_s, confidence)
    flops = measurement.flops
    return stats, flops / stats.median_s / 1e12, (flops / stats.ci_high_s / 1e12, flops / stats.ci_low_s / 1e12)


def audit(profile: ResultProfile | Mapping[str, Any]) -> Audit:
    """Recompute every ``ok`` case (measurements and confirmations) and every valid energy window from raw data.

    Returns the profile with each disagreeing case turned into an ``error`` naming the stored and recomputed
    figures (an agreeing case is kept as stored: its figures are its raw data's to within REL_TOLERANCE; a case
    without raw samples keeps its figure but loses its interval, so it cannot PASS), the findings, and the
    digest's state.
    """
    doc = profile.to_dict() if isinstance(profile, ResultProfile) else profile
    result = as_profile(profile)
    confidence = float(result.settings.confidence or DEFAULT_CONFIDENCE)
    findings: list[Finding] = []
    measurements = tuple(_checked(m, confidence, findings) for m in result.measurements or ())
    confirmations = tuple(_checked(m, confidence, findings) for m in result.confirmations or ())
    _check_summary(result, findings)
    summary = _rederived_summary(result.summary, measurements, confirmations, findings)
    verified = replace(result, measurements=measurements, confirmations=confirmations, summary=summary)
    return Audit(profile=verified, findings=tuple(findings), digest=digest_status(doc))


def _rederived_summary(
    stored: Summary, measurements: Sequence[Measurement], confirmations: Sequence[Measurement], findings: list[Finding]
) -> Summary:
    """The summary as the readers see it: each dtype's peak (``peak_tflops``, ``peak``) and the case counts
    re-derived from the checked cases, and no TFLOPS/W for a dtype with an energy finding. A stored peak that
    disagrees is a finding unless its case already is one (the same edit, said once); an absent one is derived."""
    best = peak_gemm_cases(measurements)
    for dtype in sorted(set(stored.peak_tflops or {}) | set(best)):
        value = (stored.peak_tflops or {}).get(dtype)
        raw = best[dtype].tflops if dtype in best else None
        if value is None or (raw is not None and agrees(value, raw)):
            continue  # absent (a hand-made or older file): re-derived, nothing stored to disagree
        if any(f.part == "peak" and f.dtype == dtype for f in findings):
            continue
        raw_text: Any = raw if raw is not None else "but no correct GEMM case gives it"
        findings.append(Finding("summary", dtype, "peak", f"peak_tflops.{dtype}", value, raw_text))
    tflops_per_watt = dict(stored.tflops_per_watt or {})
    intervals = dict(stored.tflops_per_watt_ci or {})
    not_judged = dict(stored.tflops_per_watt_not_judged or {})
    for finding in findings:
        if finding.part == "energy" and finding.dtype in tflops_per_watt:
            tflops_per_watt[finding.dtype] = None
            intervals.pop(finding.dtype, None)
            not_judged.setdefault(finding.dtype, f"{EDITED}: {finding.disagreement}")
    return replace(
        stored,
        peak_tflops={dtype: m.tflops for dtype, m in best.items() if m.tflops is not None},
        peak=peaks(best, confirmations),
        counts=counts(measurements),
        # re-derived like peak_tflops; an old file's absent map stays absent
        peak_gbps=peak_gbps(measurements) if stored.peak_gbps or peak_gbps(measurements) else stored.peak_gbps,
        tflops_per_watt=tflops_per_watt,
        tflops_per_watt_ci=intervals,
        tflops_per_watt_not_judged=not_judged,
    )


def _checked(m: Measurement, confidence: float, findings: list[Finding]) -> Measurement:
    where = f"confirmation of {m.confirms}" if m.role is not None else m.id
    part = "peak" if m.kernel == "gemm" else "case"
    found: list[Finding] = []
    if m.energy is not None:
        found += _energy_findings(m.energy, where, m.dtype, m.tflops)
    if m.status != "ok":
        findings.extend(found)
        return m
    if not m.samples_s:  # nothing to recompute from: the figure stays, its interval goes (it cannot PASS)
        if m.tflops is not None:
            found.append(Finding(where, m.dtype, part, "tflops", m.tflops, "but no raw samples are stored"))
        findings.extend(found)
        if m.gbps_ci is not None:
            m = replace(m, gbps_ci=None)
        return replace(m, tflops_ci=None) if m.tflops_ci is not None else m
    stats, tflops, ci = recompute(m, confidence)
    pairs: list[tuple[str, Any, float]] = [("tflops", m.tflops, tflops)]
    if m.tflops_ci is not None:
        pairs += [("tflops_ci low", m.tflops_ci[0], ci[0]), ("tflops_ci high", m.tflops_ci[1], ci[1])]
    if m.stats is not None:
        pairs += [
            ("stats.median_s", m.stats.median_s, stats.median_s),
            ("stats.ci_low_s", m.stats.ci_low_s, stats.ci_low_s),
            ("stats.ci_high_s", m.stats.ci_high_s, stats.ci_high_s),
            ("stats.n", m.stats.n, stats.n),
        ]
    pairs += _bandwidth_pairs(m, stats)
    for name, stored, raw in pairs:
        if not agrees(stored, raw):
            found.append(Finding(where, m.dtype, part, name, stored, raw))
    findings.extend(found)
    if found:
        return _as_error(m, found)
    # Verified: the stored figures are within REL_TOLERANCE of the raw data's (bit-identical in a real file), so
    # they are kept and a real file judges exactly as before. A case stored without its interval keeps none.
    return m


def _bandwidth_pairs(m: Measurement, stats: Any) -> list[tuple[str, Any, float]]:
    """A case's stored GB/s against its bytes and raw samples (``npucheck.bandwidth``): ``gbps = bytes /
    median_s / 1e9``. A GB/s stored without the bytes it came from is a finding too."""
    if m.gbps is None and m.gbps_ci is None:
        return []
    raw = bandwidth_figures(m.bytes, stats.median_s, stats.ci_low_s, stats.ci_high_s)
    if not raw:
        return [("gbps", m.gbps, math.nan)]  # never agrees: no bytes to recompute it from
    pairs: list[tuple[str, Any, float]] = [("gbps", m.gbps, raw["gbps"])]
    if m.gbps_ci is not None:
        pairs += [("gbps_ci low", m.gbps_ci[0], raw["gbps_ci"][0]), ("gbps_ci high", m.gbps_ci[1], raw["gbps_ci"][1])]
    return pairs


def _as_error(m: Measurement, found: list[Finding]) -> Measurement:
    # the stored figures are not evidence: no reader may show them as a measurement (the error names them)
    error = f"{EDITED}: " + "; ".join(f.disagreement for f in found)
    return replace(m, status="error", error=error, tflops=None, tflops_ci=None, stats=None, gbps=None, gbps_ci=None)


def _energy_findings(energy: Energy, where: str, dtype: str | None, timed: float | None) -> list[Finding]:
    if not energy.valid or energy.joules is None or not energy.window_s:
        return []
    label = f"{where} energy window"
    avg = energy.joules / energy.window_s
    pairs: list[tuple[str, Any, float]] = [("avg_watts", energy.avg_watts, avg)]
    if energy.flops is not None and energy.tflops is not None:
        tflops = energy.flops / energy.window_s / 1e12
        pairs += [("tflops", energy.tflops, tflops), ("tflops_per_watt", energy.tflops_per_watt, tflops / avg)]
        if timed and energy.sustained_vs_timed is not None:
            pairs.append(("sustained_vs_timed", energy.sustained_vs_timed, energy.tflops / timed))
    return [
        Finding(label, dtype, "energy", name, stored, raw) for name, stored, raw in pairs if not agrees(stored, raw)
    ]


def _check_summary(result: ResultProfile, findings: list[Finding]) -> None:
    """The summary's TFLOPS/W (what the judge reads) against each dtype's headline window, recomputed."""
    summary = result.summary
    headline: dict[str, Energy] = {
        m.dtype: m.energy
        for m in result.measurements or ()
        if m.energy is not None and m.energy.kind == "headline" and m.energy.valid
    }
    for dtype, value in (summary.tflops_per_watt or {}).items():
        if value is None:
            continue
        energy = headline.get(dtype)
        if energy is None or energy.joules is None or energy.flops is None or not energy.window_s:
            findings.append(
                Finding("summary", dtype, "energy", f"tflops_per_watt.{dtype}", value, "but no energy window gives it")
            )
            continue
        raw = window_tflops_per_watt(energy.flops, energy.joules, energy.window_s)
        if not agrees(value, raw):
            findings.append(Finding("summary", dtype, "energy", f"tflops_per_watt.{dtype}", value, raw))
            continue
        interval = (summary.tflops_per_watt_ci or {}).get(dtype)
        if energy.uncertainty_rel is None:  # nothing to check the interval against (the runner always writes it)
            continue
        u = float(energy.uncertainty_rel)
        if interval is not None and energy.quality != "Q0":
            expected = (raw / (1 + u), raw / (1 - u) if u < 1 else raw * 1e9)
            for name, stored, again in zip(("low", "high"), interval, expected):
                if not agrees(stored, again):
                    findings.append(
                        Finding("summary", dtype, "energy", f"tflops_per_watt_ci.{dtype} {name}", stored, again)
                    )


def window_tflops_per_watt(flops: float, joules: float, window_s: float) -> float:
    """An energy window's TFLOPS/W from its work, energy and length, as ``npucheck.measure.energy`` computes it
    (sustained TFLOPS over average watts, in that order of operations, so a real file agrees bit for bit)."""
    return flops / window_s / 1e12 / (joules / window_s)


def agrees(stored: Any, raw: float) -> bool:
    """Whether a stored figure is its recomputation to within :data:`REL_TOLERANCE` (a non-number never is)."""
    if stored is None or isinstance(stored, bool) or not isinstance(stored, (int, float)):
        return False
    return math.isclose(float(stored), float(raw), rel_tol=REL_TOLERANCE, abs_tol=0.0)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "none" if value is None else str(value)


# ---------------------------------------------------------------------------------------------- digest
def canonical_bytes(doc: Mapping[str, Any]) -> bytes:
    """The canonical form the digest covers: every top-level key but :data:`NOT_DIGESTED`, as
    ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)`` in UTF-8 (ASCII)."""
    content = {key: value for key, value in doc.items() if key not in NOT_DIGESTED}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode(
        "ascii"
    )


def content_digest(doc: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of :func:`canonical_bytes`."""
    return hashlib.sha256(canonical_bytes(doc)).hexdigest()


def seal(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` with its ``digest`` (a JSON object exactly as it will be written: call it on the parsed text)."""
    out = {key: value for key, value in doc.items() if key != DIGEST_KEY}
    out[DIGEST_KEY] = {"scheme": DIGEST_SCHEME, "sha256": content_digest(out)}
    return out


def signed_message(sha256_hex: str) -> bytes:
    """The bytes a signature covers: the scheme and the content digest (``npucheck sign``/``verify``)."""
    return f"{DIGEST_SCHEME}:{sha256_hex}".encode("ascii")


@dataclass(frozen=True)
class DigestStatus:
    state: str
    """``sealed`` (matches), ``modified`` (does not), ``not sealed`` (no digest: written before files were sealed, or
    built in code), ``unknown`` (a scheme this version does not know)."""
    message: str
    computed: str


def digest_status(doc: Mapping[str, Any]) -> DigestStatus:
    """Whether ``doc`` (as read from its file) still matches the digest written when it was saved."""
    computed = content_digest(doc)
    stored = doc.get(DIGEST_KEY)
    if stored is None:
        return DigestStatus(
            "not sealed",
            "not sealed: the file carries no content digest (written before npucheck sealed its files)",
            computed,
        )
    if not isinstance(stored, Mapping) or stored.get("scheme") != DIGEST_SCHEME:
        scheme = stored.get("scheme") if isinstance(stored, Mapping) else stored
        return DigestStatus(
            "unknown", f"digest scheme {scheme!r} is not one this npucheck knows: not checked", computed
        )
    if stored.get("sha256") != computed:
        return DigestStatus(
            "modified",
            f"modified since measured: the content digest does not match (stored {str(stored.get('sha256'))[:12]}…, "
            f"content gives {computed[:12]}…)",
            computed,
        )
    return DigestStatus("sealed", f"sealed: content digest sha256:{computed[:12]}… matches", computed)


# ---------------------------------------------------------------------------------------------- signatures
SIGNATURE_SCHEME = "npucheck-ed25519-v1"
SIGNATURE_SUFFIX = ".sig"
MAX_KEY_BYTES = 64 * 1024
"""A PEM key or a signature file is a few hundred bytes; anything larger is refused unread."""
PASSPHRASE_ENV = "NPUCHECK_KEY_PASSPHRASE"


def _crypto() -> Any:
    """The ``cryptography`` package's Ed25519 and PEM parts, or a one-line UsageError (exit 2) when absent."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as e:
        from npucheck.errors import UsageError

        raise UsageError("signing needs the 'cryptography' package (>= 42): pip install 'npucheck[sign]'") from e
    return serialization, ed25519, InvalidSignature


def read_small(path: Any, what: str) -> bytes:
    from pathlib import Path

    from npucheck.errors import UsageError

    path = Path(path)
    try:
        if path.stat().st_size > MAX_KEY_BYTES:
            raise UsageError(f"{path}: larger than {MAX_KEY_BYTES // 1024} KiB; not {what}")
        return path.read_bytes()
    except FileNotFoundError as e:
        raise UsageError(f"{path}: does not exist") from e
    except OSError as e:
        raise UsageError(f"{path}: cannot be read: {e.strerror or e}") from e


def _first_sentence(error: Exception) -> str:
    return " ".join(str(error).split(". ")[0].split())[:120]


def _passphrase() -> bytes | None:
    import os

    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode("utf-8") if value else None


def load_private_key(path: Any) -> Any:
    """An Ed25519 private key from a PEM file (PKCS#8, as ``npucheck keygen`` or ``openssl genpkey -algorithm
    ed25519`` writes it; encrypted with the passphrase in ``NPUCHECK_KEY_PASSPHRASE``). Raises UsageError."""
    from npucheck.errors import UsageError

    serialization, ed25519, _ = _crypto()
    data = read_small(path, "a PEM private key")
    try:
        key = serialization.load_pem_private_key(data, password=_passphrase())
    except (ValueError, TypeError) as e:
        raise UsageError(f"{path}: not a usable PEM private key ({_first_sentence(e)})") from e
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UsageError(f"{path}: not an Ed25519 key (npucheck signs with Ed25519 only)")
    return key


def load_public_key(path: Any) -> Any:
    """An Ed25519 public key from a PEM file (SubjectPublicKeyInfo). Raises UsageError."""
    from npucheck.errors import UsageError

    serialization, ed25519, _ = _crypto()
    data = read_small(path, "a PEM public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        raise UsageError(f"{path}: not a usable PEM public key ({_first_sentence(e)})") from e
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise UsageError(f"{path}: not an Ed25519 public key")
    return key


def _raw_public(key: Any) -> bytes:
    serialization, _, _ = _crypto()
    return bytes(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def key_id(public_raw: bytes) -> str:
    """A short fingerprint of a public key: ``sha256:`` and the first 16 hex digits of SHA-256 of its raw bytes."""
    return "sha256:" + hashlib.sha256(public_raw).hexdigest()[:16]


def generate_key() -> tuple[bytes, bytes]:
    """A new Ed25519 key pair as PEM: (private PKCS#8, encrypted when ``NPUCHECK_KEY_PASSPHRASE`` is set; public)."""
    serialization, ed25519, _ = _crypto()
    key = ed25519.Ed25519PrivateKey.generate()
    passphrase = _passphrase()
    encryption = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return bytes(private), bytes(public)


def sign(doc: Mapping[str, Any], private_key: Any) -> dict[str, Any]:
    """The detached signature object of a profile: Ed25519 over :func:`signed_message` of its content digest
    (recomputed, so a file modified since it was sealed is signed as it is now: the caller refuses those)."""
    import base64

    computed = content_digest(doc)
    public_raw = _raw_public(private_key.public_key())
    return {
        "scheme": SIGNATURE_SCHEME,
        "digest": {"scheme": DIGEST_SCHEME, "sha256": computed},
        "public_key": base64.b64encode(public_raw).decode("ascii"),
        "key_id": key_id(public_raw),
        "signature": base64.b64encode(private_key.sign(signed_message(computed))).decode("ascii"),
    }


def verify_signature(doc: Mapping[str, Any], signature: Any, public_key: Any | None) -> tuple[bool, str]:
    """Whether ``signature`` (a parsed ``.sig`` object) signs ``doc``'s content, with ``public_key`` (trusted) or,
    when None, the key the signature names (which proves only that the file and signature agree)."""
    import base64
    import binascii

    from npucheck.errors import UsageError

    _, ed25519, invalid = _crypto()
    if not isinstance(signature, Mapping) or signature.get("scheme") != SIGNATURE_SCHEME:
        raise UsageError(f"not an npucheck signature (scheme {SIGNATURE_SCHEME!r} expected)")
    try:
        raw_sig = base64.b64decode(str(signature.get("signature")), validate=True)
        embedded = base64.b64decode(str(signature.get("public_key")), validate=True)
    except (binascii.Error, ValueError) as e:
        raise UsageError("signature file: signature or public_key is not base64") from e
    if public_key is None:
        try:
            public_key = ed25519.Ed25519PublicKey.from_public_bytes(embedded)
        except ValueError as e:
            raise UsageError("signature file: public_key is not a 32-byte Ed25519 key") from e
        trust = (
            f"key {key_id(embedded)} named in the signature file "
            "(not checked against a key you trust: pass --public-key)"
        )
    else:
        trust = f"the trusted key {key_id(_raw_public(public_key))}"
    computed = content_digest(doc)
    try:
        public_key.verify(raw_sig, signed_message(computed))
    except invalid:
        return False, f"bad signature: the content was not signed by {trust}"
    return True, f"signature valid: signed by {trust}"
