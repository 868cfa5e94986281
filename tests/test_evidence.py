"""Evidence a third party can trust (issue 11 item 1): verdicts from the raw samples, the content digest, signing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import GEMM_FLOPS, make_profile, verdict_giving

from npucheck import evidence
from npucheck.cli import cli
from npucheck.model import ResultProfile, as_profile
from npucheck.read.judge import judge
from npucheck.read.verified import verified
from npucheck.stats import summarize
from npucheck.store import load_result, save_result
from npucheck.targets import load_targets

PEAK_ONLY = """format = 1
name = "peak-only"
title = "fp16 peak only"
source = "test"
description = "test"

[[criteria]]
metric = "peak_tflops"
dtype = "fp16"
op = ">="
threshold = 128.0
"""


def _edited(doc: dict[str, Any], tflops: float = 500.0, ci: tuple[float, float] = (499.0, 501.0)) -> dict[str, Any]:
    """The fp16 GEMM's headline (and its confirmation's) edited by hand; raw ``samples_s`` left as measured."""
    for part in ("measurements", "confirmations"):
        doc[part][0].update(tflops=tflops, tflops_ci=list(ci))
    doc["summary"]["peak_tflops"]["fp16"] = tflops
    return doc


def _save(tmp_path: Path, doc: dict[str, Any], name: str = "r.json") -> Path:
    return save_result(ResultProfile.from_dict(doc), tmp_path / name)


def _write_raw(tmp_path: Path, doc: dict[str, Any], name: str = "r.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return path


def _peak_status(output: str) -> str:
    line = next(line for line in output.splitlines() if "peak_tflops.fp16" in line)
    return next(s for s in ("PASS", "FAIL", "INCONCLUSIVE", "ERROR") if s in line)


# ------------------------------------------------------------------------------------------ A: raw evidence
def test_an_edited_headline_does_not_pass_check(tmp_path):
    """The issue's case: tflops 500 and tflops_ci [499, 501] over raw samples of ~0.34 TFLOPS."""
    path = _write_raw(tmp_path, _edited(make_profile()))
    result = CliRunner().invoke(cli, ["check", str(path), "--target", "miit-2020-cloud"])
    assert _peak_status(result.output) != "PASS", result.output
    assert "edited or corrupt" in result.output and "stored tflops 500" in result.output
    # a target whose only criterion is the peak: exit 0 (all PASS) before, 3 (INCONCLUSIVE/ERROR) now
    target = tmp_path / "peak-only.toml"
    target.write_text(PEAK_ONLY, encoding="utf-8")
    result = CliRunner().invoke(cli, ["check", str(path), "--target", str(target)])
    assert result.exit_code == 3, result.output
    assert "raw samples give" in result.output


def test_the_same_file_unedited_judges_from_its_samples(tmp_path):
    path = _save(tmp_path, make_profile())
    result = CliRunner().invoke(cli, ["check", str(path), "--target", "miit-2020-cloud"])
    assert _peak_status(result.output) == "FAIL"  # 0.34 TFLOPS misses 128, from the raw samples
    assert "edited or corrupt" not in result.output and "evidence:" not in result.output


def test_recompute_matches_how_the_runner_computes():
    doc = make_profile()
    m = ResultProfile.from_dict(doc).measurements[0]
    stats, tflops, ci = evidence.recompute(m, 0.95)
    expected = summarize(doc["measurements"][0]["samples_s"], 0.95)
    assert stats == expected
    assert tflops == GEMM_FLOPS / expected.median_s / 1e12  # bit for bit, as runner.py computes it
    assert ci == (GEMM_FLOPS / expected.ci_high_s / 1e12, GEMM_FLOPS / expected.ci_low_s / 1e12)


def test_a_change_beyond_the_tolerance_is_found_and_one_within_it_is_not():
    doc = make_profile()
    tflops = doc["measurements"][0]["tflops"]
    doc["measurements"][0]["tflops"] = tflops * (1 + 1e-12)  # rounding
    assert evidence.audit(doc).findings == ()
    doc["measurements"][0]["tflops"] = tflops * (1 + 1e-6)
    (finding,) = evidence.audit(doc).findings
    assert finding.field == "tflops" and finding.case == doc["measurements"][0]["id"]


def test_edited_samples_statistics_are_found():
    doc = make_profile()
    doc["measurements"][0]["stats"]["median_s"] = 0.5e-4
    fields = {f.field for f in evidence.audit(doc).findings}
    assert "stats.median_s" in fields


def test_an_edited_case_becomes_an_error_and_the_next_best_cannot_pass():
    doc = _edited(make_profile())
    checked = evidence.audit(doc)
    case = checked.profile.measurements[0]
    assert case.status == "error" and case.error is not None and case.error.startswith("edited or corrupt")
    verdict = judge(doc, load_targets(["miit-2020-cloud"]))[0]
    peak = verdict["criteria"][0]
    assert peak["status"] in ("ERROR", "INCONCLUSIVE") and "edited or corrupt" in peak["reason"]


def _with_window(doc: dict[str, Any], tflops_per_watt_stored: float | None = None) -> dict[str, Any]:
    """A valid headline energy window on the fp16 GEMM (100 J over 10 s, 3e14 FLOPs: 30 TFLOPS at 10 W) and the
    summary the runner would derive from it."""
    flops, joules, window = 3e14, 100.0, 10.0
    tflops = flops / window / 1e12
    avg = joules / window
    tpw = tflops / avg
    doc["measurements"][0]["energy"] = {
        "kind": "headline",
        "case": doc["measurements"][0]["id"],
        "source": "nvml",
        "scope": "board",
        "quality": "Q1",
        "uncertainty_rel": 0.05,
        "covers_device": True,
        "covers_reason": "test",
        "window_s": window,
        "valid": True,
        "joules": joules,
        "avg_watts": avg,
        "flops": flops,
        "tflops": tflops,
        "tflops_per_watt": tpw,
    }
    value = tpw if tflops_per_watt_stored is None else tflops_per_watt_stored
    doc["summary"].update(
        tflops_per_watt={"fp16": value},
        tflops_per_watt_ci={"fp16": [value / 1.05, value / 0.95]},
        tflops_per_watt_quality={"fp16": "Q1"},
        tflops_per_watt_scope={"fp16": "board"},
        tflops_per_watt_covers={"fp16": True},
        tflops_per_watt_covers_reason={"fp16": "test"},
    )
    return doc


def test_tflops_per_watt_is_checked_against_the_windows_joules_and_work():
    honest = _with_window(make_profile())
    assert evidence.audit(honest).findings == ()
    per_watt = [c for c in judge(honest, load_targets(["miit-2020-cloud"]))[0]["criteria"] if "watt" in c["metric"]]
    assert per_watt[0]["status"] == "PASS"  # 3 TFLOPS/W, honestly
    # an edited summary figure: the window's joules and work give 3, the summary says 300
    edited = _with_window(make_profile(), tflops_per_watt_stored=300.0)
    assert any(f.part == "energy" for f in evidence.audit(edited).findings)
    # the stored verdict threshold is > 1, so 300 would PASS too: the edit itself makes it INCONCLUSIVE
    per_watt = [c for c in judge(edited, load_targets(["miit-2020-cloud"]))[0]["criteria"] if "watt" in c["metric"]]
    assert per_watt[0]["status"] == "INCONCLUSIVE" and "edited or corrupt" in per_watt[0]["reason"]


def test_edited_window_joules_are_found():
    doc = _with_window(make_profile())
    doc["measurements"][0]["energy"]["joules"] = 10.0  # the window's figures no longer follow from its joules
    assert {f.field for f in evidence.audit(doc).findings} >= {"avg_watts", "tflops_per_watt"}


def test_a_case_without_raw_samples_cannot_pass():
    doc = make_profile()
    for part in ("measurements", "confirmations"):
        doc[part][0].update(samples_s=[], tflops=500.0, tflops_ci=[499.0, 501.0])
    peak = judge(doc, load_targets(["miit-2020-cloud"]))[0]["criteria"][0]
    assert peak["status"] == "INCONCLUSIVE"
    assert "no raw samples" in peak["reason"]


# ------------------------------------------------------------------------------------------ B: the digest
def test_save_seals_and_the_seal_survives_loading(tmp_path):
    path = _save(tmp_path, make_profile())
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["digest"]["scheme"] == evidence.DIGEST_SCHEME and len(doc["digest"]["sha256"]) == 64
    assert evidence.digest_status(load_result(path)).state == "sealed"


def test_the_digest_covers_everything_but_itself_and_the_verdicts():
    doc = evidence.seal(make_profile())
    doc["verdicts"] = []
    assert evidence.digest_status(doc).state == "sealed"
    for key, value in (("warnings", ["x"]), ("npucheck_version", "9.9"), ("environment", {})):
        changed = {**doc, key: value}
        assert evidence.digest_status(changed).state == "modified", key
    # key order and whitespace are not content
    reordered = json.loads(json.dumps(dict(reversed(list(doc.items())))))
    assert evidence.digest_status(reordered).state == "sealed"


def test_check_and_show_say_modified_since_measured(tmp_path):
    path = _save(tmp_path, make_profile())
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["environment"]["hostname"] = "elsewhere"  # any edit, even one that changes no figure
    edited = _write_raw(tmp_path, doc, "edited.json")
    for command in (["check", str(edited)], ["show", str(edited)]):
        result = CliRunner().invoke(cli, command)
        assert "modified since measured" in result.output, command
    clean = CliRunner().invoke(cli, ["show", str(path)])
    assert "modified since measured" not in clean.output and "not sealed" not in clean.output


def test_a_modified_file_cannot_pass():
    doc = evidence.seal(_with_window(make_profile()))
    assert judge(doc, load_targets(["miit-2020-cloud"]))[0]["criteria"][1]["status"] == "PASS"
    doc["environment"] = {"edited": True}
    criterion = judge(doc, load_targets(["miit-2020-cloud"]))[0]["criteria"][1]
    assert criterion["status"] == "INCONCLUSIVE" and "modified since measured" in criterion["reason"]


def test_an_old_file_without_a_digest_is_not_sealed_and_judged_as_before(tmp_path):
    path = _write_raw(tmp_path, make_profile())
    result = CliRunner().invoke(cli, ["check", str(path), "--target", "miit-2020-cloud"])
    assert "not sealed" in result.output and _peak_status(result.output) == "FAIL"


def test_the_schema_allows_the_digest_and_refuses_a_malformed_one(tmp_path):
    doc = evidence.seal(make_profile())
    doc["digest"]["sha256"] = "not hex"
    path = _write_raw(tmp_path, doc)
    result = CliRunner().invoke(cli, ["show", str(path)])
    assert result.exit_code == 2 and "digest" in result.output


# ------------------------------------------------------------------------------------------ C: signatures
def _keys(tmp_path: Path) -> tuple[Path, Path]:
    pytest.importorskip("cryptography")  # the optional extra npucheck[sign]
    key = tmp_path / "lab.pem"
    result = CliRunner().invoke(cli, ["keygen", str(key)])
    assert result.exit_code == 0, result.output
    assert (key.stat().st_mode & 0o777) == 0o600
    return key, tmp_path / "lab.pub.pem"


def test_sign_and_verify_with_the_labs_key(tmp_path):
    key, public = _keys(tmp_path)
    path = _save(tmp_path, make_profile())
    assert CliRunner().invoke(cli, ["sign", str(path), "--key", str(key)]).exit_code == 0
    assert path.with_name(path.name + ".sig").exists()
    result = CliRunner().invoke(cli, ["verify", str(path), "--public-key", str(public)])
    assert result.exit_code == 0 and "signature valid" in result.output, result.output


def test_verify_fails_on_an_edit_even_when_the_digest_is_recomputed(tmp_path):
    key, public = _keys(tmp_path)
    path = _save(tmp_path, make_profile())
    CliRunner().invoke(cli, ["sign", str(path), "--key", str(key)])
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["measurements"][0]["samples_s"] = [s / 2 for s in doc["measurements"][0]["samples_s"]]
    path.write_text(json.dumps(evidence.seal(doc)), encoding="utf-8")  # a careful forger re-seals
    assert evidence.digest_status(load_result(path)).state == "sealed"
    result = CliRunner().invoke(cli, ["verify", str(path), "--public-key", str(public)])
    assert result.exit_code == 1 and "bad signature" in result.output


def test_verify_fails_with_another_key(tmp_path):
    key, _ = _keys(tmp_path)
    other = tmp_path / "other" / "x.pem"
    other.parent.mkdir()
    _, other_public = _keys(other.parent)
    path = _save(tmp_path, make_profile())
    CliRunner().invoke(cli, ["sign", str(path), "--key", str(key)])
    result = CliRunner().invoke(cli, ["verify", str(path), "--public-key", str(other_public)])
    assert result.exit_code == 1 and "bad signature" in result.output


def test_verify_exit_codes_without_a_signature(tmp_path):
    _, public = _keys(tmp_path)
    path = _save(tmp_path, make_profile())
    assert CliRunner().invoke(cli, ["verify", str(path)]).exit_code == 0  # sealed, digest matches
    result = CliRunner().invoke(cli, ["verify", str(path), "--public-key", str(public)])
    assert result.exit_code == 1 and "not signed" in result.output
    unsealed = _write_raw(tmp_path, make_profile(), "old.json")
    assert CliRunner().invoke(cli, ["verify", str(unsealed)]).exit_code == 1
    assert CliRunner().invoke(cli, ["verify", str(tmp_path / "missing.json")]).exit_code == 2
    bad_key = tmp_path / "bad.pem"
    bad_key.write_text("not a key", encoding="utf-8")
    result = CliRunner().invoke(cli, ["verify", str(path), "--public-key", str(bad_key)])
    assert result.exit_code == 2 and result.output.count("\n") == 1


def test_a_modified_file_is_not_signed(tmp_path):
    key, _ = _keys(tmp_path)
    path = _save(tmp_path, make_profile())
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["warnings"] = ["added later"]
    path.write_text(json.dumps(doc), encoding="utf-8")
    result = CliRunner().invoke(cli, ["sign", str(path), "--key", str(key)])
    assert result.exit_code == 1 and not path.with_name(path.name + ".sig").exists()


def test_missing_cryptography_is_one_line_exit_2(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_crypto(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("cryptography"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_crypto)
    result = CliRunner().invoke(cli, ["keygen", str(tmp_path / "k.pem")])
    assert result.exit_code == 2 and "pip install 'npucheck[sign]'" in result.output


def test_a_report_names_edited_cases_and_a_modified_file(tmp_path):
    path = _save(tmp_path, make_profile())
    doc = _edited(json.loads(path.read_text(encoding="utf-8")))
    edited = _write_raw(tmp_path, doc, "edited.json")
    out = tmp_path / "report.md"
    result = CliRunner().invoke(cli, ["report", str(edited), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert "modified since measured" in text and "edited or corrupt: stored tflops 500" in text


def test_a_real_run_with_energy_windows_recomputes_exactly_and_judges_as_stored():
    """The runner (a tiny real CPU run, two trials per headline window from a fake energy counter) computes every
    figure the way npucheck.evidence recomputes it: nothing is found, and the verdicts are the stored ones."""
    from tests.test_model import _CounterSource, _run

    doc = _run(power_source=_CounterSource(), power_trials=2)
    assert any(m["energy"] and m["energy"]["valid"] for m in doc["measurements"])
    assert any(m["status"] == "ok" and m["samples_s"] for m in doc["measurements"])
    assert evidence.audit(doc).findings == ()
    assert judge(doc, load_targets(None)) == doc["verdicts"]
    sealed = evidence.seal(json.loads(json.dumps(doc)))
    assert evidence.digest_status(sealed).state == "sealed"
    # every reader sees what the file stores: the summary re-derived from the cases is the stored one, and each
    # stored verdict judged again from its stored criteria is the stored verdict
    seen = verified(sealed)
    assert seen.notes == ()
    assert seen.profile.summary == as_profile(sealed).summary
    assert seen.profile.verdicts == as_profile(sealed).verdicts


# ------------------------------------------------------------------------------------ every reader, not only check
def test_show_results_compare_and_report_read_the_raw_evidence_not_the_headline(tmp_path):
    """The issue's edit (tflops 500 over samples of ~0.34 TFLOPS, the summary's peak too, the stored verdict set to
    PASS) is what no reader shows: show lists the case as an error and the verdict the evidence gives, results
    lists the peak from the samples, compare does not compare the case, and the report names the edit."""
    base = _save(tmp_path, make_profile(), "base.json")
    doc = _edited(make_profile())
    doc["verdicts"] = [verdict_giving("FAIL") | {"status": "PASS"}]
    path = _write_raw(tmp_path, doc, "edited.json")
    runner = CliRunner()
    shown = runner.invoke(cli, ["show", str(path)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "edited or corrupt" in shown.output and "verdict miit-2020-cloud: stored PASS" in shown.output
    assert "500.0" not in shown.output and "499.0" not in shown.output  # named in the error, never a figure
    listing = runner.invoke(cli, ["results", str(tmp_path), "--format", "csv"])
    edited_row = next(line for line in listing.output.splitlines() if "edited.json" in line)
    # its only fp16 GEMM is an error: no peak, and the peak criterion has nothing to judge
    assert "500" not in edited_row and edited_row.endswith(",miit-2020-cloud: INCONCLUSIVE")
    compared = runner.invoke(cli, ["compare", str(base), str(path), "--format", "csv"])
    assert "edited or corrupt" in compared.output and "improvement" not in compared.output
    report = tmp_path / "report.md"
    done = runner.invoke(cli, ["report", str(path), "-o", str(report)])
    assert done.exit_code == 0, done.output
    text = report.read_text(encoding="utf-8")
    assert "edited or corrupt: stored tflops 500" in text and "stored PASS, the raw evidence gives INCONCLUSIVE" in text


def test_every_criterion_a_target_can_hold_is_rederived_from_its_stored_label():
    """A stored verdict is judged again from its criteria's labels (npucheck.read.verified): every metric, dtype
    and family a target may use must come back as the same criterion, or a reader would call it INCONCLUSIVE."""
    from dataclasses import replace

    from npucheck.read.verified import criterion_from_label
    from npucheck.targets import DTYPES, FAMILIES, INT8_METRICS, METRICS, Criterion

    criteria = [Criterion("supported_families", ">=", 2, families=FAMILIES), Criterion("peak_gbps", ">", 100.0)]
    for metric in METRICS:
        if metric == "supported_families":
            continue
        dtypes = (
            ["int8"]
            if metric in INT8_METRICS
            else [d for d in DTYPES if not (d == "int8" and metric in INT8_METRICS.values())]
        )
        criteria += [Criterion(metric, "<=", 1.5, dtype=dtype) for dtype in dtypes]
    criteria += [c for target in load_targets(None) for c in target.criteria]
    for criterion in criteria:
        again = criterion_from_label(criterion.label, criterion.op, criterion.threshold)
        assert again == replace(criterion, note=None), criterion.label
    with pytest.raises(ValueError, match="unknown metric"):
        criterion_from_label("peak_flops.fp16", ">=", 1.0)
