import json
from pathlib import Path

import pytest
import torch

from attnviz import bench, evaluate
from attnviz.data.camvid import default_data_root
from attnviz.models import build_model, save_checkpoint


@pytest.mark.skipif(not (default_data_root() / "test").is_dir(), reason="CamVid not available")
def test_evaluate_writes_results_and_cards(tmp_path):
    torch.manual_seed(0)
    model = build_model("fcn-eca", width=0.125)
    save_checkpoint(model, "fcn-eca", {"training": {"epochs": 0}}, tmp_path)
    assert evaluate.main(["--checkpoints", str(tmp_path), "--limit", "2", "--repeats", "1", "--threads", "1"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    entry = results["models"]["fcn-eca"]
    assert entry["images"] == 2 and entry["parameters"] == sum(p.numel() for p in model.parameters())
    assert entry["attention_parameters"] == sum(
        m.attn.conv.kernel_size[0]
        for layer in (model.backbone.layer1, model.backbone.layer2, model.backbone.layer3, model.backbone.layer4)
        for m in layer
    )
    assert 0 <= entry["miou"] <= 1 and entry["macs"] > 0
    card = json.loads((tmp_path / "fcn-eca.json").read_text())
    assert card["evaluation"]["miou"] == entry["miou"]


def test_count_macs_matches_a_conv_by_hand():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    # 8 output channels x (3 x 3 x 3) MACs per output pixel x 360 x 480 pixels
    assert evaluate.count_macs(conv) == 8 * 27 * 360 * 480


@pytest.mark.slow
def test_bench_pam_rows(tmp_path):
    out = tmp_path / "bench.json"
    assert bench.main(["--only", "pam", "--pam-sizes", "512", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["pam"]
    assert {r["mode"] for r in rows} == {"naive", "chunked"}
    assert all("error" not in r and r["median_s"] > 0 for r in rows)


def _exit_status(main, argv) -> int:
    """What the shell would see: main's return value, or the code argparse exits with."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/nonexistent"], "CamVid not found"),
        (["--names", "nope"], "nope: no such checkpoint"),
        (["--split", "nope"], "invalid choice"),
        (["--threads", "0"], "must be at least 1"),
        (["--repeats", "0"], "must be at least 1"),
        (["--limit", "-1"], "cannot be negative"),
    ],
)
def test_evaluate_refuses_bad_arguments_with_a_message(tmp_path, capsys, args, message):
    save_checkpoint(build_model("fcn-none", width=0.125), "fcn-none", {}, tmp_path)
    assert _exit_status(evaluate.main, ["--checkpoints", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "results.json").exists()


def test_bench_train_case_times_both_parts_of_a_step():
    row = bench._case_train("cpu", "device", steps=1, batch_size=2, width=0.125, pam_affinity=1.0)
    assert row["augment_on"] == "device" and row["pam_affinity"] == 1.0 and row["steps"] == 1
    assert row["augment_ms"] > 0 and row["step_ms"] > 0
    assert row["epoch_s_estimate"] == pytest.approx(184 * (row["augment_ms"] + row["step_ms"]) / 1000, rel=0.01)


@pytest.mark.browser
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed")
def test_app_bench_times_clicks_in_chromium_against_a_bare_app(tmp_path):
    from attnviz import app_bench

    out = tmp_path / "bench.json"
    out.write_text(json.dumps({"pam": ["kept"]}))
    assert app_bench.main(["--clicks", "2", "--hover", "0", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["pam"] == ["kept"]
    click = report["page_click"]
    assert click["clicks"] == 2 and 0 < click["app_median_s"] <= click["app_max_s"]
    assert 0 < click["bare_median_s"] <= click["bare_max_s"]
    assert click["ratio"] == pytest.approx(click["app_median_s"] / click["bare_median_s"], rel=0.01)


@pytest.mark.browser
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed")
def test_app_bench_times_the_hover_and_counts_no_server_message(tmp_path):
    from attnviz import app_bench

    out = tmp_path / "bench.json"
    assert app_bench.main(["--clicks", "0", "--hover", "6", "--out", str(out)]) == 0
    hover = json.loads(out.read_text())["page_hover"]
    for case, pixels in (("app", 2700), ("n16384", 16384)):
        row = hover[case]
        assert row["num_pixels"] == pixels and row["moves"] == 6
        assert row["latencies_seen"] == 6, row  # every move was drawn
        assert 0 < row["draw_median_ms"] <= row["draw_max_ms"] and row["latency_median_ms"] > 0
        assert row["messages_sent_while_hovering"] == 0
    assert "page_click" not in json.loads(out.read_text())
