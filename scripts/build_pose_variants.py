#!/usr/bin/env python3
"""Build the cheaper BlazePose landmark-model variants that board profiles pick (``make pose-variants``).

Why: only the full landmark model ships in the mediapipe wheel, and a Pi core
runs it several times slower than this machine. An int8 copy (weights and
activations, calibrated on frames of the shared videos) is ~2x cheaper on
XNNPACK and stays within a few hundredths of a torso of the float model.

How (reproducible: same inputs, same bytes, checked against the SHA-256 pinned
in the ``built`` section of ``models/manifest.json``):

1. the pinned float model, pruned to the three outputs Cadence reads (as the
   extractor does at load time);
2. its float16 weights + DEQUANTIZE ops turned into plain float32 constants and
   a ``serving_default`` signature added (what ``ai-edge-quantizer`` needs);
3. ``ai-edge-quantizer``'s recipe (``static_wi8_ai8``) with the committed
   calibration (per-tensor min/max, ``scripts/build_pose_variants/*.calibration.json``,
   so a build needs no videos), some operators kept float (the manifest entry's
   ``quantize_for`` and ``keep_float_first``: the regression head and the 128x128 stem);
4. float input/outputs kept (QUANTIZE in, DEQUANTIZE out), so the extractor
   feeds and reads the variant exactly like the float model.

The quantizer is a build-time tool only: it lives in its own venv
(``/tmp/cadence-aeq-venv``, made on first use) and this file runs its steps
there in ``--worker`` mode. Never a run-time dependency.

    .venv/bin/python scripts/build_pose_variants.py              # build, verify the pinned SHA-256
    .venv/bin/python scripts/build_pose_variants.py --calibrate  # re-derive calibration from the videos
    .venv/bin/python scripts/build_pose_variants.py --pin        # accept a new SHA-256 (after --calibrate)
    .venv/bin/python scripts/build_pose_variants.py --measure    # fidelity (end to end, same crop) and cost vs float
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "scripts" / "build_pose_variants"
MANIFEST = REPO / "models" / "manifest.json"
VIDEOS = Path(os.environ.get("CADENCE_SHARED_DATA", "/work/shared/data")) / "videos"
VENV = Path(os.environ.get("CADENCE_AEQ_VENV", "/tmp/cadence-aeq-venv"))
REQUIREMENTS = ["ai-edge-quantizer==0.10.0", "ai-edge-litert==2.3.0"]
CALIBRATION_EVERY = 10  # every n-th frame of each shared video


class BuildError(RuntimeError):
    """A variant could not be built or does not match its pin (one line)."""


# ---------------------------------------------------------------------------------------------
# Worker: runs in the quantizer's venv; imports nothing from Cadence
# ---------------------------------------------------------------------------------------------
def _read(content: bytes) -> Any:
    from ai_edge_litert import schema_py_generated as schema  # type: ignore[import-not-found]

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    for buffer in model.buffers:  # large-model form: data stored after the flatbuffer
        if buffer.offset and buffer.offset > 1:
            buffer.data = np.frombuffer(content[buffer.offset : buffer.offset + buffer.size], dtype=np.uint8)
            buffer.offset, buffer.size = 0, 0
    return model


def _write(model: Any) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _opcode(model: Any, code: int) -> int:
    from ai_edge_litert import schema_py_generated as schema

    for index, op in enumerate(model.operatorCodes):
        if max(op.builtinCode, op.deprecatedBuiltinCode) == code:
            return index
    op = schema.OperatorCodeT()
    op.builtinCode, op.deprecatedBuiltinCode, op.version = code, min(code, 127), 1
    model.operatorCodes.append(op)
    return len(model.operatorCodes) - 1


def float32_model(content: bytes) -> bytes:
    """fp16 constants + DEQUANTIZE -> fp32 constants, unused tensors dropped, a signature added."""
    from ai_edge_litert import schema_py_generated as schema

    model = _read(content)
    graph = model.subgraphs[0]
    dequantize = _opcode(model, schema.BuiltinOperator.DEQUANTIZE)
    kept = []
    for op in graph.operators:
        source = graph.tensors[op.inputs[0]]
        data = model.buffers[source.buffer].data if source.buffer else None
        if op.opcodeIndex == dequantize and source.type == schema.TensorType.FLOAT16 and data is not None:
            weights = np.frombuffer(bytes(bytearray(data)), dtype="<f2").astype("<f4")
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(weights.tobytes(), dtype=np.uint8)
            model.buffers.append(buffer)
            graph.tensors[op.outputs[0]].buffer = len(model.buffers) - 1
            model.buffers[source.buffer].data = None
        else:
            kept.append(op)
    graph.operators = kept
    used = sorted({int(t) for op in kept for t in [*op.inputs, *op.outputs] if t >= 0}
                  | {int(t) for t in graph.inputs} | {int(t) for t in graph.outputs})
    new = {old: i for i, old in enumerate(used)}
    graph.tensors = [graph.tensors[old] for old in used]
    for op in kept:
        op.inputs = np.array([new[int(t)] if t >= 0 else -1 for t in op.inputs], dtype=np.int32)
        op.outputs = np.array([new[int(t)] for t in op.outputs], dtype=np.int32)
    graph.inputs = np.array([new[int(t)] for t in graph.inputs], dtype=np.int32)
    graph.outputs = np.array([new[int(t)] for t in graph.outputs], dtype=np.int32)

    def tensor_map(index: int) -> Any:
        item = schema.TensorMapT()
        item.name, item.tensorIndex = graph.tensors[index].name, int(index)
        return item

    signature = schema.SignatureDefT()
    signature.signatureKey, signature.subgraphIndex = b"serving_default", 0
    signature.inputs = [tensor_map(i) for i in graph.inputs]
    signature.outputs = [tensor_map(i) for i in graph.outputs]
    model.signatureDefs = [signature]
    return _write(model)


def float_interface(content: bytes) -> bytes:
    """Int8 graph inputs/outputs wrapped in QUANTIZE / DEQUANTIZE: the caller keeps float tensors."""
    from ai_edge_litert import schema_py_generated as schema

    model = _read(content)
    graph = model.subgraphs[0]

    def float_twin(index: int) -> int:
        old = graph.tensors[index]
        twin = schema.TensorT()
        twin.shape, twin.type, twin.name, twin.buffer = old.shape, schema.TensorType.FLOAT32, old.name, 0
        old.name = (old.name.decode() if isinstance(old.name, bytes) else old.name) + "_int8"
        graph.tensors.append(twin)
        return len(graph.tensors) - 1

    def operator(code: int, source: int, target: int) -> Any:
        op = schema.OperatorT()
        op.opcodeIndex = _opcode(model, code)
        op.inputs, op.outputs = np.array([source], dtype=np.int32), np.array([target], dtype=np.int32)
        return op

    def wrap(indices: Any, code: int, is_input: bool) -> tuple[list[int], list[Any]]:
        """Float twins of the int8 tensors among ``indices`` and the ops converting between them."""
        kept, ops = [], []
        for index in map(int, indices):
            if graph.tensors[index].type == schema.TensorType.INT8:
                twin = float_twin(index)
                ops.append(operator(code, twin, index) if is_input else operator(code, index, twin))
                index = twin
            kept.append(index)
        return kept, ops

    inputs, before = wrap(graph.inputs, schema.BuiltinOperator.QUANTIZE, True)
    outputs, after = wrap(graph.outputs, schema.BuiltinOperator.DEQUANTIZE, False)
    graph.operators = [*before, *graph.operators, *after]
    graph.inputs, graph.outputs = np.array(inputs, dtype=np.int32), np.array(outputs, dtype=np.int32)
    for signature in model.signatureDefs or []:
        for item, index in zip(signature.inputs, inputs):
            item.tensorIndex = index
        for item, index in zip(signature.outputs, outputs):
            item.tensorIndex = index
    return _write(model)


def _recipe(float_content: bytes, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The entry's quantizer recipe, with two ways of keeping operators float:

    * ``quantize_for``: only the operators those outputs need are quantized, the rest (the
      regression head) stay float;
    * ``keep_float_first``: the first n operators (graph order) stay float: in the landmark model
      the 5 before the first stride-2 step, i.e. everything at the full 128x128 resolution (the
      stem). Its int8 activation between the first convolution and the first depthwise one, whose
      folded batch-norm weights reach ~500, made most of the int8 model's error (docs/aarch64.md).
    """
    import re

    from ai_edge_quantizer import recipe  # type: ignore[import-not-found]

    steps = list(getattr(recipe, entry["recipe"])())
    graph = _read(float_content).subgraphs[0]
    name = lambda t: graph.tensors[t].name.decode()  # noqa: E731
    floats: list[Any] = []
    if entry.get("quantize_for"):
        producer = {int(t): op for op in graph.operators for t in op.outputs}
        needed, stack = set(), [int(t) for t in graph.outputs if name(int(t)) in entry["quantize_for"]]
        while stack:
            op = producer.get(stack.pop())
            if op is not None and id(op) not in needed:
                needed.add(id(op))
                stack.extend(int(t) for t in op.inputs if t >= 0)
        floats += [op for op in graph.operators if id(op) not in needed]
    floats += graph.operators[: entry.get("keep_float_first", 0)]
    if floats:
        # the quantizer matches an operator's scope: its output names joined by ";" plus a final ";"
        scopes = dict.fromkeys(";".join(name(int(t)) for t in op.outputs) for op in floats)
        scope = "^(" + "|".join(re.escape(f) for f in scopes) + ");$"
        steps.append({"regex": scope, "operation": "*", "algorithm_key": "no_quantize", "op_config": {}})
    return steps


def _sum_ranges(total: dict, new: dict) -> dict:
    """Calibration update: add up each frame's own min/max (averaged afterwards).

    The calibrator stores a tensor's first frame as it is (no ``frames`` key)."""
    if not total:
        return new
    return {"min": np.asarray(total["min"], np.float64) + new["min"], "max": np.asarray(total["max"], np.float64) + new["max"],
            "frames": total.get("frames", 1) + 1}


def worker_calibrate(pruned: Path, entry: dict[str, Any], tensors: Path, out: Path) -> None:
    """Per-tensor activation ranges, written as JSON (exact float32 values).

    The range is the MEAN of each frame's min and max, not the extremes over
    all frames: a few outlier frames would otherwise widen the int8 steps for
    every frame (seen: 0.059 torso mean distance with extremes, 0.02 with means).
    """
    from ai_edge_quantizer import calibrator, recipe, recipe_manager  # type: ignore[import-not-found]

    content = float32_model(pruned.read_bytes())
    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(getattr(recipe, entry["recipe"])())  # every tensor's range
    inputs = np.load(tensors)
    calib = calibrator.Calibrator(content, num_threads=1, qsv_update_func=_sum_ranges)
    calib.calibrate({"serving_default": [{"input_1": x[None]} for x in inputs]}, manager)
    result = {name: {key: (np.asarray(q[key], np.float64) / q.get("frames", 1)).astype(np.float32) for key in ("min", "max")}
              for name, q in calib.get_model_qsvs().items() if q}
    as_json = {name: {k: [list(v.shape), [float(x) for x in np.asarray(v, np.float32).ravel()]] for k, v in qsv.items()}
               for name, qsv in sorted(result.items())}
    out.write_text(json.dumps({"recipe": entry["recipe"], "frames": int(len(inputs)), "qsvs": as_json}, indent=0) + "\n")


def worker_build(pruned: Path, entry: dict[str, Any], calibration: Path, out: Path) -> None:
    from ai_edge_quantizer import quantizer  # type: ignore[import-not-found]

    content = float32_model(pruned.read_bytes())
    q = quantizer.Quantizer(bytearray(content))
    q.load_quantization_recipe(_recipe(content, entry))
    saved = json.loads(calibration.read_text())
    if saved["recipe"] != entry["recipe"]:
        raise BuildError(f"{calibration} was made for recipe {saved['recipe']}, not {entry['recipe']}")
    qsvs = {name: {k: np.asarray(v[1], np.float32).reshape(v[0]) for k, v in qsv.items()}
            for name, qsv in saved["qsvs"].items()}
    result = q.quantize(qsvs, enable_progress_report=False, enable_progress_bar=False)
    out.write_bytes(float_interface(bytes(result.quantized_model)))


# ---------------------------------------------------------------------------------------------
# Host side: runs with Cadence's venv
# ---------------------------------------------------------------------------------------------
def ensure_venv() -> Path:
    """The quantizer's own venv (made once; pinned versions)."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".cadence-requirements"
    if python.exists() and stamp.exists() and stamp.read_text() == " ".join(REQUIREMENTS):
        return python
    print(f"making {VENV} with {' '.join(REQUIREMENTS)} (build-time only)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS], capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"pip install {' '.join(REQUIREMENTS)} failed: {(done.stderr or done.stdout).strip()[-300:]}")
    stamp.write_text(" ".join(REQUIREMENTS))
    return python


def run_worker(step: str, *args: Path | str) -> None:
    command = [str(ensure_venv()), str(Path(__file__).resolve()), "--worker", step, *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = [line for line in (done.stderr or done.stdout).strip().splitlines() if line.strip()][-1:]
        raise BuildError(f"quantizer step {step} failed: {tail[0] if tail else 'no output'}")


def built_entries(manifest: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The manifest's landmark-model variants: files built (``built_by``) from another file (``from``)."""
    files = (manifest or json.loads(MANIFEST.read_text()))["files"]
    return {name: entry for name, entry in files.items() if "built_by" in entry and "from" in entry}


def pruned_source(entry: dict[str, Any], tmp: Path) -> Path:
    """The pinned float model as the extractor loads it (unused outputs pruned)."""
    from device import pretrained
    from device.pose import blazepose as bp

    source = pretrained.model_path(entry["from"])
    path = tmp / f"pruned-{entry['from']}"
    path.write_bytes(bp.prune_tflite_outputs(source.read_bytes(), bp.LANDMARK_OUTPUTS_USED))
    return path


def video_rotations() -> dict[str, int]:
    with open(VIDEOS / "annotations.csv", newline="") as handle:
        return {row["file"]: int(row["rotate_clockwise"]) for row in csv.DictReader(handle)}


def video_frames(name: str, rotate: int, max_frames: int | None = None) -> Iterator[Any]:
    """The frames Cadence's pipeline sees (read_video: frames as stored, then rotated)."""
    from device.video.file import read_video

    for item in read_video(VIDEOS / name, rotate=rotate, max_frames=max_frames, in_thread=False):
        yield item


def watch_landmark_runs(extractor: Any, callback: Any) -> None:
    """Call ``callback(image, roi, (landmarks, flag))`` after each of ``extractor``'s landmark-model
    runs: the ROI its own tracking chose on that frame and what the model returned."""
    run_landmarks = extractor._landmarks

    def spy(image: Any, roi: Any) -> Any:
        result = run_landmarks(image, roi)
        callback(image, roi, result)
        return result

    extractor._landmarks = spy  # type: ignore[method-assign]


def calibration_inputs(every: int, videos: list[str] | None = None) -> Any:
    """Landmark-model inputs (the ROI crops) of every n-th frame, found by the float model's tracking."""

    from device.pose import blazepose as bp
    from device.pose.extractor import HumanBodyPoseExtractor

    crops = []
    for name, rotate in sorted(video_rotations().items()):
        if videos is not None and name not in videos:
            continue
        extractor = HumanBodyPoseExtractor()
        index = 0

        def keep(image: Any, roi: Any, result: Any) -> None:  # the crop the float model sees on this frame
            if index % every == 0:
                crops.append(bp.landmark_input(image, roi)[0])

        watch_landmark_runs(extractor, keep)
        for index, item in enumerate(video_frames(name, rotate)):
            extractor.process(item.value, item.timestamp)
    return np.stack(crops)


def same_crop_landmarks(name: str, rotate: int, variants: list[str], threads: int,
                        max_frames: int | None = None) -> tuple[np.ndarray, dict[str, np.ndarray], tuple[int, int]]:
    """The model's own error, without tracking: the float extractor tracks ``name`` and on every
    frame each variant's landmark model gets the very ROI the float model got.

    Returns the float model's 33 landmarks per frame (unsmoothed: the model's output as projected
    into the image), each variant's on the same crops (NaN rows: no person, i.e. the model's
    pose flag under the tracking threshold, or no ROI on that frame), and the frame size."""
    from device.pose.extractor import HumanBodyPoseExtractor
    from device.pose.landmarks import NUM_LANDMARKS

    reference = HumanBodyPoseExtractor(num_threads=threads)
    others = {v: HumanBodyPoseExtractor(landmark_model=v, num_threads=threads) for v in variants}
    empty = np.full((NUM_LANDMARKS, 5), np.nan)
    float_rows: list[np.ndarray] = []
    rows: dict[str, list[np.ndarray]] = {v: [] for v in variants}

    def compare(image: Any, roi: Any, result: Any) -> None:
        float_rows[-1] = result[0][:NUM_LANDMARKS] if len(result[0]) else empty
        for variant, extractor in others.items():
            landmarks, _ = extractor._landmarks(image, roi)
            rows[variant][-1] = landmarks[:NUM_LANDMARKS] if len(landmarks) else empty

    watch_landmark_runs(reference, compare)
    size = (0, 0)
    for item in video_frames(name, rotate, max_frames):
        size = (item.value.shape[1], item.value.shape[0])
        float_rows.append(empty)
        for variant in variants:
            rows[variant].append(empty)
        reference.process(item.value, item.timestamp)
    return np.array(float_rows), {v: np.array(r) for v, r in rows.items()}, size


def _summary(distance: np.ndarray) -> str:
    if not distance.size:
        return "no frames"
    return (f"mean {distance.mean():.4f} median {np.median(distance):.4f} p95 {np.percentile(distance, 95):.4f} "
            f"max {distance.max():.4f} on {distance.size} frames")


def build(pin: bool, calibrate: bool) -> int:
    manifest = json.loads(MANIFEST.read_text())
    from device.components.persistence import atomic_write

    with tempfile.TemporaryDirectory(prefix="cadence-variants-") as tmp_name:
        tmp = Path(tmp_name)
        for name, entry in built_entries(manifest).items():
            pruned = pruned_source(entry, tmp)
            calibration = REPO / entry["calibration"]
            if calibrate:
                inputs = calibration_inputs(CALIBRATION_EVERY)
                np.save(tmp / "inputs.npy", inputs)
                run_worker("calibrate", pruned, json.dumps(entry), tmp / "inputs.npy", calibration)
                print(f"{calibration.relative_to(REPO)}: {len(inputs)} frames (every {CALIBRATION_EVERY}th)")
            start = time.perf_counter()
            run_worker("build", pruned, json.dumps(entry), calibration, tmp / name)
            content = (tmp / name).read_bytes()
            digest = hashlib.sha256(content).hexdigest()
            if digest != entry["sha256"] and not pin:
                raise BuildError(f"{name}: built SHA-256 {digest[:12]}… differs from the pinned {entry['sha256'][:12]}… "
                                 "(other quantizer version or calibration?); --pin to accept it")
            if digest != entry["sha256"]:
                entry["sha256"] = digest
                MANIFEST.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
                print(f"{name}: pinned new SHA-256 {digest}")
            atomic_write(MANIFEST.parent / name, content)
            print(f"{name}: built and verified ({len(content) / 2**20:.2f} MiB, {time.perf_counter() - start:.1f} s)")
    return 0


# Per-core speed of each board's CPU relative to ONE core of the machine measuring (an AMD
# EPYC Zen 4 core here), for XNNPACK convolutions: rough, from published single-core figures
# (see docs/aarch64.md). Estimates only: nothing here was measured on a board.
CORE_SPEED = {"zero2w": (1 / 20, "Cortex-A53 1.0 GHz"), "pi4": (1 / 8, "Cortex-A72 1.5-1.8 GHz"),
              "pi5": (1 / 3.2, "Cortex-A76 2.4 GHz")}
THREAD_SPEEDUP = 2.2  # 3 XNNPACK threads vs 1 on a 256x256 model (inference part only)


# The variant's design (which operators stay float: keep_float_first) was chosen on these videos
# only; the others are held out. (The calibration frames come from all ten.)
DESIGN_VIDEOS = ("arm_raises.mp4", "jumping_jacks_11.mp4", "legs.mp4", "mustafa.mp4", "rows.mp4")
NOISE_SEED = 0


def _noisy(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``frame`` with each value moved by -1, 0 or +1 grey level (an invisible perturbation)."""
    return np.clip(frame.astype(np.int16) + rng.integers(-1, 2, frame.shape), 0, 255).astype(np.uint8)


def measure(max_frames: int | None, threads: int, videos: list[str] | None = None) -> int:
    """Fidelity (torso-normalised landmark distance to the float model) and cost, side by side,
    then the estimated pose rate per board profile (cost x per-core speed ratio).

    Two fidelity measurements: END TO END (each model runs the whole extractor, its own tracking
    included: what the counter sees) and SAME CROP (every variant fed the ROI crop the float
    model's tracking chose: the model's own error, without tracking divergence). And the end-to-end
    measure's noise floor: the float model itself on frames moved by +-1 grey level."""
    from device import boards, pretrained
    from device.pose.landmarks import landmark_distance
    from device.pose.extractor import HumanBodyPoseExtractor
    from device.pose.landmarks import empty_landmarks

    built = built_entries()
    variants = [*dict.fromkeys(entry["from"] for entry in built.values()), *built]  # the float model first
    keys = ("frames", "landmark", "detector", "preprocess", "postprocess", "landmark_calls", "wall")
    rows: dict[str, dict[str, Any]] = {v: dict.fromkeys(keys, 0.0) for v in variants}
    floor = f"{variants[0]} +-1 grey level"
    # measurement -> model -> video -> per-frame distances
    found: dict[str, dict[str, dict[str, np.ndarray]]] = {"end to end": {v: {} for v in [floor, *built]},
                                                         "same crop": {v: {} for v in built}}
    chosen = {name: rotate for name, rotate in sorted(video_rotations().items()) if not videos or name in videos}
    if videos and len(chosen) != len(set(videos)):
        raise BuildError(f"unknown video(s): {', '.join(sorted(set(videos) - set(chosen)))}")

    def report(measurement: str, name: str, variant: str, distance: np.ndarray, poses: np.ndarray,
               reference: np.ndarray) -> None:
        found[measurement][variant][name] = distance
        print(f"  {name:22s} {variant:42s} {_summary(distance)} (person found on "
              f"{int(np.isfinite(poses[:, 0, 0]).sum())}, float {int(np.isfinite(reference[:, 0, 0]).sum())} of {len(poses)})")

    def run(extractor: Any, frames: list[Any], noise: np.random.Generator | None = None) -> np.ndarray:
        poses = []
        for item in frames:
            result = extractor.process(item.value if noise is None else _noisy(item.value, noise), item.timestamp)
            poses.append(result[0].landmarks if result else empty_landmarks())
        return np.array(poses)

    print("END TO END (each model with its own tracking and smoothing; distance per frame, torso lengths)")
    for name, rotate in chosen.items():
        frames = list(video_frames(name, rotate, max_frames))
        size = (frames[0].value.shape[1], frames[0].value.shape[0])
        reference = None
        for variant in variants:
            extractor = HumanBodyPoseExtractor(landmark_model=variant, num_threads=threads)
            start = time.perf_counter()
            poses = run(extractor, frames)
            row = rows[variant]
            row["wall"] += time.perf_counter() - start
            for key in keys[:-1]:
                row[key] += getattr(extractor.stats, key)
            if reference is None:
                reference = poses
            else:
                report("end to end", name, variant, landmark_distance(reference, poses, size), poses, reference)
        assert reference is not None
        poses = run(HumanBodyPoseExtractor(num_threads=threads), frames, np.random.default_rng(NOISE_SEED))
        report("end to end", name, floor, landmark_distance(reference, poses, size), poses, reference)
    print("SAME CROP (each variant fed the float model's ROI crop on every frame; unsmoothed landmarks)")
    for name, rotate in chosen.items():
        reference, others, size = same_crop_landmarks(name, rotate, list(built), threads, max_frames)
        for variant, poses in others.items():
            report("same crop", name, variant, landmark_distance(reference, poses, size), poses, reference)
    print(f"landmark-model variants on the shared videos ({threads} thread(s), frames per video: "
          f"{max_frames or 'all'}; load average {os.getloadavg()[0]:.2f}: costs are noisy on a shared machine)")
    print(f"{'model':32s} {'MiB':>5s} {'ms/landmark':>11s} {'ms/frame':>9s} {'fps':>6s} {'cost':>5s}")
    float_cost = rows[variants[0]]["landmark"] / max(rows[variants[0]]["landmark_calls"], 1)
    for variant, row in rows.items():
        mib = pretrained.model_path(variant).stat().st_size / 2**20
        cost = row["landmark"] / max(row["landmark_calls"], 1)
        print(f"{variant:32s} {mib:5.2f} {1000 * cost:11.2f} {1000 * row['wall'] / row['frames']:9.2f} "
              f"{row['frames'] / row['wall']:6.1f} {cost / float_cost:4.2f}x")
    groups = {"all videos": list(chosen), "design videos": [v for v in chosen if v in DESIGN_VIDEOS],
              "held-out videos": [v for v in chosen if v not in DESIGN_VIDEOS]}
    print(f"distance to the float model, per frame: mean over the 33 landmarks of |variant - float| (pixels) / the "
          f"float model's torso length; limit: mean <= {boards.FIDELITY_LIMIT}")
    for measurement, models in found.items():
        for variant, per_video in models.items():
            for group, names in groups.items():
                parts = [per_video[n] for n in names if n in per_video]
                if parts:
                    print(f"  {measurement:10s} {variant:42s} {group:15s} {_summary(np.concatenate(parts))}")
    print(f"\nESTIMATED pose rate per board (NOT measured on hardware): per-frame cost here x 1/core speed, "
          f"inference / {THREAD_SPEEDUP} with 3 threads")
    for board, (speed, cpu) in CORE_SPEED.items():
        for variant, row in rows.items():
            inference = (row["landmark"] + row["detector"]) / row["frames"] / speed
            other = (row["preprocess"] + row["postprocess"]) / row["frames"] / speed
            print(f"  {board:7s} ({cpu:22s}) {variant:32s} 1 thread {1 / (inference + other):5.1f} fps, "
                  f"3 threads {1 / (inference / THREAD_SPEEDUP + other):5.1f} fps")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibrate", action="store_true", help="re-derive the calibration from the shared videos")
    parser.add_argument("--pin", action="store_true", help="write a built file whose SHA-256 differs and pin it")
    parser.add_argument("--measure", action="store_true", help="print fidelity and cost vs the float model")
    parser.add_argument("--max-frames", type=int, help="--measure: frames per video (default: all)")
    parser.add_argument("--threads", type=int, default=1, help="--measure: TFLite threads")
    parser.add_argument("--videos", nargs="+", metavar="FILE", help="--measure: only these shared videos (e.g. held out)")
    parser.add_argument("--worker", nargs=5, metavar=("STEP", "PRUNED", "ENTRY", "IN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.worker:
            step, pruned, entry, source, out = args.worker
            {"calibrate": worker_calibrate, "build": worker_build}[step](Path(pruned), json.loads(entry), Path(source), Path(out))
            return 0
        sys.path.insert(0, str(REPO))
        if args.measure:
            return measure(args.max_frames, args.threads, args.videos)
        return build(args.pin, args.calibrate)
    except BuildError as exc:
        print(f"build_pose_variants: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
