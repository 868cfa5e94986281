"""Fleets in the reading commands: ``plot --kind fleet``, ``report DIR``, ``results DIR``, ``check DIR`` and
``compare DIR DIR``. Fleet directories are built here from conftest's profile, one per device, with a fleet block
and (optionally) a fleet.json; a slow device is made by stretching its raw samples."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import SAMPLES_S, STATS, TFLOPS, TFLOPS_CI, make_measurement, make_profile

from npucheck.cli import cli
from npucheck.fleetfile import FLEET_FILE, profile_stem, write_summary
from npucheck.read import plot as plotting
from npucheck.store import iter_results, save_result

LOW_TARGET = """format = 1
name = "tiny"
title = "a target every test device passes"
source = "tests"

[[criteria]]
metric = "peak_tflops"
dtype = "fp16"
op = ">="
threshold = 1e-6
"""


def _device_profile(host: str, local_rank: int, rank: int, world: int, slow: float = 1.0) -> dict[str, Any]:
    """One fleet member's profile: conftest's, on ``host``, its samples stretched by ``slow`` (2.0: half speed)."""
    stats = dict(STATS)
    for key in ("median_s", "ci_low_s", "ci_high_s", "q1_s", "q3_s", "mean_s", "min_s", "max_s"):
        stats[key] = STATS[key] * slow
    tflops, ci = TFLOPS / slow, [TFLOPS_CI[0] / slow, TFLOPS_CI[1] / slow]
    measurement = make_measurement(samples_s=[s * slow for s in SAMPLES_S], stats=stats, tflops=tflops, tflops_ci=ci)
    profile = make_profile(measurements=[measurement])
    profile["summary"]["peak_tflops"] = {"fp16": tflops}
    profile["summary"]["peak"]["fp16"].update(tflops=tflops, ci_low=ci[0], ci_high=ci[1])
    profile["environment"]["hostname"] = host
    profile["environment"]["fleet"] = {
        "rank": rank,
        "local_rank": local_rank,
        "world_size": world,
        "local_world_size": world,
        "launcher": "torchrun",
        "run_id": "run-1",
        "started_utc": "2026-11-23T10:00:00Z",
        "cpu_cores": [local_rank],
        "cpu_cores_shared": False,
        "siblings": [],
    }
    return profile


def make_fleet(
    directory: Path,
    slow: dict[int, float] | None = None,
    missing: tuple[int, ...] = (),
    world: int = 4,
    host: str = "vm",
    summary: bool = True,
) -> Path:
    """A fleet directory of ``world`` CPU ranks on ``host``: rank r is ``slow[r]`` times slower; the ranks in
    ``missing`` have no profile (and are ``missing`` in fleet.json)."""
    slow = slow or {}
    directory.mkdir(parents=True, exist_ok=True)
    members = []
    for rank in range(world):
        stem = profile_stem(host, rank, "cpu")
        member: dict[str, Any] = {"rank": rank, "local_rank": rank, "host": host, "device": "cpu"}
        if rank in missing:
            member.update(status="missing", profile=None, reason="no profile arrived: the rank timed out after 600 s")
        else:
            save_result(_device_profile(host, rank, rank, world, slow.get(rank, 1.0)), directory / f"{stem}.json")
            member.update(status="ok", profile=f"{stem}.json", reason=None)
        members.append(member)
    if summary:
        write_summary(
            directory,
            {
                "schema": "npucheck.fleet-summary",
                "schema_version": 1,
                "npucheck_version": "0.1.0",
                "created_utc": "2026-11-23T10:10:00Z",
                "started_utc": "2026-11-23T10:00:00Z",
                "launcher": "torchrun",
                "run_id": "run-1",
                "command": ["npucheck", "run", "--fleet", str(directory)],
                "world_size": world,
                "hosts": [host],
                "settings": {"suite": "quick", "kernels": None, "dtypes": None, "timeout_s": 600.0},
                "members": members,
                "analysis": None,
            },
        )
    return directory


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"COLUMNS": "250"})  # one line per device, unwrapped (tmp_path names are long)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def fleets(tmp_path) -> tuple[Path, Path]:
    """Last month's fleet (4 equal devices) and this month's: vm-1-cpu at half speed, vm-3-cpu missing."""
    base = make_fleet(tmp_path / "october")
    other = make_fleet(tmp_path / "november", slow={1: 2.0}, missing=(3,))
    return base, other


def _target_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(LOW_TARGET)
    return path


# ------------------------------------------------------------------------------------------------------ results
def test_results_skips_the_fleet_summary_and_names_it(runner, fleets):
    _, fleet = fleets
    assert [p.name for p, _ in iter_results(fleet)] == ["vm-0-cpu.json", "vm-1-cpu.json", "vm-2-cpu.json"]
    result = runner.invoke(cli, ["results", str(fleet)])
    assert result.exit_code == 0, result.output
    assert "skipped" not in result.stderr  # fleet.json is no unreadable result profile
    assert "3 result profile(s)" in result.stdout
    assert f"fleet summary: {fleet / FLEET_FILE} (4 members, 1 in error or missing;" in result.stdout
    as_csv = runner.invoke(cli, ["results", str(fleet), "--format", "csv"])
    assert as_csv.exit_code == 0 and as_csv.stdout.count("\n") == 4  # header and 3 rows: the line went to stderr
    assert "fleet summary:" in as_csv.stderr and "fleet summary" not in as_csv.stdout


def test_results_of_a_folder_of_fleets_lists_its_own_files_and_names_the_fleets(runner, tmp_path):
    make_fleet(tmp_path / "a")
    make_fleet(tmp_path / "b", world=2)
    save_result(make_profile(), tmp_path / "single.json")
    result = runner.invoke(cli, ["results", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "1 result profile(s)" in result.stdout and "single.json" in result.stdout
    assert (
        f"fleet directory: {tmp_path / 'a'}" in result.stdout and f"fleet directory: {tmp_path / 'b'}" in result.stdout
    )
    assert "fleet summary:" not in result.stdout


def test_results_names_an_unreadable_fleet_summary_on_stderr(runner, fleets):
    _, fleet = fleets
    (fleet / FLEET_FILE).write_text('{"schema": "npucheck.fleet-summary", "schema_version": 7}')
    result = runner.invoke(cli, ["results", str(fleet)])
    assert result.exit_code == 0 and "3 result profile(s)" in result.stdout
    assert "skipped fleet summary" in result.stderr and "upgrade npucheck" in result.stderr


# ------------------------------------------------------------------------------------------------------ check
def test_check_of_a_fleet_judges_every_device_and_names_the_missing_member(runner, fleets, tmp_path):
    _, fleet = fleets
    result = runner.invoke(cli, ["check", str(fleet), "--target", str(_target_file(tmp_path))])
    assert result.exit_code == 3, result.output  # every device PASSes, but a member is missing
    lines = result.stdout.splitlines()
    assert sum(line.startswith("vm/cpu (vm-") and ": PASS — tiny PASS" in line for line in lines) == 3
    assert "vm-3-cpu: MISSING — no profile arrived: the rank timed out after 600 s" in result.stdout
    assert lines[0] == lines[-1] and "INCONCLUSIVE" in lines[0] and "1 fleet member(s) in error or missing" in lines[0]


def test_check_of_a_complete_fleet_exits_0_when_all_pass_and_1_on_a_fail(runner, tmp_path):
    fleet = make_fleet(tmp_path / "f", world=3)
    passing = runner.invoke(cli, ["check", str(fleet), "--target", str(_target_file(tmp_path))])
    assert passing.exit_code == 0, passing.output
    assert passing.stdout.splitlines()[0].startswith(f"{fleet}: PASS — 3 devices judged: 3 PASS")
    failing = runner.invoke(cli, ["check", str(fleet), "--target", "miit-2020-cloud"])  # 128 TFLOPS: FAIL
    assert failing.exit_code == 1 and "3 FAIL" in failing.stdout


def test_check_of_a_plain_folder_counts_an_unreadable_file_as_undecided(runner, tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    save_result(make_profile(), folder / "one.json")
    (folder / "broken.json").write_text('{"schema_version": 2, ')
    result = runner.invoke(cli, ["check", str(folder), "--target", str(_target_file(tmp_path))])
    assert result.exit_code == 3, result.output
    assert "bench-01/cpu (one.json): PASS" in result.stdout
    assert "npucheck: skipped" in result.stderr and "broken.json" in result.stderr and "Traceback" not in result.output


def test_check_of_an_empty_folder_is_one_line_and_exit_2(runner, tmp_path):
    result = runner.invoke(cli, ["check", str(tmp_path)])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "no readable result profile" in result.output


# ------------------------------------------------------------------------------------------------------ compare
def test_compare_of_two_fleets_names_the_slower_and_missing_devices(runner, fleets):
    base, other = fleets
    result = runner.invoke(cli, ["compare", str(base), str(other)])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip().startswith("vm-")}
    assert "regression" in rows["vm-1-cpu"] and "0.500" in rows["vm-1-cpu"]
    assert "missing" in rows["vm-3-cpu"] and "noise" in rows["vm-0-cpu"]
    assert result.stdout.rstrip().endswith("slower: vm-1-cpu")
    assert "4 devices compared: 1 slower, 1 missing (figures in base only), 2 unchanged (within noise)" in result.stdout
    failing = runner.invoke(cli, ["compare", str(base), str(other), "--fail-on-regression"])
    assert failing.exit_code == 1 and "1 device(s) slower" in failing.stderr
    same = runner.invoke(cli, ["compare", str(base), str(base), "--fail-on-regression"])
    assert same.exit_code == 0 and "4 unchanged (within noise)" in same.stdout


@pytest.mark.parametrize("fmt", ["json", "csv", "markdown"])
def test_compare_of_two_fleets_in_every_format(runner, fleets, fmt):
    base, other = fleets
    result = runner.invoke(cli, ["compare", str(base), str(other), "--format", fmt])
    assert result.exit_code == 0, result.output
    if fmt == "json":
        document = json.loads(result.stdout)
        verdicts = {d["key"]: d["verdict"] for d in document["devices"]}
        assert verdicts == {"vm/0/cpu": "noise", "vm/1/cpu": "regression", "vm/2/cpu": "noise", "vm/3/cpu": "missing"}
        assert document["summary"].startswith("4 devices compared: 1 slower")
    elif fmt == "csv":
        lines = result.stdout.splitlines()
        assert lines[0].startswith("key,") and len(lines) == 5 and "regression" in lines[2]
    else:
        assert "| vm-1-cpu" in result.stdout and "regression" in result.stdout and "1 slower" in result.stdout


def test_compare_of_a_directory_with_a_file_is_one_line_and_exit_2(runner, fleets):
    base, other = fleets
    for args in ([str(base), str(other / "vm-0-cpu.json")], [str(other / "vm-0-cpu.json"), str(base)]):
        result = runner.invoke(cli, ["compare", *args])
        assert result.exit_code == 2, result.output
        assert result.output.count("\n") == 1 and "not both" in result.output
    three = runner.invoke(cli, ["compare", str(base), str(other), str(other)])
    assert three.exit_code == 2 and "exactly one BASE and one OTHER" in three.output


# ------------------------------------------------------------------------------------------------------ plot
def test_plot_fleet_writes_png_and_svg(runner, fleets, tmp_path):
    _, fleet = fleets
    for ext, magic in (("png", b"\x89PNG"), ("svg", b"<?xml")):
        out = tmp_path / "plots" / f"fleet.{ext}"
        result = runner.invoke(cli, ["plot", "--kind", "fleet", str(fleet), "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert out.read_bytes().startswith(magic)
    width, height = _png_size((tmp_path / "plots" / "fleet.png").read_bytes())
    assert width >= 900 and height >= 500


def test_the_fleet_figure_marks_and_names_the_flagged_device(fleets):
    from npucheck.read.fleet import analyse, load_fleet

    _, fleet = fleets
    fig = plotting.build("fleet", [], [], analysed=analyse(load_fleet(fleet), 0.1), tolerance=0.1)
    ax = fig.get_axes()[0]
    assert "1 flagged" in fig.get_suptitle() and "peak fp16" in ax.get_ylabel()
    assert [t.get_text() for t in ax.texts if t.get_text().startswith("vm-1-cpu")] == ["vm-1-cpu (0.50×)"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["vm-0-cpu", "vm-1-cpu", "vm-2-cpu", "vm-3-cpu"]
    medians = [line for line in ax.collections if line.get_label() == "group median"]
    assert medians and abs(medians[0].get_segments()[0][0][1] - TFLOPS) < 1e-9
    threshold = [line for line in ax.collections if line.get_label().startswith("threshold")]
    assert abs(threshold[0].get_segments()[0][0][1] - TFLOPS * 0.9) < 1e-9


def test_the_fleet_figure_stays_readable_with_a_thousand_devices(fleets):
    import pandas as pd

    from npucheck.read.fleet import analyse, load_fleet

    _, fleet = fleets
    one = analyse(load_fleet(fleet), 0.1)
    copies = []
    for index in range(250):  # 1,000 rows: the 4 devices on 250 hosts
        copy = one.copy()
        copy["host"] = f"h{index}"
        copy["profile"] = [f"h{index}-{r}-cpu.json" for r in range(len(copy))]
        copies.append(copy)
    big = pd.concat(copies, ignore_index=True)
    fig = plotting.fleet(big, 0.1)
    width, height = fig.get_size_inches()
    assert width <= plotting.FLEET_MAX_SIZE[0] and height <= plotting.FLEET_MAX_SIZE[1]
    ax = fig.get_axes()[0]
    assert 20 <= len(ax.get_xticklabels()) <= 45  # thinned, not 1,000 names
    named = [t for t in ax.texts if t.get_text().startswith("h")]
    assert len(named) == plotting.FLEET_ANNOTATED_FLAGS
    assert any(t.get_text().startswith("+225 more flagged") for t in ax.texts)
    assert "1000 devices on 250 hosts, 250 flagged" in fig.get_suptitle()
    assert _png_size(plotting.render(fig, "png"))[0] <= plotting.FLEET_MAX_SIZE[0] * 120


def test_plot_refuses_what_does_not_fit_the_kind(runner, fleets, tmp_path):
    base, other = fleets
    out = str(tmp_path / "p.png")
    cases = [
        (["plot", "--kind", "fleet", str(other / "vm-0-cpu.json"), "-o", out], "takes a fleet directory, not a file"),
        (["plot", "--kind", "fleet", str(base), str(other), "-o", out], "exactly 1 fleet directory, got 2"),
        (["plot", str(other), "-o", out], "is a directory; --kind sweep takes result files (a fleet: --kind fleet)"),
        (
            ["plot", str(other / "vm-0-cpu.json"), "--tolerance", "0.2", "-o", out],
            "--tolerance applies to --kind fleet",
        ),
    ]
    for args, message in cases:
        result = runner.invoke(cli, args)
        assert result.exit_code == 2 and result.output.count("\n") == 1 and message in result.output, result.output
    assert not (tmp_path / "p.png").exists()


# ------------------------------------------------------------------------------------------------------ report
def test_html_fleet_report_has_the_flagged_device_the_missing_member_and_the_plot(runner, fleets, tmp_path):
    base, other = fleets
    summary = json.loads((other / FLEET_FILE).read_text())
    summary["members"][3]["reason"] = "<script>alert('x')</script> timed out"
    write_summary(other, summary)
    out = tmp_path / "report.html"
    result = runner.invoke(cli, ["report", str(other), str(base), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "4 devices on 1 host: 3 ok, 1 missing" in text
    assert "1 flagged: more than 10% below the median of the others in their group (vm-1-cpu)" in text
    assert "<h3>vm-1-cpu (" in text and "peak fp16 50% below its 2 peers (0.50×; 95% CI 0.49–0.51×)" in text
    assert "<td>vm-3-cpu</td>" in text and "&lt;script&gt;alert(" in text and "&lt;/script&gt; timed out" in text
    assert "<script>" not in text and text.count("data:image/png;base64,") == 1
    assert "Comparison with" in text and "<td class='FAIL'>regression</td>" in text and "1 slower" in text


def test_markdown_fleet_report_puts_the_plot_beside_it_and_takes_the_tolerance(runner, tmp_path):
    fleet = make_fleet(tmp_path / "f", slow={2: 1.15})  # 13% slower: flagged at 10%, not at 20%
    out = tmp_path / "r.md"
    result = runner.invoke(cli, ["report", str(fleet), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "![Each device against its group (tolerance 10%)](r_files/fleet.png)" in text
    assert (tmp_path / "r_files" / "fleet.png").read_bytes().startswith(b"\x89PNG")
    assert "**1 flagged: more than 10% below the median of the others in their group (vm-2-cpu)**" in text
    loose = runner.invoke(cli, ["report", str(fleet), "--tolerance", "0.2", "-o", str(out)])
    assert loose.exit_code == 0 and "**0 flagged: more than 20% below" in out.read_text()


def test_report_refuses_a_fleet_mixed_with_a_file_and_a_tolerance_without_a_fleet(runner, fleets, tmp_path):
    base, other = fleets
    out = str(tmp_path / "r.html")
    profile = str(other / "vm-0-cpu.json")
    for args, message in (
        ([str(other), profile], "fleet directories only"),
        ([profile, str(base)], "fleet directories only"),
        ([profile, "--tolerance", "0.2"], "--tolerance applies to a fleet report only"),
    ):
        result = runner.invoke(cli, ["report", *args, "-o", out])
        assert result.exit_code == 2 and result.output.count("\n") == 1 and message in result.output, result.output
    assert not (tmp_path / "r.html").exists()


# ------------------------------------------------------------------------------------------------------ no torch
def test_the_fleet_forms_of_the_reading_commands_do_not_import_torch(fleets, tmp_path):
    import subprocess
    import sys

    base, other = fleets
    commands = [
        ["results", str(other)],
        ["check", str(other)],
        ["compare", str(base), str(other)],
        ["plot", "--kind", "fleet", str(other), "-o", str(tmp_path / "p.png")],
        ["report", str(other), str(base), "-o", str(tmp_path / "r.html")],
    ]
    code = (
        "import sys\nfrom npucheck.cli import cli\n"
        f"for argv in {commands!r}:\n"
        "    try:\n        cli.main(argv, standalone_mode=False)\n    except SystemExit as e:\n"
        "        assert e.code in (0, 1, 3), (argv, e.code)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert (tmp_path / "p.png").exists() and (tmp_path / "r.html").exists()


def test_a_fleet_where_every_member_is_missing_is_reported_not_plotted(runner, tmp_path):
    fleet = make_fleet(tmp_path / "lost", missing=(0, 1), world=2)
    plot = runner.invoke(cli, ["plot", "--kind", "fleet", str(fleet), "-o", str(tmp_path / "p.png")])
    assert (
        plot.exit_code == 2 and plot.output.count("\n") == 1 and "no device of the fleet has a measured" in plot.output
    )
    report = runner.invoke(cli, ["report", str(fleet), "-o", str(tmp_path / "r.md")])
    assert report.exit_code == 0, report.output
    text = (tmp_path / "r.md").read_text()
    assert "Fleet plot: not drawn, no device of the fleet" in text and "**2 missing or in error" in text
    check = runner.invoke(cli, ["check", str(fleet)])
    assert check.exit_code == 3 and check.stdout.count("MISSING —") == 2 and "0 devices judged" in check.stdout
