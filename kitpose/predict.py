"""Predict keypoints on new images with a finished run: ``kitpose predict`` and :class:`Predictor`.

The run's own recipe says how: its test transforms prepare each person (a ``top_down_affine``
crops the box), its test flow, cut down to what the prediction depends on, runs the model and
the decoder, and the prediction is the tensor the flow's metrics score as ``pred``. When the
metrics compare it with the transformed ``keypoints`` it is in model-input pixels and is
mapped back through the sample's ``matrix``; otherwise it is in image pixels already.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from kitpose.errors import KitposeError, RunError, suggestion

#: the sample keys a prediction may use; every other one is a label, which new images lack
_INPUTS = frozenset({"image", "bbox", "matrix", "index"})


@dataclass
class Person:
    """One predicted person: ``keypoints`` [K, 2] in image pixels, ``scores`` [K] (the
    decoder's confidence, or None when the flow gives none), the ``box`` (x, y, w, h) and its
    detection score."""

    keypoints: np.ndarray
    scores: np.ndarray | None
    box: np.ndarray
    box_score: float = 1.0

    @property
    def score(self) -> float:
        """The person's score: the box's score times the mean of its keypoint scores."""
        joints = float(np.mean(self.scores)) if self.scores is not None and self.scores.size else 1.0
        return self.box_score * joints


class Predictor:
    """A trained run's model with its pre- and post-processing, for images it has not seen.

    ``Predictor.from_run("runs/hrnet_dark/...")(images, boxes)`` returns, per image, a list of
    :class:`Person`. Boxes are (x, y, w, h) in pixels; without them each image is one person
    whose box is the whole image. Inference is batched (``batch_size``).
    """

    def __init__(self, plan: Any, objects: Mapping[str, Any], module: Any, *, decoder: str | None,
                 device: Any, run_dir: Path, labels_allowed: bool = False) -> None:
        import torch

        from kitpose.flow import Flow, FlowRunner

        self.plan, self.objects, self.module, self.device, self.run_dir = plan, objects, module, device, run_dir
        flow = plan.flow_for("test")
        if flow is None:
            raise RunError("the run's recipe has no test flow to predict with", file=str(run_dir / "recipe.yaml"))
        scoring = [n for n in flow.nodes if n.is_metric and "pred" in n.inputs]
        if not scoring:
            raise RunError("the test flow scores no 'pred': nothing says which tensor is the prediction",
                           file=str(run_dir / "recipe.yaml"))
        self.pred = scoring[0].inputs["pred"]
        target = scoring[0].inputs.get("target")
        # the frame the prediction is scored in: that of the transformed sample ('keypoints'), or
        # that of the image when the target was mapped back through the crop's matrix
        self.in_model_pixels = target == "keypoints"
        if not self.in_model_pixels and not any("matrix" in n.inputs.values() for n in flow.upstream([target])):
            raise RunError(f"cannot tell which pixels the prediction '{self.pred}' is in: the test flow scores it "
                           f"against '{target}', neither the dataset's keypoints nor keypoints mapped back "
                           "through the crop's matrix", file=str(run_dir / "recipe.yaml"))
        wanted = [self.pred, *(n.outputs["scores"] for n in flow.nodes if "scores" in n.outputs)]
        nodes = flow.upstream(wanted)
        self.scores = next((n.outputs["scores"] for n in nodes if "scores" in n.outputs), None)
        labels = sorted({name for n in nodes for name in n.inputs.values()} - _INPUTS
                        - {name for n in nodes for name in n.produces()})
        if labels and not labels_allowed:
            raise RunError(f"the prediction '{self.pred}' needs {', '.join(map(repr, labels))}, which only "
                           "a dataset's labels give", file=str(run_dir / "recipe.yaml"),
                           hint="kitpose predict works with recipes whose test flow predicts from the image")
        branches = [m for n in nodes if n.forks for m in n.members]
        if decoder is not None and not branches:
            raise KitposeError(f"the run's test flow has no decoders to choose from, so no '{decoder}'",
                               hint="leave out --decoder")
        chosen = decoder or plan.settings["val"].get("branch") or (branches[0] if branches else None)
        if branches and chosen not in branches:
            raise KitposeError(f"no decoder '{chosen}' in the run's test flow{suggestion(str(chosen), branches)}",
                               hint="its decoders are: " + ", ".join(branches))
        self.branch = chosen if branches else ""
        # the chosen decoder alone runs: the test flow's other branches are not what is asked for
        nodes = [replace(n, members=(chosen,)) if n.forks and chosen in n.members else n for n in nodes]
        self.runner = FlowRunner(Flow(flow.name, nodes, flow.sources, flow.file), objects)
        split = plan.splits.get("test") or plan.splits.get("val")
        # the transforms alone: the test data itself need not be on this machine
        self.transforms = [t.build(plan.registry) for t in split.transforms] if split is not None else []
        #: whether the recipe crops each person's box (top-down); otherwise images go in whole
        self.crops = any(getattr(t, "input_size", None) is not None for t in self.transforms)
        #: the recipe's own geometric transform, whose ``inverse`` maps model-input pixels back
        self.inverter = next((t for t in reversed(self.transforms) if callable(getattr(t, "inverse", None))), None)
        self.amp = plan.recipe.select("amp")  # the test ran under autocast on CUDA with it
        # the channels the image goes in with: the first convolution of the component that reads it
        reader = next((objects.get(n.component) for n in nodes if "image" in n.inputs.values()), None)
        first = next((m for m in (reader if isinstance(reader, torch.nn.Module) else module).modules()
                      if isinstance(m, torch.nn.Conv2d)), None)
        self.channels = first.in_channels if first is not None else 3
        dataset = split.dataset.factory(plan.registry) if split is not None else None
        #: the joint names of the data the run learnt from (COCO's, MPII's ...)
        self.joint_names = tuple(getattr(dataset, "joint_names", ()) or ())
        self.skeleton = tuple(getattr(dataset, "skeleton", ()) or ())

    @classmethod
    def from_run(cls, run_dir: str | Path, *, checkpoint: str | None = None, decoder: str | None = None,
                 device: str = "auto", labels_allowed: bool = False) -> Predictor:
        """Load ``run_dir``'s recipe and ``checkpoints/{checkpoint}.pt``: ``best`` or ``last``;
        by default the one the run's test used (``test.checkpoint``)."""
        from kitpose import checkpoint as checkpoints
        from kitpose.engine import FlowModule, build_components, pick_device
        from kitpose.plan import plan_recipe
        from kitpose.recipe import load_recipe

        folder = Path(run_dir)
        recipe_file = folder / "recipe.yaml"
        if not recipe_file.is_file():
            raise RunError("not a run directory (no recipe.yaml)", file=str(folder),
                           hint="give the folder a 'kitpose run' wrote, e.g. runs/hrnet_dark/<time>")
        plan = plan_recipe(load_recipe(str(recipe_file)))
        if checkpoint is None:  # as the test pass read it: best, last, or a checkpoint's path
            checkpoint = plan.settings["test"].get("checkpoint") or "best"
        if checkpoint in ("best", "last"):
            weights = folder / "checkpoints" / f"{checkpoint}.pt"
            if not weights.is_file():
                other = "last" if checkpoint == "best" else "best"
                raise RunError(f"no checkpoint {checkpoint}.pt", file=str(folder / "checkpoints"),
                               hint=f"the run may have stopped early: resume it, or use --checkpoint {other}")
        else:
            weights = Path(checkpoint)
            if not weights.is_file():
                raise RunError("the checkpoint the run's test used (test.checkpoint) is not there", file=str(weights),
                               hint="use --checkpoint best or last")
        objects = build_components(plan)
        module = FlowModule(objects)
        checkpoints.load_model_state(module, checkpoints.load(weights)["model"], file=str(weights))
        where = pick_device(device)
        module.to(where).eval()
        return cls(plan, objects, module, decoder=decoder, device=where, run_dir=folder, labels_allowed=labels_allowed)

    def __call__(self, images: Sequence[np.ndarray], boxes: Sequence[Sequence[Sequence[float]]] | None = None, *,
                 batch_size: int = 32, progress: bool = False) -> list[list[Person]]:
        """Per image, the :class:`Person` of every box (one per image without ``boxes``). A box
        is (x, y, w, h) or (x, y, w, h, score); a person's score is the box's times its joints'."""
        import torch

        from kitpose.data import collate
        from kitpose.engine import AMP_DTYPES, autocast, to_device

        if boxes is not None and not self.crops:
            raise KitposeError("the run's recipe does not crop people (its test data has no top_down_affine): "
                               "it takes whole images", hint="leave out the boxes")
        if not self.crops and len({np.asarray(image).shape[:2] for image in images}) > 1:
            raise KitposeError("the images differ in size, and the run's recipe does not crop: it takes whole "
                               "images of the size it trained on", hint="resize them to that size first")
        jobs = [(i, np.asarray(box, dtype=np.float32).reshape(-1)) for i, image in enumerate(images)
                for box in (boxes[i] if boxes is not None else [self.whole(image)])]
        out: list[list[Person]] = [[] for _ in images]
        bar = _bar(len(jobs), progress)
        with torch.no_grad():
            for start in range(0, len(jobs), batch_size):
                part = jobs[start:start + batch_size]
                samples = [self.prepare(images[i], box[:4], n) for n, (i, box) in enumerate(part)]
                batch = to_device(collate(samples), self.device)
                with autocast(self.device, AMP_DTYPES.get(self.amp)):
                    branches = self.runner(batch)
                env = branches[self.branch or next(iter(branches))]
                points = env[self.pred].float().cpu().numpy()[..., :2]
                if self.in_model_pixels and self.inverter is not None and "matrix" in samples[0]:
                    matrices = np.stack([sample["matrix"] for sample in samples])
                    points = np.asarray(self.inverter.inverse(points, matrices), dtype=np.float32)
                scores = env[self.scores].float().cpu().numpy() if self.scores else None
                for n, (i, box) in enumerate(part):
                    out[i].append(Person(points[n], None if scores is None else scores[n].reshape(-1), box[:4],
                                         float(box[4]) if box.size > 4 else 1.0))
                bar.update(len(part))
        bar.close()
        return out

    @staticmethod
    def whole(image: np.ndarray) -> np.ndarray:
        h, w = np.asarray(image).shape[:2]
        return np.array([0.0, 0.0, w, h], dtype=np.float32)

    def prepare(self, image: np.ndarray, box: np.ndarray, index: int) -> dict[str, Any]:
        """One person as the recipe's test data would give it, labels left empty."""
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[..., None]
        if image.shape[-1] != self.channels:
            image = _channels(image, self.channels)
        joints = max(len(self.joint_names), 1)
        sample: dict[str, Any] = {"image": image, "bbox": box, "index": index,
                                  "keypoints": np.zeros((joints, 2), np.float32), "visible": np.zeros(joints, np.float32)}
        rng = np.random.default_rng(0)
        for transform in self.transforms:
            try:
                sample = transform(sample, rng=rng)
            except KitposeError as exc:
                raise RunError(f"the recipe's test transform {type(transform).__name__} cannot prepare a new "
                               f"image: {exc.message}", file=str(self.run_dir / "recipe.yaml")) from None
        sample.pop("keypoints", None)
        sample.pop("visible", None)
        return sample


def _channels(image: np.ndarray, channels: int) -> np.ndarray:
    """RGB to one channel (luma) or one channel to three, for a model that takes the other."""
    import cv2

    if channels == 1 and image.shape[-1] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None]
    if channels == 3 and image.shape[-1] == 1:
        return np.repeat(image, 3, axis=-1)
    raise KitposeError(f"the model takes {channels}-channel images, not {image.shape[-1]}-channel ones")


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, shown: bool) -> Any:
    if not shown:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="person", desc="predict")


def read_images(files: Sequence[Path]) -> list[np.ndarray]:
    """The images (H x W x 3 uint8 RGB); a file that is missing, cut off (JPEG, PNG: OpenCV
    would decode it grey without a word) or not an image is a one-line error naming it."""
    import cv2

    from kitpose.files import truncation

    images = []
    for file in files:
        try:
            data = Path(file).read_bytes()
        except OSError as exc:
            raise KitposeError(f"cannot read the image: {exc.strerror or exc}", file=str(file)) from None
        cut = truncation(data)
        if cut:
            raise KitposeError(f"{cut}: the file is cut off", file=str(file), hint="replace the file")
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
        if image is None:
            raise KitposeError("cannot decode the image (corrupt or not an image)", file=str(file))
        images.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return images


def image_files(path: str | Path) -> list[Path]:
    """The image files ``path`` names: itself, or the images in the folder, sorted."""
    folder = Path(path)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise KitposeError("no such image or folder", hint="give an image file or a folder of images",
                           file=str(folder))
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp"})
    if not found:
        raise KitposeError("the folder holds no .jpg, .jpeg, .png or .bmp image", file=str(folder))
    return found


def draw(image: np.ndarray, people: Sequence[Person], skeleton: Sequence[tuple[int, int]]) -> np.ndarray:
    """``image`` (RGB) with each person's box, limbs and joints drawn."""
    import cv2

    canvas = np.ascontiguousarray(image if image.ndim == 3 and image.shape[-1] == 3 else
                                  np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=-1))
    if canvas.dtype != np.uint8:
        canvas = (np.clip(canvas / max(float(canvas.max()), 1e-6), 0, 1) * 255).astype(np.uint8)
    size = max(canvas.shape[:2])
    width, radius = max(1, size // 250), max(2, size // 120)
    for person in people:
        x, y, w, h = (int(round(v)) for v in person.box)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (255, 200, 0), width)
        found = np.isfinite(person.keypoints).all(-1)  # a joint without a position is not drawn
        points = [tuple(int(round(v)) for v in p) if ok else None for p, ok in zip(person.keypoints, found)]
        for a, b in skeleton:
            if max(a, b) < len(points) and points[a] and points[b]:
                cv2.line(canvas, points[a], points[b], (0, 220, 255), width, cv2.LINE_AA)
        for point in filter(None, points):
            cv2.circle(canvas, point, radius, (255, 40, 40), -1, cv2.LINE_AA)
    return canvas
