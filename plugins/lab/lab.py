"""``kitpose lab``: every registered decoder on the same exactly known maps, and every
encoder's round trip; a table, a CSV and two charts in a run-directory-like folder."""
from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

import kitpose
from kitpose import pages
from kitpose import results as results_io
from kitpose.errors import UnknownComponentError, first_line
from kitpose.files import write_atomic
from kitpose_plugins.lab import predicted
from kitpose_plugins.lab.cases import Case, border_distance, centres, draw, grid

#: the case every table holds fixed unless it varies it
SIGMA, SIZE = 2.0, (48, 64)


def build_decoders(names: Sequence[str] | None) -> tuple[dict[str, Any], dict[str, str]]:
    """Every decoder (or those named) built with its defaults; ``{name: reason}`` for the
    ones that cannot be (a required parameter, a failing import)."""
    wanted = names or [entry.name for entry in kitpose.list_components("decoder")]
    built, skipped = {}, {}
    for name in wanted:
        try:
            built[name] = kitpose.build("decoder", name)
        except UnknownComponentError:
            raise  # a name the user typed: a one-line error with the nearest names
        except Exception as exc:  # a third-party decoder may fail in any way: report it, go on
            skipped[name] = first_line(str(exc)) or type(exc).__name__
    return built, skipped


def decode(decoder: Any, maps: np.ndarray) -> np.ndarray:
    """Decoded cells ``[n, 2]`` of maps ``[n, 1, h, w]``."""
    with torch.no_grad():
        out = decoder(heatmaps=torch.from_numpy(maps))
    return out["keypoints"][:, 0, :2].double().numpy()


def measure(decoders: dict[str, Any], skipped: dict[str, str], cases: Sequence[Case], maps: int,
            seed: int) -> list[dict[str, Any]]:
    """Mean and max error (cells) of every decoder on every case; a decoder that fails on a
    case is moved to ``skipped`` with the reason."""
    rows = []
    for number, case in enumerate(cases):
        rng = np.random.default_rng([seed, number])
        truth = centres(case, maps, rng)
        batch = draw(case, truth, rng)
        distance = border_distance(truth, case.size)
        for name in list(decoders):
            try:
                error = np.linalg.norm(decode(decoders[name], batch) - truth, axis=-1)
            except Exception as exc:
                skipped[name] = f"fails on {case.name}: {first_line(str(exc)) or type(exc).__name__}"
                del decoders[name]
                continue
            rows.append({"decoder": name, "sigma": case.sigma, "size": f"{case.size[1]}x{case.size[0]}",
                         "place": case.place, "noise": case.noise, "peaks": case.peaks,
                         "mean": float(np.nanmean(error)), "max": float(np.nanmax(error)),
                         "failed": int(np.isnan(error).sum()), "error": error, "border": distance})
    return rows


def speed(decoders: dict[str, Any], maps: int, seed: int) -> dict[str, float]:
    """Microseconds per map: the best of five calls on ``maps`` noisy sigma-2 64x48 maps."""
    case = Case(SIGMA, SIZE, "inside", 0.02)
    rng = np.random.default_rng([seed, 999])
    batch = draw(case, centres(case, maps, rng), rng)
    out = {}
    for name, decoder in decoders.items():
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            decode(decoder, batch)
            best = min(best, time.perf_counter() - started)
        out[name] = best / maps * 1e6
    return out


def encoder_variants() -> list[tuple[str, str, dict[str, Any]]]:
    """``(row name, encoder, parameters)``: every encoder at its defaults, and unbiased too
    where it has an ``unbiased`` option that is off by default."""
    import inspect

    rows = []
    for entry in kitpose.list_components("encoder"):
        rows.append((entry.name, entry.name, {}))
        try:
            option = inspect.signature(entry.load()).parameters.get("unbiased")
        except (TypeError, ValueError, ImportError):
            option = None
        if option is not None and option.default is False:
            rows.append((f"{entry.name} (unbiased)", entry.name, {"unbiased": True}))
    return rows


def roundtrip(decoders: dict[str, Any], maps: int, seed: int) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """Each encoder's targets decoded by each decoder that reads them, mean error in input px;
    ``{encoder: reason}`` for encoders whose targets are not 2D heatmaps."""
    table: dict[str, dict[str, float]] = {}
    skipped: dict[str, str] = {}
    rng = np.random.default_rng([seed, 1000])
    for row_name, name, params in encoder_variants():
        try:
            encoder = kitpose.build("encoder", name, **params)
            w, h = encoder.heatmap_size
            cells = torch.from_numpy(rng.uniform(4, [w - 5, h - 5], size=(maps, 1, 2)))
            points = encoder.to_image(cells)
            targets = encoder(keypoints=points)
        except Exception as exc:
            skipped[row_name] = first_line(str(exc)) or type(exc).__name__
            continue
        if "heatmaps" not in targets:
            skipped[row_name] = f"its targets are {', '.join(targets)}, not heatmaps"
            continue
        row = {}
        for decoder_name, decoder in decoders.items():
            try:
                with torch.no_grad():
                    found = decoder(heatmaps=targets["heatmaps"])["keypoints"][..., :2]
            except Exception:
                continue  # this decoder does not read these maps (e.g. offsets it does not expect)
            if found.shape == points.shape:
                row[decoder_name] = float((encoder.to_image(found.double()) - points).norm(dim=-1).mean())
        table[row_name] = row
    return table, skipped


def run_lab(*, decoders: Sequence[str] | None = None, maps: int = 256, seed: int = 0,
            out: str | None = None, page: str | None = None, run: str | None = None) -> Path:
    """Run every case, write ``lab.md``, ``lab.csv``, ``roundtrip.csv`` and the charts; print
    the summary; with ``run``, also decode that run's predicted heatmaps (``predicted.csv``);
    with ``page``, fill its ``lab`` block (see :mod:`kitpose.pages`)."""
    if page:
        pages.check(page, "lab")
    kept = predicted.load(run) if run else None  # a run without maps is said before any work
    folder = Path(out) if out else Path("runs") / "lab" / datetime.now().strftime("%Y%m%d-%H%M%S")
    started = time.monotonic()
    built, skipped = build_decoders(decoders)
    folder.mkdir(parents=True, exist_ok=True)
    every = dict(built)  # the round trip tries them all: some read only their own encoder's maps
    rows = measure(built, skipped, grid(), maps, seed)
    rates = speed(built, maps, seed)
    trips, unused = roundtrip(every, min(maps, 128), seed)
    scored = predicted.score(every, *kept[:3]) if kept is not None else None
    seconds = time.monotonic() - started
    order = sorted(built, key=lambda name: _mean(rows, name, sigma=SIGMA, size=SIZE, place="inside", noise=0.02))
    text = report(rows, order, rates, trips, skipped, unused, maps=maps, seconds=seconds)
    if scored is not None:
        text += run_section(run, kept, *scored)
        write_atomic(folder / "predicted.csv", "decoder,mean,median,p90\n" + "".join(
            f"{name},{v['mean']},{v['median']},{v['p90']}\n" for name, v in scored[0].items()))
    write_atomic(folder / "lab.md", text)
    write_atomic(folder / "lab.csv", _csv(rows))
    write_atomic(folder / "roundtrip.csv", _roundtrip_csv(trips))
    charts(rows, order, folder)
    print(text)
    if page:
        body = text.split("\n", 1)[1].replace("\n## ", "\n### ")  # under the page's own heading
        pages.fill(page, "lab", body, [folder / "error_vs_noise.png", folder / "error_vs_border.png"])
        print(f"lab: tables written into {page}")
    print(f"lab: written to {folder}")
    return folder


def _pick(rows: Sequence[dict[str, Any]], name: str, **fixed: Any) -> list[dict[str, Any]]:
    size = fixed.pop("size", None)
    peaks = fixed.pop("peaks", 1)
    return [r for r in rows if r["decoder"] == name and r["peaks"] == peaks
            and (size is None or r["size"] == f"{size[1]}x{size[0]}")
            and all(r[k] == v for k, v in fixed.items())]


def _mean(rows: Sequence[dict[str, Any]], name: str, **fixed: Any) -> float:
    found = _pick(rows, name, **fixed)
    return float(np.mean([r["mean"] for r in found])) if found else float("nan")


def _max(rows: Sequence[dict[str, Any]], name: str, **fixed: Any) -> float:
    found = _pick(rows, name, **fixed)
    return float(np.max([r["max"] for r in found])) if found else float("nan")


def report(rows: Sequence[dict[str, Any]], order: Sequence[str], rates: dict[str, float],
           trips: dict[str, dict[str, float]], skipped: dict[str, str], unused: dict[str, str], *,
           maps: int, seconds: float) -> str:
    """``lab.md``: the decoders ranked by their mean error on noisy maps, then one table per factor."""
    noises = sorted({r["noise"] for r in rows})
    sigmas = sorted({r["sigma"] for r in rows})
    sizes = list(dict.fromkeys(r["size"] for r in rows))
    f = "{:.3f}".format
    parts = [f"# kitpose lab\n\nEvery decoder on the same maps whose true centre is known exactly: "
             f"{maps} maps per case, errors in heatmap cells (mean, and max in brackets). Unless a table "
             f"varies it: sigma {SIGMA:g}, {SIZE[1]}x{SIZE[0]} maps, centres inside (at least 3 sigma + 1 "
             f"cells from the edges), noise N(0, 0.02) on unit-peak Gaussians. Decoders are ranked by "
             f"that case. Every decoder runs with its default settings. {seconds:.0f} s on this machine.\n"]
    parts.append("\n## Noise\n\n" + results_io.table(
        ["decoder", *(f"noise {n:g}" for n in noises), "us per map"],
        [[name, *(f"{f(_mean(rows, name, sigma=SIGMA, size=SIZE, place='inside', noise=n))} "
                  f"({f(_max(rows, name, sigma=SIGMA, size=SIZE, place='inside', noise=n))})" for n in noises),
          f"{rates.get(name, float('nan')):.2f}"] for name in order]))
    places = {"inside": "inside", "near": "near (1 to 3 sigma from the edge)", "on": "on (within the edge cell)"}
    parts.append("\n## Distance to the border (no noise)\n\n" + results_io.table(
        ["decoder", *places.values()],
        [[name, *(f"{f(_mean(rows, name, sigma=SIGMA, size=SIZE, place=p, noise=0.0))} "
                  f"({f(_max(rows, name, sigma=SIGMA, size=SIZE, place=p, noise=0.0))})" for p in places)]
         for name in order]))
    parts.append("\n## Gaussian width (noise 0.02)\n\n" + results_io.table(
        ["decoder", *(f"sigma {s:g}" for s in sigmas)],
        [[name, *(f(_mean(rows, name, sigma=s, size=SIZE, place="inside", noise=0.02)) for s in sigmas)]
         for name in order]))
    by_size = {size: tuple(int(v) for v in reversed(size.split("x"))) for size in sizes}
    parts.append("\n## Map size (noise 0.02)\n\n" + results_io.table(
        ["decoder", *sizes],
        [[name, *(f(_mean(rows, name, sigma=SIGMA, size=by_size[s], place="inside", noise=0.02)) for s in sizes)]
         for name in order]))
    parts.append("\n## Two peaks (a second one of height 0.6, 6 cells away; no noise)\n\n" + results_io.table(
        ["decoder", *(f"sigma {s:g}" for s in sigmas)],
        [[name, *(f"{f(_mean(rows, name, sigma=s, size=SIZE, noise=0.0, peaks=2))} "
                  f"({f(_max(rows, name, sigma=s, size=SIZE, noise=0.0, peaks=2))})" for s in sigmas)]
         for name in order]))
    encoders = list(trips)
    columns = [*order, *dict.fromkeys(name for row in trips.values() for name in row if name not in order)]
    parts.append("\n## Round trip: each encoder's targets decoded back (mean error, input px)\n\n"
                 "Encoders and decoders at their defaults, keypoints at least 4 cells inside the map; "
                 "'-': the decoder does not read these maps.\n\n" + results_io.table(
                     ["encoder", *columns],
                     [[enc, *(f(trips[enc][name]) if name in trips[enc] else "-" for name in columns)]
                      for enc in encoders]))
    if skipped or unused:
        parts.append("\n## Left out\n\n" + "".join(
            [f"- decoder `{name}`: {why}\n" for name, why in skipped.items()]
            + [f"- encoder `{name}`: {why}\n" for name, why in unused.items()]))
    parts.append("\nFiles: lab.csv (every case), roundtrip.csv, error_vs_noise.png, error_vs_border.png.\n")
    return "".join(parts)


def run_section(run: str, kept: tuple, table: dict[str, dict[str, float]], skipped: dict[str, str]) -> str:
    """``lab.md``'s section on a run's predicted heatmaps: decoders by mean error (cells)."""
    maps, _, visible, _ = kept
    ranked = sorted(table, key=lambda name: table[name]["mean"])
    text = (f"\n## On the predicted heatmaps of {run}\n\n(predicted.csv) {maps.shape[0]} test samples, {maps.shape[1]} joints, "
            f"{int(visible.sum())} visible joints scored; error in heatmap cells against the true keypoints, "
            f"every decoder at its default settings.\n\n")
    text += results_io.table(["decoder", "mean", "median", "90th percentile"],
                   [[name, *(f"{table[name][k]:.3f}" for k in ("mean", "median", "p90"))] for name in ranked])
    if skipped:
        text += "\n" + "".join(f"- decoder `{name}` left out: {why}\n" for name, why in skipped.items())
    return text


def _csv(rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    keys = ["decoder", "sigma", "size", "place", "noise", "peaks", "mean", "max", "failed"]
    writer.writerow(keys)
    writer.writerows([[r[k] for k in keys] for r in rows])
    return buffer.getvalue()


def _roundtrip_csv(trips: dict[str, dict[str, float]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["encoder", "decoder", "mean_error_px"])
    writer.writerows([[enc, dec, value] for enc, row in trips.items() for dec, value in row.items()])
    return buffer.getvalue()


def charts(rows: Sequence[dict[str, Any]], order: Sequence[str], folder: Path) -> None:
    """Error against noise, and error against the distance to the border (noise 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    noises = sorted({r["noise"] for r in rows})
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for name in order:
        ax.plot(noises, [_mean(rows, name, sigma=SIGMA, size=SIZE, place="inside", noise=n) for n in noises],
                marker="o", label=name)
    ax.set(xlabel="noise (standard deviation, peak = 1)", ylabel="mean error (cells)", yscale="log",
           title=f"Error against noise (sigma {SIGMA:g}, {SIZE[1]}x{SIZE[0]}, centres inside)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="x-small", ncols=2)
    fig.tight_layout()
    fig.savefig(folder / "error_vs_noise.png")
    plt.close(fig)

    edges = np.array([0.0, 0.5, 1.0, 2.0, 3.0, 4.5, 6.0, 10.0, 40.0])
    mids = (edges[:-1] + np.minimum(edges[1:], 12.0)) / 2
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for name in order:
        picked = _pick(rows, name, sigma=SIGMA, size=SIZE, noise=0.0)
        error = np.concatenate([r["error"] for r in picked])
        border = np.concatenate([r["border"] for r in picked])
        bins = np.digitize(border, edges) - 1
        means = [float(np.nanmean(error[bins == b])) if (bins == b).any() else np.nan for b in range(len(mids))]
        ax.plot(mids, means, marker="o", label=name)
    ax.set(xlabel="distance from the centre to the nearest edge cell (cells)", ylabel="mean error (cells)",
           yscale="log", title=f"Error against the border (sigma {SIGMA:g}, {SIZE[1]}x{SIZE[0]}, no noise)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="x-small", ncols=2)
    fig.tight_layout()
    fig.savefig(folder / "error_vs_border.png")
    plt.close(fig)
