"""Issue 9: the sweep by matrix size with a marker per shape set and skipped sizes shown, compare plots whose
profiles stay visible, one rule for how many profiles each plot kind takes, labelled trace windows, and an HTML
report whose tables fit 1280 px with a bottom line at the top."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner
from conftest import make_measurement, make_profile
from test_compare_plot_report import _case, _energy, _pair, _power_profile

from npucheck.cli import cli
from npucheck.errors import UsageError
from npucheck.model import as_profile
from npucheck.read import plot as plotting
from npucheck.read import report as reporting
from npucheck.read import text
from npucheck.store import save_result


def _gemm(m: int, n: int, k: int, shape_set: str, seed: int, dtype: str = "fp16") -> dict:
    case = _case(f"gemm/{dtype}/m{m}_n{n}_k{k}_NN", 1e-4, seed, flops=2 * m * n * k, dtype=dtype)
    case.update(shape={"m": m, "n": n, "k": k, "layout": "NN"}, shape_set=shape_set)
    return case


def _shapes_profile() -> dict:
    """Square sizes (one skipped), a DeepBench server shape and a DeepBench matrix-vector shape."""
    skipped = make_measurement(
        id="gemm/fp16/m4096_n4096_k4096_NN",
        shape={"m": 4096, "n": 4096, "k": 4096, "layout": "NN"},
        flops=2 * 4096**3,
        status="skipped",
        reason="over the case budget",
        correct=None,
        samples_s=[],
        stats=None,
        tflops=None,
        tflops_ci=None,
    )
    return make_profile(
        measurements=[
            _gemm(256, 256, 256, "square", 1),
            _gemm(512, 512, 512, "square", 2),
            skipped,
            _gemm(5124, 700, 2048, "deepbench-server", 3),
            _gemm(3072, 1, 1024, "deepbench-server", 4),
        ]
    )


def _lines(ax) -> dict[str, object]:
    """The labelled data lines, errorbar containers' included."""
    lines = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
    lines |= {c.get_label(): c.lines[0] for c in ax.containers if c.lines and c.lines[0] is not None}
    return lines


# ------------------------------------------------------------------------------------------------------ sweep
def test_the_sweep_is_drawn_against_m_n_k_with_a_marker_per_shape_set():
    ax = plotting.sweep([_shapes_profile()]).get_axes()[0]
    assert "M·N·K" in ax.get_xlabel() and ax.get_xscale() == "log"
    lines = _lines(ax)
    square = lines["fp16, square"]
    assert list(square.get_xdata()) == [256.0**3, 512.0**3]  # M·N·K, not FLOPs (2·M·N·K)
    server, gemv = lines["fp16, deepbench-server"], lines["fp16, deepbench-server, matrix-vector"]
    assert list(server.get_xdata()) == [5124.0 * 700 * 2048] and list(gemv.get_xdata()) == [3072.0 * 1024]
    assert len({square.get_marker(), server.get_marker(), gemv.get_marker()}) == 3


def test_a_skipped_size_is_a_hollow_marker_where_it_would_have_been_with_a_legend_entry():
    ax = plotting.sweep([_shapes_profile()]).get_axes()[0]
    hollow = [
        line
        for line in ax.get_lines()
        if line.get_markerfacecolor() == "none" and 4096.0**3 in [float(x) for x in line.get_xdata()]
    ]
    assert hollow, "the skipped 4096³ GEMM is not drawn"
    assert hollow[0].get_marker() == _lines(ax)["fp16, square"].get_marker()
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert plotting.SKIPPED_LABEL in legend and "skipped (see reason)" == plotting.SKIPPED_LABEL
    assert ax.get_xlim()[1] > 4096.0**3  # the axis reaches the skipped size


def test_a_profile_without_skipped_sizes_has_no_skipped_legend_entry():
    profile = make_profile(measurements=[_gemm(256, 256, 256, "square", 1)])
    legend = [text.get_text() for text in plotting.sweep([profile]).get_axes()[0].get_legend().get_texts()]
    assert plotting.SKIPPED_LABEL not in legend


# ------------------------------------------------------------------------------------------------------ compare
def test_equal_points_of_two_profiles_are_nudged_apart_with_a_marker_and_legend_entry_each():
    base, _ = _pair()
    twin = copy.deepcopy(base)  # the same figures: the old plot drew one on top of the other
    ax = plotting.compare([base, twin], ["run A", "run B"]).get_axes()[0]
    lines = _lines(ax)
    a, b = lines["fp16 — run A"], lines["fp16 — run B"]
    assert list(a.get_ydata()) == list(b.get_ydata())
    assert all(xb > xa * 1.05 for xa, xb in zip(a.get_xdata(), b.get_xdata()))  # dodged on the log axis
    assert a.get_marker() != b.get_marker()
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert any("run A" in text for text in legend) and any("run B" in text for text in legend)
    assert "M·N·K" in ax.get_xlabel()


# ------------------------------------------------------------------------------------------------ count rule
@pytest.mark.parametrize(("kind", "count"), [("sweep", 2), ("efficiency", 2), ("trace", 2), ("compare", 1)])
def test_each_kind_refuses_a_profile_count_outside_its_rule_with_one_line(kind, count):
    with pytest.raises(UsageError) as caught:
        plotting.build(kind, [_power_profile()] * count, ["a"] * count, [])
    message = str(caught.value)
    assert "\n" not in message and f"--kind {kind} takes" in message and f"got {count}" in message


def test_the_rule_is_one_table_and_the_command_follows_and_documents_it(tmp_path):
    assert plotting.PROFILE_COUNTS == {
        "sweep": (1, 1),
        "efficiency": (1, 1),
        "trace": (1, 1),
        "compare": (2, None),
        "fleet": (1, 1),  # one fleet directory (tests/test_fleet_outputs.py)
        "roofline": (1, None),  # tests/test_memory_roofline.py
        "power-caps": (1, 1),  # tests/test_power_caps.py
    }
    runner = CliRunner()
    stored = save_result(make_profile(), tmp_path / "r.json")
    one = runner.invoke(cli, ["plot", str(stored), "--kind", "compare", "-o", str(tmp_path / "c.png")])
    assert one.exit_code == 2 and "--kind compare takes 2 or more results, got 1" in one.output
    assert one.output.count("\n") == 1 and not (tmp_path / "c.png").exists()
    two = runner.invoke(cli, ["plot", str(stored), str(stored), "--kind", "compare", "-o", str(tmp_path / "c.png")])
    assert two.exit_code == 0, two.output
    sweep = runner.invoke(cli, ["plot", str(stored), str(stored), "-o", str(tmp_path / "s.png")])
    assert sweep.exit_code == 2 and "--kind sweep takes exactly 1 result, got 2" in sweep.output
    help_text = " ".join(runner.invoke(cli, ["plot", "--help"]).output.split())
    assert "sweep, efficiency and trace take exactly one RESULT; compare takes two or more" in help_text


# ------------------------------------------------------------------------------------------------------ trace
def test_each_trace_window_is_labelled_with_its_case_and_kind():
    profile = _power_profile()
    for m, n in zip(profile["measurements"], (128, 256, 512)):
        m["shape"] = {"m": n, "n": n, "k": n, "layout": "NN"}
    ax = plotting.trace([profile]).get_axes()[0]
    texts = [text.get_text() for text in ax.texts]
    assert "idle" in texts
    assert "gemm fp16 512³ headline" in texts and "gemm fp16 128³ sweep" in texts


def test_many_trace_windows_are_numbered_with_a_key():
    profile = _power_profile()
    template = profile["measurements"][0]
    profile["measurements"] = []
    for index in range(20):
        m = copy.deepcopy(template)
        m["id"] = f"gemm/fp16/m{128 + index}"
        m["shape"] = {"m": 128 + index, "n": 128 + index, "k": 128 + index, "layout": "NN"}
        m["energy"]["start_unix"] = 1795600000.0 + 3 * index
        profile["measurements"].append(m)
    fig = plotting.trace([profile])
    numbers = [text.get_text() for text in fig.get_axes()[0].texts]
    assert numbers == [str(n) for n in range(1, 22)]  # the idle window and 20 cases
    key = [text.get_text() for text in fig.legends[0].get_texts()]
    assert key[0] == "1: idle" and key[-1] == "21: gemm fp16 147³ sweep"


# ------------------------------------------------------------------------------------------------------ report
def test_the_report_css_lets_every_table_shrink_to_the_page():
    css = reporting.CSS.replace("\n", "")
    assert re.search(r"th,td\{[^}]*overflow-wrap:anywhere", css)
    assert re.search(r"table\{[^}]*max-width:100%", css)
    assert not re.search(r"(table|td|th)[^{]*\{[^}]*(?<!max-)width:\s*\d+(px|em)", css)  # no fixed widths
    html, _ = reporting.build(_power_profile(), _pair()[0], "html", [])
    assert "<table" in html and not re.search(r"<table[^>]*(width|style)=", html)


def test_the_report_opens_with_one_bottom_line_per_target():
    profile = make_profile()
    profile["verdicts"].append(
        {
            "target": "t-pass",
            "title": "a target met",
            "status": "PASS",
            "criteria": [
                {
                    "metric": "peak_tflops.bf16",
                    "op": ">=",
                    "threshold": 1.0,
                    "unit": "TFLOPS",
                    "measured": 1234.5,
                    "lower": 1200.0,
                    "upper": 1300.0,
                    "status": "PASS",
                    "reason": "clears",
                }
            ],
        }
    )
    lines = [text.bottom_line(*line) for line in text.bottom_lines(as_profile(profile).verdicts)]
    assert lines == [
        "miit-2020-cloud: FAIL — fp16 peak 0.336 TFLOPS < 128",
        "t-pass: PASS — bf16 peak 1,234 TFLOPS >= 1",
    ]
    html, _ = reporting.build(profile, None, "html", [])
    top = html.index("Bottom line")
    assert top < html.index("Device and environment") and top < html.index("<table")
    assert "miit-2020-cloud: <span class='FAIL'>FAIL</span> — fp16 peak 0.336 TFLOPS &lt; 128" in html
    markdown, _ = reporting.build(profile, None, "markdown", [], "r_files")
    assert markdown.index("**miit-2020-cloud: FAIL — fp16 peak") < markdown.index("## Device and environment")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
MEASURE = """<script>
window.addEventListener('load', () => {
  const page = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('table')].map(t => t.getBoundingClientRect())
    .filter(r => r.right > page + 0.5).map(r => Math.round(r.right));
  const scrolled = [...document.querySelectorAll('div')].filter(d => d.scrollWidth > d.clientWidth + 1).length;
  document.body.insertAdjacentHTML('beforeend',
    '<pre id="layout">' + JSON.stringify({page, wide, scrolled}) + '</pre>');
});
</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)")
def test_every_table_of_a_report_fits_1280_px_in_headless_chromium(tmp_path):
    profile = _power_profile()
    long_id = "conv2d/fp16/n1_c128_28x28_k128_3x3_s1x1_p1x1_g1_" + "x" * 60
    profile["measurements"][0]["energy"]["case"] = long_id
    profile["measurements"][0]["energy"]["reason"] = "/sys/class/powercap/intel-rapl:0/energy_uj" * 3
    profile["warnings"].append("w" * 300)
    profile["measurements"].append(
        _case(long_id, 1e-4, 9, energy=_energy(1.0, 40.0) | {"case": long_id}) | {"kernel": "conv2d"}
    )
    html, _ = reporting.build(profile, _pair()[0], "html", [])
    page = tmp_path / "report.html"
    page.write_text(html.replace("</body>", MEASURE))
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1280,2000",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r"<pre id=\"layout\">({.*?})</pre>", result.stdout)
    assert found, result.stderr[-2000:]
    layout = json.loads(found.group(1))
    assert 1200 <= layout["page"] <= 1280
    assert layout["wide"] == [] and layout["scrolled"] == 0, layout
