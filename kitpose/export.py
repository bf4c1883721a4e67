"""``kitpose export RUN_DIR --format onnx``: a finished run's network as an ONNX graph.

What is exported is the network part of the run's test flow: the nodes from ``image`` up to
the first node that is not a ``torch.nn.Module`` (the backbone and head: image [B, C, H, W]
in [0, 1] -> heatmaps). The decoders, and mapping their cells to image pixels, are the
post-processing that follows; ``kitpose.predict`` does both in Python, and each decoder's
maths is in its docstring (``kitpose list decoder``). The graph is checked against PyTorch
with onnxruntime on the same input, and the largest difference is reported.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from kitpose.errors import KitposeError, RunError
from kitpose.flow import _as_dict


def network_nodes(predictor: Any) -> list[Any]:
    """The leading nodes of the predictor's flow whose components are ``nn.Module``s."""
    nodes = []
    for node in predictor.runner.flow.nodes:
        target = predictor.objects.get(node.component)
        if node.members or node.method is not None or not isinstance(target, torch.nn.Module):
            break
        nodes.append(node)
    rest = predictor.runner.flow.nodes[len(nodes):]
    if rest and nodes and not set(nodes[-1].produces()) & set(rest[0].inputs.values()):
        raise RunError(f"the network part of the test flow ends at '{nodes[-1].component}', whose outputs the next "
                       f"node ('{rest[0].component}') does not read: only a chain image -> network -> decoders "
                       "exports", file=str(predictor.run_dir / "recipe.yaml"))
    if not nodes:
        raise RunError("the run's test flow starts with no network (nn.Module) to export",
                       file=str(predictor.run_dir / "recipe.yaml"))
    produced = {"image"} | {name for n in nodes for name in n.produces()}
    needs = sorted({name for n in nodes for name in n.inputs.values()} - produced)
    if needs:
        raise RunError(f"the network needs {', '.join(needs)} besides the image; only image-in networks export",
                       file=str(predictor.run_dir / "recipe.yaml"))
    return nodes


class Network(torch.nn.Module):
    """The network nodes as one module: ``forward(image)`` returns the last node's outputs."""

    def __init__(self, objects: dict[str, Any], nodes: list[Any]) -> None:
        super().__init__()
        self.nodes = nodes
        self.parts = torch.nn.ModuleDict({n.component: objects[n.component] for n in nodes})
        self.outputs = list(nodes[-1].outputs.values())

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        env = {"image": image}
        for node in self.nodes:
            result = _as_dict(self.parts[node.component](**{arg: env[name] for arg, name in node.inputs.items()}))
            for key, name in node.outputs.items():
                env[name] = result[key]
        return tuple(env[name] for name in self.outputs)


def example_input(predictor: Any) -> np.ndarray:
    """One prepared image [1, C, H, W]: a blank picture through the recipe's test transforms
    (a crop gives the model's input size), or the test dataset's first image."""
    from kitpose.data import collate

    sizes = [t.input_size for t in predictor.transforms if getattr(t, "input_size", None) is not None]
    if sizes:
        blank = np.zeros((int(sizes[-1][1]) * 2, int(sizes[-1][0]) * 2, predictor.channels), np.uint8)
        sample = predictor.prepare(blank, predictor.whole(blank), 0)
    else:
        split = predictor.plan.splits.get("test") or predictor.plan.splits.get("val")
        if split is None:
            raise RunError("cannot tell the model's input size: no crop transform and no test data",
                           file=str(predictor.run_dir / "recipe.yaml"))
        from kitpose.data import build_split

        sample = build_split(split, predictor.plan.registry)[0]
    return collate([{"image": sample["image"]}])["image"]


def export_onnx(run_dir: str | Path, out: str | Path, *, checkpoint: str | None = None) -> str:
    """Write ``out`` and return a report: inputs, outputs, the exporter used and the largest
    difference from PyTorch on one input (checked with onnxruntime)."""
    from kitpose.predict import Predictor

    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxruntime
    except ImportError as exc:
        raise KitposeError(f"ONNX export needs onnx and onnxruntime ({exc.name} is missing)",
                           hint='pip install "kitpose[export]"') from None
    predictor = Predictor.from_run(run_dir, checkpoint=checkpoint, device="cpu", labels_allowed=True)
    nodes = network_nodes(predictor)
    network = Network(predictor.objects, nodes).eval()
    image = example_input(predictor)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    names = list(network.outputs)
    how = _export(network, image, out, names)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    batch = torch.rand((3, *image.shape[1:]), generator=generator)  # three images: the batch axis is dynamic
    with torch.no_grad():
        reference = [t.numpy() for t in network(batch)]
    got = session.run(None, {"image": batch.numpy()})
    diff = max(float(np.abs(a - b).max()) for a, b in zip(got, reference))
    shapes = ", ".join(f"{n} {list(r.shape[1:])}" for n, r in zip(names, reference))
    after = [n.component + (f".{n.method}" if n.method else "") for n in predictor.runner.flow.nodes[len(nodes):]]
    return (f"wrote {out} ({how}): image [B, {', '.join(map(str, image.shape[1:]))}] in [0, 1] -> {shapes}, "
            f"nodes {', '.join(n.component for n in nodes)}; onnxruntime vs PyTorch on 3 random images: max |diff| "
            f"{diff:.2e}. What the test flow does next is not in the graph: {', '.join(after) or 'nothing'} "
            "(kitpose.predict runs it in Python)")


def _export(network: Any, image: Any, out: Path, names: list[str]) -> str:
    """torch.onnx's current (torch.export) exporter, else its TorchScript one; their logs and
    warnings stay out of the console. The example holds two images: a batch of one would be
    specialised to one."""
    import contextlib
    import io
    import logging
    import warnings

    example = torch.cat([image, image])
    quiet = [logging.getLogger(name) for name in ("torch", "torch.onnx", "torch._dynamo", "torch._guards",
                                                   "torch.export", "torch.fx")]
    levels = [logger.level for logger in quiet]
    try:
        for logger in quiet:
            logger.setLevel(logging.CRITICAL + 1)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(network, (example,), str(out), dynamo=True, input_names=["image"],
                                  output_names=names, dynamic_shapes={"image": {0: torch.export.Dim("batch")}})
                return "torch.export exporter"
            except Exception as first:  # an operator the new exporter lacks: the TorchScript one may know it
                try:
                    torch.onnx.export(network, (example,), str(out), dynamo=False, input_names=["image"],
                                      output_names=names,
                                      dynamic_axes={"image": {0: "batch"}, **{n: {0: "batch"} for n in names}})
                except Exception as second:
                    raise RunError(f"the network does not export to ONNX: torch.export: {type(first).__name__}: "
                                   f"{str(first).splitlines()[0] if str(first) else ''}; TorchScript: "
                                   f"{type(second).__name__}: {str(second).splitlines()[0] if str(second) else ''}",
                                   file=str(out)) from None
                return "TorchScript exporter"
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
