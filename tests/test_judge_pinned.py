"""judge, pinned: what tests/test_judge.py leaves loose (issue 11, item 8).

Every reason word for word (which bound, which cases, what was skipped or errored, why a figure is not judged),
the boundaries of the host-clock check, the evidence the audit found reaching the verdict, and which stored
files without recorded coverage are judged. Each test here was checked to fail when the code it pins is broken
(docs/mutation.md). The profiles are test_judge.py's: complete, with raw samples the judge recomputes.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_judge import SHEET, _raw_samples, families, gemm, make_profile, peak, per_watt, target

from npucheck.evidence import digest_status, seal
from npucheck.model import HOST_CLOCK_TOLERANCE
from npucheck.read.judge import INTERRUPTED_NOTE, decide, judge, judge_criterion
from npucheck.targets import Criterion

ID = "gemm/fp16/m{0}_n{0}_k{0}"
A, B, C, D = (ID.format(size) for size in (1024, 2048, 4096, 8192))


def judged(profile: dict[str, Any], criterion: Criterion) -> dict[str, Any]:
    """The verdict of one criterion, through ``judge`` (which audits once for every target)."""
    verdict = judge(profile, [target(criterion)])[0]["criteria"][0]
    assert judge_criterion(profile, criterion) == verdict  # auditing inside gives the same
    return verdict


def outcome(profile: dict[str, Any], criterion: Criterion) -> tuple[str, str]:
    verdict = judged(profile, criterion)
    return verdict["status"], verdict["reason"]


def confirmed(profile: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """``profile`` with its one confirmation's fields replaced."""
    profile["confirmations"][0].update(fields)
    return profile


# ------------------------------------------------------------------------------------------- decision reasons
@pytest.mark.parametrize(
    "op, ci, expected",
    [
        (">=", (130.0, 140.0), ("PASS", "lower bound 130 clears >= 128")),
        (">", (130.0, 140.0), ("PASS", "lower bound 130 clears > 128")),
        (">=", (110.0, 120.0), ("FAIL", "upper bound 120 misses >= 128")),
        (">", (110.0, 120.0), ("FAIL", "upper bound 120 misses > 128")),
        ("<=", (110.0, 120.0), ("PASS", "upper bound 120 clears <= 128")),
        ("<", (110.0, 120.0), ("PASS", "upper bound 120 clears < 128")),
        ("<=", (130.0, 140.0), ("FAIL", "lower bound 130 misses <= 128")),
        ("<", (130.0, 140.0), ("FAIL", "lower bound 130 misses < 128")),
        (">=", (120.0, 130.0), ("INCONCLUSIVE", "interval [120, 130] straddles the threshold (>= 128)")),
        ("<", (120.0, 130.0), ("INCONCLUSIVE", "interval [120, 130] straddles the threshold (< 128)")),
    ],
)
def test_a_confirmed_peak_names_the_bound_that_decided(op, ci, expected):
    profile = make_profile([gemm(1024, (ci[0] + ci[1]) / 2, ci)])
    status, reason = expected
    assert outcome(profile, peak(op)) == (
        status,
        f"{reason}; confirmation re-measure of the best of 1 fp16 GEMM case: {A}",
    )


def test_tflops_per_watt_names_the_bound_that_decided():
    profile = make_profile(tflops_per_watt=1.5, tflops_per_watt_ci=(1.25, 1.75))
    assert outcome(profile, per_watt(">", 1.0)) == ("PASS", "lower bound 1.25 clears > 1")
    assert outcome(profile, per_watt("<=", 1.0)) == ("FAIL", "lower bound 1.25 misses <= 1")
    assert outcome(profile, per_watt(">=", 1.5)) == (
        "INCONCLUSIVE",
        "interval [1.25, 1.75] straddles the threshold (>= 1.5)",
    )


def test_supported_families_lists_each_family_by_what_its_check_said():
    profile = make_profile(support={"cnn": True, "rnn": None, "lstm": None})
    assert outcome(profile, families(1)) == (
        "PASS",
        "lower bound 1 clears >= 1; supported: cnn; unsupported: none; unchecked: rnn, lstm",
    )
    profile = make_profile(support={"cnn": False, "rnn": False, "lstm": True, "gru": True})
    assert outcome(profile, families(2, ("cnn", "rnn", "lstm"))) == (
        "FAIL",
        "upper bound 1 misses >= 2; supported: lstm; unsupported: cnn, rnn; unchecked: none",
    )


def test_an_unknown_op_or_metric_is_a_bug_named_as_such():
    with pytest.raises(ValueError) as info:
        decide("==", 1.0, 0.0, 2.0)
    assert str(info.value) == "unknown op '=='"
    with pytest.raises(ValueError) as info:
        judge_criterion(make_profile(), Criterion("gflops", ">=", 1.0, dtype="fp16"))
    assert str(info.value) == "unknown metric 'gflops'"


def test_an_interrupted_run_appends_its_note_to_the_reason():
    profile = make_profile([gemm(1024, 100.0, (95.0, 105.0))], interrupted=True)
    assert INTERRUPTED_NOTE == " (run was interrupted: judged on the cases measured)"
    assert outcome(profile, peak()) == (
        "FAIL",
        f"upper bound 105 misses >= 128; confirmation re-measure of the best of 1 fp16 GEMM case: {A}"
        " (run was interrupted: judged on the cases measured)",
    )


# ----------------------------------------------------------------------------------------------- peak reasons
def test_the_peak_reason_counts_larger_other_and_errored_cases():
    cases = [
        gemm(1024, status="skipped"),
        gemm(2048, 100.0, (95.0, 105.0)),
        gemm(4096, status="error"),
        gemm(8192, status="skipped"),
        gemm(16384, status="skipped"),
    ]
    assert outcome(make_profile(cases), peak()) == (
        "FAIL",
        f"upper bound 105 misses >= 128; confirmation re-measure of the best of 1 fp16 GEMM case: {B} "
        "(2 larger cases skipped, 1 other case skipped, 1 errored)",
    )


def test_a_skipped_case_of_the_same_size_as_the_largest_is_not_larger():
    same = gemm(2048, status="skipped")
    same["id"] += "_TN"
    cases = [gemm(1024, 200.0, (190.0, 210.0)), gemm(2048, 100.0, (95.0, 105.0)), same]
    assert outcome(make_profile(cases), peak()) == (
        "PASS",
        f"lower bound 190 clears >= 128; confirmation re-measure of the best of 2 fp16 GEMM cases: {A} "
        "(1 other case skipped)",
    )


def test_every_case_errored_says_how_many_and_nothing_more():
    cases = [gemm(1024, status="error"), gemm(2048, 50.0, correct=False)]
    assert outcome(make_profile(cases), peak()) == ("ERROR", "all 2 fp16 GEMM cases errored")
    assert outcome(make_profile([gemm(1024, status="error")]), peak()) == ("ERROR", "all 1 fp16 GEMM case errored")


def test_cases_above_the_datasheet_ceiling_are_counted_with_the_errored():
    profile = make_profile([gemm(1024, 700.0, (690.0, 710.0))], datasheet=SHEET)  # A is confirmed
    profile["measurements"].append(gemm(2048, 50_000.0, (49_000.0, 51_000.0)))
    assert outcome(profile, peak()) == (
        "PASS",
        f"lower bound 690 clears >= 128; confirmation re-measure of the best of 1 fp16 GEMM case: {A} "
        "(1 errored, 1 above the datasheet ceiling)",
    )


def test_a_confirmation_above_the_datasheet_ceiling_is_an_error():
    profile = make_profile([gemm(1024, 700.0, (690.0, 710.0))], datasheet=SHEET)
    confirmed(profile, **_raw_samples(2 * 1024**3, 50_000.0, (49_000.0, 51_000.0)))
    verdict = judged(profile, peak())
    assert (verdict["status"], verdict["measured"], verdict["lower"], verdict["upper"]) == (
        "ERROR",
        50_000.0,
        None,
        None,
    )
    assert verdict["reason"] == (
        f"the confirmation of {A}: 5e+04 TFLOPS fp16 exceeds 1.05 x the datasheet peak 989.4 TFLOPS of NVIDIA H100 "
        "SXM5 (ceiling 1039 TFLOPS per device): a timing or FLOP-count error, not a result"
    )


def test_a_passing_selection_without_a_confirmation_says_why_it_cannot_pass():
    profile = make_profile([gemm(1024, 200.0, (190.0, 210.0))], confirmed=False)
    assert outcome(profile, peak()) == (
        "INCONCLUSIVE",
        f"lower bound 190 clears >= 128; best of 1 fp16 GEMM case: {A}; not confirmed: the best of several cases "
        "is biased upward and no independent re-measure of it is stored",
    )


def test_a_confirmation_that_gave_a_wrong_answer_is_an_error():
    """The best case passed its check but its re-measure did not: the device gave two different answers to the
    same inputs, as an errored confirmation (before: judged on the selection alone, with a reason saying no
    re-measure was stored, which was not what happened)."""
    profile = confirmed(make_profile([gemm(1024, 200.0, (190.0, 210.0))]), correct=False)
    assert outcome(profile, peak()) == (
        "ERROR",
        f"the confirmation re-measure of {A} gave a wrong answer (it failed its correctness check, though the case "
        "itself passed)",
    )


def test_an_unchecked_confirmation_says_so():
    profile = confirmed(make_profile([gemm(1024, 200.0, (190.0, 210.0))]), correct=None)
    assert outcome(profile, peak()) == (
        "INCONCLUSIVE",
        "lower bound 190 clears >= 128, but the confirmation's result was not checked against a reference "
        f"(unchecked); confirmation re-measure of the best of 1 fp16 GEMM case: {A}",
    )


def test_an_unchecked_confirmation_of_an_at_most_criterion_names_its_upper_bound():
    profile = confirmed(make_profile([gemm(1024, 200.0, (190.0, 210.0))]), correct=None)
    assert outcome(profile, peak("<", 500.0)) == (
        "INCONCLUSIVE",
        "upper bound 210 clears < 500, but the confirmation's result was not checked against a reference "
        f"(unchecked); confirmation re-measure of the best of 1 fp16 GEMM case: {A}",
    )


def test_events_at_exactly_the_host_clock_tolerance_are_trusted():
    assert HOST_CLOCK_TOLERANCE == 1.15
    profile = confirmed(make_profile([gemm(1024, 200.0, (190.0, 210.0))]), events_vs_host_clock=1.15)
    assert judged(profile, peak())["status"] == "PASS"
    profile = confirmed(make_profile([gemm(1024, 200.0, (190.0, 210.0))]), events_vs_host_clock=1.16)
    assert outcome(profile, peak()) == (
        "INCONCLUSIVE",
        "lower bound 190 clears >= 128, but device events read 1.16x the host clock for the same calls (more than "
        f"1.15x): the event timing is suspect; confirmation re-measure of the best of 1 fp16 GEMM case: {A}",
    )


def test_without_a_confirmation_a_case_without_an_interval_counts_as_its_figure():
    cases = [gemm(1024, 200.0, (150.0, 210.0)), gemm(2048, 180.0, no_interval=True)]
    verdict = judged(make_profile(cases, confirmed=False), peak(">=", 500.0))
    assert (verdict["status"], verdict["measured"], verdict["lower"], verdict["upper"]) == ("FAIL", 200.0, 180.0, 210.0)
    assert verdict["reason"] == f"upper bound 210 misses >= 500; best of 2 fp16 GEMM cases: {A}"


# ----------------------------------------------------------------------------------- tflops_per_watt reasons
def test_tflops_per_watt_of_a_dtype_the_run_did_not_measure_names_what_ran():
    profile = make_profile([gemm(1024, 100.0, dtype="bf16")])
    profile["settings"]["dtypes"] = ["bf16", "fp32"]
    assert outcome(profile, per_watt()) == (
        "INCONCLUSIVE",
        "fp16 TFLOPS/W is unknown: no fp16 GEMM case ran (bf16, fp32 ran)",
    )
    profile["settings"]["dtypes"] = []
    assert outcome(profile, per_watt()) == (
        "INCONCLUSIVE",
        "fp16 TFLOPS/W is unknown: no fp16 GEMM case ran (no dtype ran)",
    )


def test_tflops_per_watt_with_its_parts_stored_as_null_is_unknown():
    profile = make_profile([gemm(1024, 100.0)])
    profile["summary"] = {"tflops_per_watt": None, "power_note": "no power source: rapl is absent"}
    assert outcome(profile, per_watt()) == ("INCONCLUSIVE", "fp16 TFLOPS/W is unknown: no power source: rapl is absent")


def test_parts_of_the_summary_stored_as_null_are_unknown_not_a_crash():
    profile = make_profile(tflops_per_watt=2.0, tflops_per_watt_ci=(1.8, 2.2))
    profile["summary"]["tflops_per_watt_quality"] = None
    assert outcome(profile, per_watt()) == ("INCONCLUSIVE", "power quality None is not a measured level (Q1-Q3)")
    profile = make_profile(tflops_per_watt=2.0, tflops_per_watt_ci=(1.8, 2.2))
    profile["summary"].update(tflops_per_watt_scope=None, tflops_per_watt_covers_reason=None)
    profile["summary"]["tflops_per_watt_covers"] = {"fp16": False}
    assert outcome(profile, per_watt()) == (
        "INCONCLUSIVE",
        "the power source does not cover the device under test: coverage not recorded",
    )
    profile = make_profile()
    profile["support"] = None
    assert outcome(profile, families(1)) == (
        "INCONCLUSIVE",
        "interval [0, 3] straddles the threshold (>= 1); supported: none; unsupported: none; unchecked: cnn, rnn, lstm",
    )


def test_estimated_power_reason_word_for_word():
    verdict = judged(make_profile(tflops_per_watt=5.0, quality="Q0"), per_watt())
    assert (verdict["status"], verdict["lower"], verdict["upper"]) == ("INCONCLUSIVE", None, None)
    assert verdict["reason"] == "estimated power (Q0) never decides a verdict"


def test_a_power_source_that_does_not_cover_the_device_says_why():
    profile = make_profile(tflops_per_watt=2.0, tflops_per_watt_ci=(1.8, 2.2))
    profile["summary"]["tflops_per_watt_covers"] = {"fp16": False}
    profile["summary"]["tflops_per_watt_covers_reason"] = {"fp16": "RAPL measures the CPU package(s), not cuda:0"}
    assert outcome(profile, per_watt()) == (
        "INCONCLUSIVE",
        "the power source does not cover the device under test: RAPL measures the CPU package(s), not cuda:0",
    )
    profile["summary"]["tflops_per_watt_covers"] = {"fp16": None}
    del profile["summary"]["tflops_per_watt_covers_reason"]
    assert outcome(profile, per_watt()) == (
        "INCONCLUSIVE",
        "cannot tell whether the power source covers the device under test: coverage not recorded",
    )


CPU = {"backend": "cpu", "id": "cpu", "properties": {}}


def _cuda(uuid: str | None = "GPU-1b1b") -> dict[str, Any]:
    return {"backend": "cuda", "id": "cuda:0", "properties": {"uuid": uuid}}


def _old_file(name: str, scope: str, device: dict[str, Any], spec: str = "auto", **extra: Any) -> tuple[str, str]:
    """The verdict (> 1 TFLOPS/W, measured 1.8-2.2) of a file written before coverage was recorded."""
    profile = make_profile(tflops_per_watt=2.0, tflops_per_watt_ci=(1.8, 2.2), scope=scope)
    del profile["summary"]["tflops_per_watt_covers"], profile["summary"]["tflops_per_watt_covers_reason"]
    profile["device"] = {**profile["device"], **device}
    profile["power"] = {**profile["power"], "spec": spec, "source": {"name": name, "scope": scope, "quality": "Q2"}}
    profile["power"]["source"].update(extra)
    return outcome(profile, per_watt())


def _unknown(name: str, scope: str, device: dict[str, Any]) -> tuple[str, str]:
    return (
        "INCONCLUSIVE",
        "cannot tell whether the power source covers the device under test: written before coverage was recorded; "
        "without it only RAPL package or platform power of a CPU, or NVML found by the device's UUID (no MIG), is "
        f"judged (here: {name} ({scope}) on a {device.get('backend', 'cpu')} device)",
    )


@pytest.mark.parametrize(
    "source, device, spec, extra",
    [
        (("rapl", "package"), CPU, "auto", {}),
        (("rapl", "platform"), CPU, "auto", {}),
        (("nvml", "board"), _cuda(), "auto", {}),
        (("nvml", "board"), _cuda(), "nvml", {}),
    ],
)
def test_an_old_file_is_judged_where_the_old_code_could_not_pick_the_wrong_device(source, device, spec, extra):
    assert _old_file(*source, device, spec, **extra) == ("PASS", "lower bound 1.8 clears > 1")


@pytest.mark.parametrize(
    "source, device, spec, extra",
    [
        (("rapl", "package"), _cuda(), "auto", {}),  # RAPL cannot see a GPU
        (("rapl", "board"), CPU, "auto", {}),
        (("amdsmi", "board"), CPU, "auto", {}),
        (("amdsmi", "board"), _cuda(), "auto", {}),
        (("nvml", "board"), CPU, "auto", {}),
        (("nvml", "board"), _cuda(uuid=None), "auto", {}),  # NVML was not found by the UUID torch reported
        (("nvml", "board"), _cuda(uuid=""), "auto", {}),
        (("nvml", "board"), _cuda(), "auto", {"mig": True}),  # a MIG slice: the board is shared
        (("nvml", "board"), _cuda(), "nvml:1", {}),  # an index the user chose: maybe another board
    ],
)
def test_an_old_file_is_not_judged_where_the_old_code_could_pick_the_wrong_device(source, device, spec, extra):
    assert _old_file(*source, device, spec, **extra) == _unknown(*source, {**CPU, **device})


def test_an_old_file_with_a_figure_but_no_source_says_so():
    profile = make_profile(tflops_per_watt=2.0, tflops_per_watt_ci=(1.8, 2.2), scope="package")
    del profile["summary"]["tflops_per_watt_covers"], profile["summary"]["tflops_per_watt_covers_reason"]
    profile["device"] = {**profile["device"], **CPU}
    profile["power"] = {**profile["power"], "source": None}
    assert outcome(profile, per_watt())[1].endswith("(here: no source)")


# ----------------------------------------------------------------------------------------- the audit's doubts
def _edited(profile: dict[str, Any], *indexes: int, by: float = 1.25) -> dict[str, Any]:
    """``profile`` with the stored TFLOPS of these measurements raised ``by``, as a hand edit would."""
    for i in indexes:
        profile["measurements"][i]["tflops"] *= by
    return profile


def test_an_edited_case_keeps_a_pass_from_passing_and_is_named():
    profile = _edited(make_profile([gemm(1024, 200.0, (190.0, 210.0)), gemm(2048, 150.0, (140.0, 160.0))]), 1)
    assert outcome(profile, peak()) == (
        "INCONCLUSIVE",
        f"lower bound 190 clears >= 128; confirmation re-measure of the best of 1 fp16 GEMM case: {A} (1 errored), "
        f"but {B}: edited or corrupt: stored tflops 187.5, raw samples give 150",
    )


def test_an_edited_case_is_appended_to_a_fail():
    profile = _edited(make_profile([gemm(1024, 100.0, (95.0, 105.0)), gemm(2048, 90.0, (85.0, 95.0))]), 1)
    assert outcome(profile, peak()) == (
        "FAIL",
        f"upper bound 105 misses >= 128; confirmation re-measure of the best of 1 fp16 GEMM case: {A} (1 errored); "
        f"{B}: edited or corrupt: stored tflops 112.5, raw samples give 90",
    )


def test_edits_of_another_dtype_or_metric_do_not_count():
    cases = [gemm(1024, 200.0, (190.0, 210.0)), gemm(1024, 90.0, (85.0, 95.0), dtype="bf16")]
    profile = _edited(make_profile(cases, support={"cnn": True}), 1)
    assert judged(profile, peak())["status"] == "PASS"
    assert outcome(profile, families(1, ("cnn",))) == (
        "PASS",
        "lower bound 1 clears >= 1; supported: cnn; unsupported: none; unchecked: none",
    )


@pytest.mark.parametrize(
    "edited, more", [(2, ""), (3, "; 1 more edited or corrupt"), (4, "; 2 more edited or corrupt")]
)
def test_two_edited_cases_are_named_and_the_rest_counted(edited, more):
    sizes = (1024, 2048, 4096, 8192, 512)
    profile = make_profile([gemm(size, 100.0 + i, (95.0 + i, 105.0 + i)) for i, size in enumerate(sizes)])
    profile = _edited(profile, *range(edited), by=2.0)
    status, reason = outcome(profile, peak())
    named = "; ".join(
        f"{ID.format(size)}: edited or corrupt: stored tflops {2 * (100 + i)}, raw samples give {100 + i}"
        for i, size in enumerate(sizes[:2])
    )
    assert status == "FAIL"
    assert reason.endswith(f" ({edited} errored); {named}{more}")


def test_a_file_modified_since_it_was_sealed_is_never_a_pass():
    sealed = seal(make_profile([gemm(1024, 200.0, (190.0, 210.0))], support={"cnn": False}))
    assert judged(sealed, peak())["status"] == "PASS"
    sealed["created_utc"] = "2026-11-24T10:00:00Z"  # anything covered by the digest
    message = digest_status(sealed).message
    assert message.startswith("modified since measured: the content digest does not match")
    assert outcome(sealed, peak()) == (
        "INCONCLUSIVE",
        f"lower bound 190 clears >= 128; confirmation re-measure of the best of 1 fp16 GEMM case: {A}, but {message}",
    )
    assert outcome(sealed, families(1, ("cnn",))) == (
        "FAIL",
        f"upper bound 0 misses >= 1; supported: none; unsupported: cnn; unchecked: none; {message}",
    )


def test_an_edited_case_and_a_modified_file_are_both_named():
    sealed = seal(make_profile([gemm(1024, 200.0, (190.0, 210.0)), gemm(2048, 150.0, (140.0, 160.0))]))
    sealed = _edited(sealed, 1)
    message = digest_status(sealed).message
    assert outcome(sealed, peak()) == (
        "INCONCLUSIVE",
        f"lower bound 190 clears >= 128; confirmation re-measure of the best of 1 fp16 GEMM case: {A} (1 errored), "
        f"but {B}: edited or corrupt: stored tflops 187.5, raw samples give 150; {message}",
    )


def _headline_on_gemm(edited: tuple[int, ...] = (0, 1, 2), edit_summary: bool = False) -> dict[str, Any]:
    """2.0 TFLOPS/W (1.8-2.2) whose headline energy window is carried by the fp16 GEMM case B; C carries a sweep
    window, A none; the stored TFLOPS of the ``edited`` cases (0: A, 1: B, 2: C) are doubled."""
    profile = make_profile(
        [gemm(1024, 200.0, (190.0, 210.0)), gemm(2048, 150.0, (140.0, 160.0)), gemm(4096, 120.0, (115.0, 125.0))],
        tflops_per_watt=2.0,
        tflops_per_watt_ci=(1.8, 2.2),
    )
    carrier = profile["measurements"].pop()
    profile["measurements"][1]["energy"] = {**carrier["energy"], "case": B}
    profile["measurements"][2]["energy"] = {**carrier["energy"], "case": C, "kind": "sweep"}
    if edit_summary:
        profile["summary"]["tflops_per_watt"]["fp16"] = 2.5
    return _edited(profile, *edited, by=2.0)


def test_tflops_per_watt_doubts_the_timed_median_of_its_headline_case_only():
    assert outcome(_headline_on_gemm(), per_watt()) == (
        "INCONCLUSIVE",
        f"lower bound 1.8 clears > 1, but {B}: edited or corrupt: stored tflops 300, raw samples give 150",
    )


def test_tflops_per_watt_names_an_edited_figure_and_its_headline_case():
    assert outcome(_headline_on_gemm((1,), edit_summary=True), per_watt()) == (
        "INCONCLUSIVE",
        "fp16 TFLOPS/W is unknown: no power source gave a reading; "
        "summary: edited or corrupt: stored tflops_per_watt.fp16 2.5, its joules and work give 2; "
        f"{B}: edited or corrupt: stored tflops 300, raw samples give 150",
    )


def test_the_peak_names_an_edited_headline_case_once():
    assert outcome(_headline_on_gemm(), peak()) == (
        "ERROR",
        f"all 3 fp16 GEMM cases errored; {A}: edited or corrupt: stored tflops 400, raw samples give 200; "
        f"{B}: edited or corrupt: stored tflops 300, raw samples give 150; 1 more edited or corrupt",
    )
