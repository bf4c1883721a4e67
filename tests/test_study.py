"""`kitpose study`: several runs, one combined table and chart, resumable."""
import csv

from conftest import run_cli


def test_study_runs_combines_and_resumes(tmp_path):
    from conftest import TESTS

    study = TESTS / "recipes" / "toy_study.yaml"
    first = run_cli("study", str(study), "--dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    rows = list(csv.DictReader(open(tmp_path / "study.csv")))
    assert [(r["encoding"], r["decoder"]) for r in rows] == [
        ("plain", "peak"), ("plain", "shifted"), ("wide", "peak"), ("wide", "shifted")]
    assert list(rows[0]) == ["model", "encoding", "decoder", "EPE", "PCK@0.5"]
    assert (tmp_path / "study.png").stat().st_size > 5000
    assert "| tiny | plain | peak |" in (tmp_path / "study.md").read_text()
    # a second call finds both runs done and only rebuilds the table
    (tmp_path / "02-tiny-wide" / "results.csv").unlink()
    again = run_cli("study", str(study), "--dir", str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert "01-tiny-plain is done; skipping" in again.stdout
    assert "resuming 02-tiny-wide" in again.stdout
    assert list(csv.DictReader(open(tmp_path / "study.csv"))) == rows
    # --fresh starts over, but deletes only what the study wrote in the folder it was given
    (tmp_path / "notes.txt").write_text("mine")
    fresh = run_cli("study", str(study), "--dir", str(tmp_path), "--fresh")
    assert fresh.returncode == 0, fresh.stderr
    assert "running 01-tiny-plain" in fresh.stdout and (tmp_path / "notes.txt").read_text() == "mine"


def test_not_a_study(tmp_path):
    from conftest import TESTS

    result = run_cli("study", str(TESTS / "recipes" / "toy.yaml"), "--dir", str(tmp_path))
    assert result.returncode == 2 and "not a study recipe" in result.stderr


def test_a_study_with_seeds_reports_spread_and_judges_its_claims(tmp_path):
    import numpy as np

    from conftest import TESTS
    from kitpose import samples

    study = TESTS / "recipes" / "toy_study_seeds.yaml"
    first = run_cli("study", str(study), "--dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    runs = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert runs == ["01-tiny-seed1", "01-tiny-seed2", "02-wide-seed1", "02-wide-seed2"]
    rows = list(csv.DictReader(open(tmp_path / "study.csv")))
    assert [(r["model"], r["seed"], r["decoder"]) for r in rows][:2] == [("tiny", "1", "peak"), ("tiny", "1", "shifted")]
    # each run kept what its numbers are made of: pooled again they are its results
    kept = samples.read(tmp_path / "01-tiny-seed2")
    assert sorted(kept.index.tolist()) == list(range(16))
    epe = kept.get("shifted", "EPE")
    result = next(r for r in rows if r["seed"] == "2" and r["model"] == "tiny" and r["decoder"] == "shifted")
    assert abs(float((epe.values * epe.counted).sum() / epe.counted.sum()) - float(result["EPE"])) < 1e-6
    # the table: mean ± sd over the two seeds, computed from study.csv's rows
    table = (tmp_path / "study.md").read_text()
    values = [float(r["EPE"]) for r in rows if r["model"] == "wide" and r["decoder"] == "peak"]
    assert f"| wide | peak | {np.mean(values):.4f} ± {np.std(values, ddof=1):.4f} |" in table
    # every claim, for each group, with an interval and a verdict the program computed
    claims = list(csv.DictReader(open(tmp_path / "study_claims.csv")))
    assert [(c["claim"], c["for"]) for c in claims] == [
        ("decoder peak < decoder shifted (EPE)", "model tiny"), ("decoder peak < decoder shifted (EPE)", "model wide"),
        ("model wide > model tiny (PCK@0.5)", "decoder peak"), ("model wide > model tiny (PCK@0.5)", "decoder shifted")]
    for c in claims:
        low, high = float(c["low"]), float(c["high"])
        verdict = "holds" if low > 0 else "does not hold" if high < 0 else "cannot tell at this sample size"
        assert c["verdict"] == verdict and c["seeds"] == "2" and c["images"] == "16"
        assert f"| {c['claim']} | {c['for']} | {float(c['difference']):+.4f} |" in table
    assert "draws seeds and test images with replacement, independently" in table and "## Claims" in first.stdout
    # interrupted studies resume: finished runs are skipped and counted
    (tmp_path / "02-wide-seed2" / "results.csv").unlink()
    again = run_cli("study", str(study), "--dir", str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert "resuming 02-wide-seed2" in again.stdout and "3 of 4 runs were already done" in again.stdout
    assert list(csv.DictReader(open(tmp_path / "study_claims.csv"))) == claims
    assert "Run time: 0 h 0 min" in table and "for 4 runs" in table
    # the tables go into a page between its markers; a page without them is refused up front
    page = tmp_path / "page.md"
    page.write_text("# Results\n\nprose\n")
    refused = run_cli("study", str(study), "--dir", str(tmp_path), "--page", str(page))
    assert refused.returncode == 2 and "page.md: no block 'toy_study_seeds' to fill" in refused.stderr
    assert "skipping" not in refused.stdout
    page.write_text("# Results\n\n<!-- kitpose:toy_study_seeds -->\nold numbers\n<!-- /kitpose:toy_study_seeds -->\nprose\n")
    filled = run_cli("study", str(study), "--dir", str(tmp_path), "--page", str(page))
    assert filled.returncode == 0, filled.stderr
    text = page.read_text()
    assert "old numbers" not in text and text.endswith("<!-- /kitpose:toy_study_seeds -->\nprose\n")
    study_md = (tmp_path / "study.md").read_text().strip()
    assert study_md in text and "(toy_study_seeds.png)" in text  # "## Claims" under the page's "# Results"
    assert (tmp_path / "toy_study_seeds.png").stat().st_size > 5000


def test_study_recipe_mistakes_are_one_line(tmp_path):
    from conftest import TESTS

    bad = tmp_path / "bad.yaml"
    base = (TESTS / "recipes" / "toy_study_seeds.yaml").read_text().replace("recipe: toy.yaml", f"recipe: {TESTS / 'recipes' / 'toy.yaml'}")
    bad.write_text(base.replace("seeds: [1, 2]", "seeds: [1, 1]"))
    result = run_cli("study", str(bad), "--dir", str(tmp_path / "out"))
    assert result.returncode == 2 and "study.seeds: seeds must be different" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2 and not (tmp_path / "out").exists()
    bad.write_text(base.replace("better: {model: wide}", "better: {modle: wide}"))
    result = run_cli("study", str(bad), "--dir", str(tmp_path / "out"))
    assert result.returncode == 2 and "study.claims[1].better.modle: 'modle' is not a factor" in result.stderr
    bad.write_text(base.replace("metric: PCK@0.5,", "metric: PCK@0.05,"))
    result = run_cli("study", str(bad), "--dir", str(tmp_path / "out"))
    assert result.returncode == 2 and "study.claims[1].metric: 'PCK@0.05' is not one of the study's metrics" in result.stderr
    bad.write_text(base.replace("better: {decoder: peak}", "better: {decoder: peek}"))
    result = run_cli("study", str(bad), "--dir", str(tmp_path / "out"))
    assert result.returncode == 2 and "study.claims[0].better.decoder: no run has decoder 'peek' (did you mean 'peak'?)" in result.stderr
    # a broken run is found before the first run trains, not hours later
    bad.write_text(base.replace('overrides: ["+components.model.width=12"]', 'overrides: ["components.model.widht=12"]'))
    result = run_cli("study", str(bad), "--dir", str(tmp_path / "out"))
    assert result.returncode == 2 and "widht" in result.stderr and "running" not in result.stdout
    assert not (tmp_path / "out").exists()
