"""`kitpose lab`: every decoder, built-in or from a plugin, on maps with known centres."""
import csv

from conftest import run_cli


def test_lab_ranks_every_decoder_on_known_centres(tmp_path):
    result = run_cli("lab", "--maps", "24", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(tmp_path / "lab.csv")))
    decoders = {r["decoder"] for r in rows}
    # the toy plugin's decoder is measured like the built-ins; SimCC's is left out, with the reason
    assert {"argmax", "standard", "dark", "com", "toy_peak"} <= decoders and "simcc_peak" not in decoders
    text = (tmp_path / "lab.md").read_text()
    assert "- decoder `simcc_peak`: fails on" in text and "unexpected keyword argument 'heatmaps'" in text

    def error(decoder, **case):
        [row] = [r for r in rows if r["decoder"] == decoder and r["sigma"] == "2.0" and r["size"] == "64x48"
                 and r["peaks"] == "1" and all(r[k] == v for k, v in case.items())]
        return float(row["mean"]), float(row["max"])

    # what the methods promise, on clean maps: DARK exact inside, arg-max off by the rounding
    assert error("dark", place="inside", noise="0.0")[1] < 1e-3
    assert 0.2 < error("argmax", place="inside", noise="0.0")[0] < 0.6
    assert error("argmax", place="inside", noise="0.0")[1] <= 0.5 ** 0.5 + 1e-9  # half a cell on each axis
    assert error("standard", place="inside", noise="0.0")[0] < error("argmax", place="inside", noise="0.0")[0]
    # noise and the border cost the Taylor step accuracy
    assert error("dark", place="inside", noise="0.1")[0] > 10 * error("dark", place="inside", noise="0.0")[0]
    assert error("dark", place="on", noise="0.0")[0] > 0.05
    # each encoder's own targets decode back: exact for the unbiased Gaussian with DARK
    trips = {(r["encoder"], r["decoder"]): float(r["mean_error_px"]) for r in csv.DictReader(open(tmp_path / "roundtrip.csv"))}
    assert trips[("gaussian (unbiased)", "dark")] < 0.01 and trips[("udp_combined", "udp_offsets")] < 1e-3
    assert trips[("gaussian", "dark")] > 1.0  # quantised targets keep their rounding
    for chart in ("error_vs_noise.png", "error_vs_border.png"):
        assert (tmp_path / chart).stat().st_size > 10000
    assert "## Noise" in result.stdout and f"lab: written to {tmp_path}" in result.stdout


def test_lab_with_an_unknown_decoder_says_so(tmp_path):
    result = run_cli("lab", "--maps", "8", "--decoders", "dark", "darc", "--out", str(tmp_path / "lab"))
    assert result.returncode == 2 and "unknown decoder 'darc' (did you mean 'dark'?)" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2 and not (tmp_path / "lab").exists()


def test_lab_decodes_a_finished_runs_predicted_heatmaps(tmp_path):
    from conftest import TESTS

    run = tmp_path / "run"
    trained = run_cli("run", str(TESTS / "recipes" / "toy.yaml"), "train.epochs=1", "test.keep_heatmaps=true",
                      "--run-dir", str(run))
    assert trained.returncode == 0, trained.stderr
    result = run_cli("lab", "--maps", "8", "--decoders", "toy_peak", "argmax", "--run", str(run),
                     "--out", str(tmp_path / "lab"))
    assert result.returncode == 0, result.stderr
    scored = {r["decoder"]: r for r in csv.DictReader(open(tmp_path / "lab" / "predicted.csv"))}
    tested = {r["decoder"]: r for r in csv.DictReader(open(run / "results.csv"))}
    # the toy decoder at its defaults is the run's `peak` branch, and its maps are at stride 1:
    # decoding the kept maps again gives the run's own test error
    assert abs(float(scored["toy_peak"]["mean"]) - float(tested["peak"]["EPE"])) < 1e-5
    assert f"## On the predicted heatmaps of {run}" in result.stdout
    # a run that kept no maps is said at once, in one line
    (run / "heatmaps.npz").unlink()
    missing = run_cli("lab", "--run", str(run), "--out", str(tmp_path / "lab2"))
    assert missing.returncode == 2 and "no heatmaps.npz" in missing.stderr and "test.keep_heatmaps=true" in missing.stderr
    assert not (tmp_path / "lab2").exists()
